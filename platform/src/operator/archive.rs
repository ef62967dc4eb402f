//! The tenant archive: every row of one city in one text file (docs/operations.md, "Tenant archive
//! format"). UTF-8, one record per line, each line `<name><TAB><JSON>`:
//!
//! 1. `yoyaku-tenant-archive` + the header: `{"version": 1, "tenant_id", "slug", "schema_version"
//!    (the newest migration applied), "exported_at", "tables": [names in import order]}`;
//! 2. `tenants` + the city's registry row; `plans`, `plan_prices`, `plan_addons` + the rows of the
//!    price-list entries the city's contracts name (platform data, so the archive imports into an
//!    empty database; an import keeps a target's own row with the same id); then for each tenant
//!    table (parents first) one line per
//!    row, `<table>` + the row as PostgreSQL's `to_jsonb(row)` writes it (so every type round-trips
//!    through PostgreSQL's own text forms, with no float or date conversion in between), then
//!    `authz_rules` + each of the city's authorization rules (`ptype`, `v0`…`v5`);
//! 3. `end` + the trailer `{"rows": {"<table>": count, …}}` — a file without it is truncated.
//!
//! Compress it as you like (`gzip`); it holds personal data: store it like the database.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::catalog::{TenantTable, describe, tenant_tables};
use super::{OperatorError, enter_tenant};
use crate::staff::audit;
use crate::staff::authz::Actor;

/// The first word of an archive.
pub const MAGIC: &str = "yoyaku-tenant-archive";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Rows per INSERT on import (a self-referencing table goes in one statement).
const BATCH: usize = 500;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub tenant_id: Uuid,
    pub slug: String,
    pub schema_version: i64,
    pub exported_at: DateTime<Utc>,
    pub tables: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Trailer {
    rows: BTreeMap<String, u64>,
}

/// What an export wrote or an import inserted: rows per table, in file order.
#[derive(Debug, Clone)]
pub struct Moved {
    pub slug: String,
    pub tenant_id: Uuid,
    pub rows: Vec<(String, u64)>,
}

impl Moved {
    pub fn total(&self) -> u64 {
        self.rows.iter().map(|(_, n)| n).sum()
    }
}

const TENANTS: &str = "tenants";
const AUTHZ: &str = "authz_rules";
/// Platform data a city's rows refer to (its contract's plan), exported with the city and imported
/// only where missing, in this order.
const REFERENCE: [(&str, &str); 3] = [
    (
        "plans",
        "SELECT to_jsonb(r)::text FROM plans r \
          WHERE r.id IN (SELECT plan_id FROM contracts WHERE tenant_id = $1) ORDER BY r.id",
    ),
    (
        "plan_prices",
        "SELECT to_jsonb(r)::text FROM plan_prices r \
          WHERE r.plan_id IN (SELECT plan_id FROM contracts WHERE tenant_id = $1) ORDER BY r.plan_id, r.kind",
    ),
    (
        "plan_addons",
        "SELECT to_jsonb(r)::text FROM plan_addons r \
          WHERE r.plan_id IN (SELECT plan_id FROM contracts WHERE tenant_id = $1) ORDER BY r.plan_id, r.code",
    ),
];

fn is_reference(name: &str) -> bool {
    REFERENCE.iter().any(|(r, _)| *r == name)
}

