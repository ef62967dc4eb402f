use async_graphql::{Context, Enum, MergedObject, Object, Result, SimpleObject};
use sqlx::PgPool;

use crate::ApiError;

/// The query root: one part per area, so each area's resolvers live in their own module.
#[derive(MergedObject, Default)]
pub struct Query(
    TenantQuery,
    crate::admin::AdminQuery,
    crate::BookingQuery,
    crate::billing::BillingQuery,
    crate::stats::StatsQuery,
);

/// Public tenant lookups.
#[derive(Default)]
pub struct TenantQuery;

/// A municipality (tenant) as the public sees it.
#[derive(SimpleObject)]
#[graphql(name = "Tenant")]
pub struct TenantView {
    /// Display name, e.g. 横浜市.
    name: String,
    /// URL identifier, used in `/t/{slug}/…`.
    slug: String,
    /// The languages the tenant's resident site offers (BCP 47: ja, en, zh-Hans, pt).
    locales: Vec<String>,
    /// The language shown when the browser asks for none of `locales`.
    default_locale: String,
    /// IANA time zone; days and weeks of this tenant follow it.
    time_zone: String,
    /// Whether the municipality is being set up, open, or suspended.
    status: TenantStatus,
}

/// Where a municipality is in its life on the platform.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum TenantStatus {
    /// Being set up by its staff and API keys (open to them, as when active).
    Onboarding,
    /// Open for business.
    Active,
    /// Suspended by the platform operator: booking, staff fields and API keys are refused.
    Suspended,
}

impl From<tenants::TenantStatus> for TenantStatus {
    fn from(s: tenants::TenantStatus) -> Self {
        match s {
            tenants::TenantStatus::Onboarding => Self::Onboarding,
            tenants::TenantStatus::Active => Self::Active,
            tenants::TenantStatus::Suspended => Self::Suspended,
        }
    }
}

impl From<tenants::Tenant> for TenantView {
    fn from(t: tenants::Tenant) -> Self {
        Self {
            name: t.name,
            slug: t.slug,
            locales: t.locales,
            default_locale: t.default_locale,
            time_zone: t.time_zone.name().to_owned(),
            status: t.status.into(),
        }
    }
}

#[Object]
impl TenantQuery {
    /// A municipality by its slug; public, no credentials needed. Null when no such tenant exists.
    async fn tenant(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug (URL identifier, e.g. `yokohama`).")] city: String,
    ) -> Result<Option<TenantView>> {
        let pool = ctx.data::<PgPool>()?;
        let found = tenants::find_by_slug(pool, &city)
            .await
            .map_err(ApiError::from)?;
        if let Some(t) = &found {
            tenants::record_in_span(t.id);
        }
        Ok(found.map(TenantView::from))
    }
}
