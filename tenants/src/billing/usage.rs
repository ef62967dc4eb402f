//! Usage events: one row per billable thing, keyed by its own idempotency key, so a retried job, a
//! duplicated delivery receipt or a replayed request counts once. Bookings are the exception: the
//! booking row is its own usage (nothing else is written in the booking's statement). Readers use
//! the view `metered_usage` (usage events plus one unit per booking row, docs/billing.md).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, Row};

use super::MeteredKind;
use crate::TenantTx;

/// Records a usage event; `false` when an event with this key was already recorded.
pub async fn record(
    tx: &mut TenantTx,
    idempotency_key: &str,
    kind: MeteredKind,
    quantity: i64,
    occurred_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let tenant = tx.tenant_id().0;
    let done = sqlx::query(
        "INSERT INTO usage_events (tenant_id, idempotency_key, kind, quantity, occurred_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
    )
    .bind(tenant)
    .bind(idempotency_key)
    .bind(kind.as_str())
    .bind(quantity)
    .bind(occurred_at)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Usage per kind for local dates in [from, until) of time zone `tz`: the sum, or for peak kinds
/// (residents under management) the maximum.
pub async fn between(
    conn: &mut PgConnection,
    from: NaiveDate,
    until: NaiveDate,
    tz: &str,
) -> Result<BTreeMap<MeteredKind, i64>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT kind, COALESCE(sum(quantity), 0)::bigint AS total, COALESCE(max(quantity), 0)::bigint AS peak \
         FROM metered_usage \
         WHERE (occurred_at AT TIME ZONE $3)::date >= $1 AND (occurred_at AT TIME ZONE $3)::date < $2 \
         GROUP BY kind",
    )
    .bind(from)
    .bind(until)
    .bind(tz)
    .fetch_all(conn)
    .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        let kind: String = row.try_get("kind")?;
        if let Some(kind) = MeteredKind::parse(&kind) {
            let value = if kind.is_peak() {
                row.try_get("peak")?
            } else {
                row.try_get("total")?
            };
            out.insert(kind, value);
        }
    }
    Ok(out)
}

/// Usage of one kind for local dates in [from, until) of time zone `tz` (the sum, or the peak for
/// peak kinds): what [`between`] says for that kind, read through the index on
/// (tenant, kind, time) — the bounds are the local midnights as instants — so a cap check reads
/// only this month's rows of this kind.
pub async fn total_of(
    conn: &mut PgConnection,
    kind: MeteredKind,
    from: NaiveDate,
    until: NaiveDate,
    tz: &str,
) -> Result<i64, sqlx::Error> {
    let sql = if kind.is_peak() {
        "SELECT COALESCE(max(quantity), 0)::bigint FROM metered_usage \
         WHERE kind = $1 AND occurred_at >= ($2::date::timestamp AT TIME ZONE $4) \
           AND occurred_at < ($3::date::timestamp AT TIME ZONE $4)"
    } else {
        "SELECT COALESCE(sum(quantity), 0)::bigint FROM metered_usage \
         WHERE kind = $1 AND occurred_at >= ($2::date::timestamp AT TIME ZONE $4) \
           AND occurred_at < ($3::date::timestamp AT TIME ZONE $4)"
    };
    sqlx::query_scalar(sql)
        .bind(kind.as_str())
        .bind(from)
        .bind(until)
        .bind(tz)
        .fetch_one(conn)
        .await
}