/// Writes every row of the city `slug` to `out`, from one consistent snapshot (a repeatable-read,
/// read-only transaction of the owning role), and records `tenant.export` in the platform audit log.
pub async fn export(
    owner: &PgPool,
    slug: &str,
    mut out: impl Write,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Moved, OperatorError> {
    let mut conn = owner.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let (tenant_id, registry_row): (Uuid, String) =
        sqlx::query_as("SELECT id, to_jsonb(t)::text FROM tenants t WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| OperatorError::UnknownSlug(slug.to_owned()))?;
    enter_tenant(&mut tx, tenant_id).await?;
    let schema_version = schema_version(&mut tx).await?;
    let tables = tenant_tables(&mut tx).await?;
    let mut names = vec![TENANTS.to_owned()];
    names.extend(REFERENCE.iter().map(|(r, _)| (*r).to_owned()));
    names.extend(tables.iter().map(|t| t.name.clone()));
    names.push(AUTHZ.to_owned());
    let header = Header {
        version: VERSION,
        tenant_id,
        slug: slug.to_owned(),
        schema_version,
        exported_at: now,
        tables: names,
    };
    writeln!(out, "{MAGIC}\t{}", json(&header)?)?;
    writeln!(out, "{TENANTS}\t{registry_row}")?;
    let mut rows = vec![(TENANTS.to_owned(), 1)];
    for (name, sql) in REFERENCE {
        let lines: Vec<String> = sqlx::query_scalar(sql)
            .bind(tenant_id)
            .fetch_all(&mut *tx)
            .await?;
        for line in &lines {
            writeln!(out, "{name}\t{line}")?;
        }
        rows.push((name.to_owned(), lines.len() as u64));
    }
    for table in &tables {
        let sql = format!(
            "SELECT to_jsonb(t)::text FROM {} t WHERE t.tenant_id = $1",
            table.quoted
        );
        let mut stream = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .fetch(&mut *tx);
        let mut n = 0u64;
        while let Some(row) = stream.try_next().await? {
            writeln!(out, "{}\t{row}", table.name)?;
            n += 1;
        }
        rows.push((table.name.clone(), n));
    }
    let rules: Vec<String> = sqlx::query_scalar(
        "SELECT jsonb_build_object('ptype', ptype, 'v0', v0, 'v1', v1, 'v2', v2, 'v3', v3, 'v4', v4, 'v5', v5)::text \
           FROM authz_rules WHERE (ptype LIKE 'g%' AND v2 = $1) OR (ptype LIKE 'p%' AND v1 = $1) ORDER BY id",
    )
    .bind(tenant_id.to_string())
    .fetch_all(&mut *tx)
    .await?;
    for rule in &rules {
        writeln!(out, "{AUTHZ}\t{rule}")?;
    }
    rows.push((AUTHZ.to_owned(), rules.len() as u64));
    let trailer = Trailer {
        rows: rows.iter().cloned().collect(),
    };
    writeln!(out, "end\t{}", json(&trailer)?)?;
    out.flush()?;
    tx.commit().await?;
    let moved = Moved {
        slug: slug.to_owned(),
        tenant_id,
        rows,
    };
    audit::record_platform_in(&mut conn, actor, "tenant.export", slug, detail(&moved)).await?;
    Ok(moved)
}

/// Reads an archive and inserts its rows into this database, in one transaction of the owning
/// role: refused when the database already has the city (id, slug or local-government code) or is
/// at another schema version, and rolled back when the trailer's counts do not match what was read.
pub async fn import(
    owner: &PgPool,
    input: impl BufRead,
    actor: &Actor,
) -> Result<Moved, OperatorError> {
    let mut lines = input.lines();
    let first = lines
        .next()
        .transpose()?
        .ok_or_else(|| OperatorError::BadArchive("the file is empty".into()))?;
    let header: Header = match first.split_once('\t') {
        Some((MAGIC, rest)) => serde_json::from_str(rest)
            .map_err(|e| OperatorError::BadArchive(format!("unreadable header: {e}")))?,
        _ => {
            return Err(OperatorError::BadArchive(format!(
                "the first line does not start with {MAGIC:?}"
            )));
        }
    };
    if header.version != VERSION {
        return Err(OperatorError::BadArchive(format!(
            "format version {} (this build reads version {VERSION})",
            header.version
        )));
    }
    let mut tx = owner.begin().await?;
    let database = schema_version(&mut tx).await?;
    if database != header.schema_version {
        return Err(OperatorError::SchemaMismatch {
            archive: header.schema_version,
            database,
        });
    }
    let clash: Option<String> = sqlx::query_scalar(
        "SELECT format('the municipality %s (id %s)', slug, id) FROM tenants WHERE id = $1 OR slug = $2",
    )
    .bind(header.tenant_id)
    .bind(&header.slug)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(clash) = clash {
        return Err(OperatorError::AlreadyThere(clash));
    }
    enter_tenant(&mut tx, header.tenant_id).await?;
    let mut targets: HashMap<String, TenantTable> = tenant_tables(&mut tx)
        .await?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    targets.insert(
        TENANTS.to_owned(),
        describe(&mut tx, "public.tenants").await?,
    );
    targets.insert(AUTHZ.to_owned(), authz_table());
    for (name, _) in REFERENCE {
        targets.insert(name.to_owned(), describe(&mut tx, name).await?);
    }
    if let Some(missing) = header.tables.iter().find(|t| !targets.contains_key(*t)) {
        return Err(OperatorError::BadArchive(format!(
            "it has a table {missing} that this database does not have"
        )));
    }
    let mut counts: Vec<(String, u64)> = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    let mut current: Option<&TenantTable> = None;
    let mut trailer: Option<Trailer> = None;
    for line in lines {
        let line = line?;
        let (name, body) = line
            .split_once('\t')
            .ok_or_else(|| OperatorError::BadArchive("a line without a table name".into()))?;
        if name == "end" {
            trailer = Some(
                serde_json::from_str(body)
                    .map_err(|e| OperatorError::BadArchive(format!("unreadable trailer: {e}")))?,
            );
            break;
        }
        if !header.tables.iter().any(|t| t == name) {
            return Err(OperatorError::BadArchive(format!(
                "rows of {name}, which the header does not list"
            )));
        }
        let table = &targets[name];
        if current.is_some_and(|c| c.name != table.name) {
            flush(
                &mut tx,
                current,
                &mut pending,
                &mut counts,
                header.tenant_id,
            )
            .await?;
        }
        current = Some(table);
        pending.push(body.to_owned());
        if pending.len() >= BATCH && !table.self_referencing {
            flush(
                &mut tx,
                current,
                &mut pending,
                &mut counts,
                header.tenant_id,
            )
            .await?;
        }
    }
    flush(
        &mut tx,
        current,
        &mut pending,
        &mut counts,
        header.tenant_id,
    )
    .await?;
    let trailer = trailer.ok_or_else(|| {
        OperatorError::BadArchive(
            "it ends before its trailer line (`end`): the file is truncated; nothing was imported"
                .into(),
        )
    })?;
    let read: BTreeMap<String, u64> = counts.iter().cloned().collect();
    let expected: BTreeMap<String, u64> =
        trailer.rows.into_iter().filter(|(_, n)| *n > 0).collect();
    if read != expected {
        return Err(OperatorError::BadArchive(format!(
            "the trailer promises {expected:?} rows but the file holds {read:?}; nothing was imported"
        )));
    }
    let moved = Moved {
        slug: header.slug.clone(),
        tenant_id: header.tenant_id,
        rows: counts,
    };
    audit::record_platform_in(
        &mut tx,
        actor,
        "tenant.import",
        &header.slug,
        detail(&moved),
    )
    .await?;
    // a process that remembered the id as unknown learns it exists on commit
    crate::changes::announce(
        &mut tx,
        &crate::changes::Change::Tenant(tenants::TenantId(header.tenant_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(moved)
}

/// Inserts the pending rows of `table` in one statement.
async fn flush(
    tx: &mut PgConnection,
    table: Option<&TenantTable>,
    pending: &mut Vec<String>,
    counts: &mut Vec<(String, u64)>,
    tenant: Uuid,
) -> Result<(), OperatorError> {
    let Some(table) = table else { return Ok(()) };
    if pending.is_empty() {
        return Ok(());
    }
    let rows = format!("[{}]", pending.join(","));
    let n = pending.len() as u64;
    pending.clear();
    let overriding = if table.identity_always {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    // Every row must belong to the archive's city, whatever the file says: the registry row by its
    // id, authorization rules by their domain, tenant tables by tenant_id (RLS checks it as well).
    let reference = is_reference(&table.name);
    let only_this_city = match table.name.as_str() {
        _ if reference => "WHERE $2::uuid IS NOT NULL",
        TENANTS => "WHERE r.id = $2",
        AUTHZ => {
            "WHERE (r.ptype LIKE 'g%' AND r.v2 = $2::text) OR (r.ptype LIKE 'p%' AND r.v1 = $2::text)"
        }
        _ => "WHERE r.tenant_id = $2",
    };
    let sql = format!(
        "WITH ins AS (INSERT INTO {q} ({cols}){overriding} SELECT {cols} \
           FROM jsonb_populate_recordset(NULL::{q}, $1::jsonb) r {only_this_city}{keep_theirs} RETURNING 1) \
         SELECT count(*) FROM ins",
        q = table.quoted,
        cols = table.insert_columns,
        // platform data: a row the target already has (same key) is kept as it is
        keep_theirs = if reference {
            " ON CONFLICT DO NOTHING"
        } else {
            ""
        },
    );
    let inserted: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(rows)
        .bind(tenant)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| table_error(&table.name, e))?;
    if inserted as u64 != n && !reference {
        return Err(OperatorError::Table {
            table: table.name.clone(),
            reason: format!(
                "{} of {n} rows belong to another municipality than the archive's; nothing was imported",
                n - inserted as u64
            ),
        });
    }
    match counts.last_mut() {
        Some((name, count)) if *name == table.name => *count += n,
        _ => counts.push((table.name.clone(), n)),
    }
    Ok(())
}

fn table_error(table: &str, e: sqlx::Error) -> OperatorError {
    let (code, message) = match e.as_database_error() {
        Some(d) => (d.code().map(|c| c.into_owned()), d.message().to_owned()),
        None => return OperatorError::Database(e),
    };
    let hint = match code.as_deref() {
        Some("23503") => {
            " — a row refers to one this database does not have; platform data the city uses \
             (the price list: plans) must exist here before the import"
        }
        Some("23505") => " — this database already has such a row",
        _ => "",
    };
    OperatorError::Table {
        table: table.to_owned(),
        reason: format!("{message}{hint}; nothing was imported"),
    }
}

/// The city's authorization rules; their ids are the target database's own.
fn authz_table() -> TenantTable {
    TenantTable {
        name: AUTHZ.to_owned(),
        quoted: "public.authz_rules".to_owned(),
        insert_columns: "ptype, v0, v1, v2, v3, v4, v5".to_owned(),
        identity_always: false,
        self_referencing: false,
    }
}

/// The newest migration applied to this database.
async fn schema_version(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COALESCE(max(version), 0) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut *conn)
        .await
}

fn json<T: Serialize>(value: &T) -> Result<String, OperatorError> {
    serde_json::to_string(value).map_err(|e| OperatorError::Io(std::io::Error::other(e)))
}

pub(super) fn detail(moved: &Moved) -> serde_json::Value {
    serde_json::json!({
        "tenant_id": moved.tenant_id,
        "rows": moved.rows.iter().cloned().collect::<BTreeMap<String, u64>>(),
    })
}
