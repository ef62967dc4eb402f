//! The tenant registry: one row per municipality. The `tenants` table is not tenant-owned (it is the
//! list of tenants), so it has no row-level security; everything that hangs off a tenant does.

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Row, postgres::PgRow};
use uuid::Uuid;

use crate::{LocalGovernmentCode, Locale, Slug, TenantName, TenantStatus, TimeZone};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TenantId(pub Uuid);

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub local_government_code: String,
    pub status: TenantStatus,
    pub time_zone: TimeZone,
    pub default_locale: String,
    pub locales: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A tenant to create; every field was parsed already.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: Slug,
    pub name: TenantName,
    pub code: LocalGovernmentCode,
    pub time_zone: TimeZone,
    pub default_locale: Locale,
    pub locales: Vec<Locale>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("a tenant with slug {0:?} already exists")]
    SlugTaken(String),
    #[error("a tenant with local-government code {0:?} already exists")]
    CodeTaken(String),
    #[error("the default locale {0} must be one of the tenant's locales")]
    DefaultLocaleNotOffered(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The columns `from_row` reads; `concat!` keeps every statement a `&'static str` (sqlx 0.9).
macro_rules! columns {
    () => {
        "id, slug, name, local_government_code, status, time_zone, default_locale, locales, created_at"
    };
}

fn from_row(row: &PgRow) -> Result<Tenant, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let tz: String = row.try_get("time_zone")?;
    let decode = |e: crate::DomainError| sqlx::Error::Decode(Box::new(e));
    Ok(Tenant {
        id: TenantId(row.try_get("id")?),
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        local_government_code: row.try_get("local_government_code")?,
        status: status.parse().map_err(decode)?,
        time_zone: TimeZone::parse(&tz).map_err(decode)?,
        default_locale: row.try_get("default_locale")?,
        locales: row.try_get("locales")?,
        created_at: row.try_get("created_at")?,
    })
}

pub async fn create(db: impl PgExecutor<'_>, new: &NewTenant) -> Result<Tenant, RegistryError> {
    if !new.locales.contains(&new.default_locale) {
        return Err(RegistryError::DefaultLocaleNotOffered(
            new.default_locale.as_str().to_owned(),
        ));
    }
    let locales: Vec<&str> = new.locales.iter().map(Locale::as_str).collect();
    let row = sqlx::query(concat!(
        "INSERT INTO tenants (id, slug, name, local_government_code, status, time_zone, default_locale, locales) \
         VALUES ($1, $2, $3, $4, 'onboarding', $5, $6, $7) RETURNING ",
        columns!()
    ))
        .bind(Uuid::now_v7())
        .bind(new.slug.as_str())
        .bind(new.name.as_str())
        .bind(new.code.as_str())
        .bind(new.time_zone.name())
        .bind(new.default_locale.as_str())
        .bind(&locales)
        .fetch_one(db)
        .await
        .map_err(|e| match e.as_database_error().and_then(|d| d.constraint()) {
            Some("tenants_slug_key") => RegistryError::SlugTaken(new.slug.to_string()),
            Some("tenants_local_government_code_key") => {
                RegistryError::CodeTaken(new.code.as_str().to_owned())
            }
            _ => RegistryError::Database(e),
        })?;
    Ok(from_row(&row)?)
}

pub async fn find_by_slug(
    db: impl PgExecutor<'_>,
    slug: &str,
) -> Result<Option<Tenant>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM tenants WHERE slug = $1"
    ))
    .bind(slug)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn find_by_id(
    db: impl PgExecutor<'_>,
    id: TenantId,
) -> Result<Option<Tenant>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM tenants WHERE id = $1"
    ))
    .bind(id.0)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<Tenant>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM tenants ORDER BY slug"
    ))
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn set_status(
    db: impl PgExecutor<'_>,
    id: TenantId,
    status: TenantStatus,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE tenants SET status = $2 WHERE id = $1")
        .bind(id.0)
        .bind(status.as_str())
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
