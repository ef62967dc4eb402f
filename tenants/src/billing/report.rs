//! What the consoles show, computed without storing anything: the price list, a tenant's current
//! contract, a month's projected invoice, usage per month and per day. Plus the monthly job's tick.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::{BillingError, Line, MeteredKind, Price, Totals, pricing, usage};
use crate::TenantTx;

/// How long a month's draft stays editable after the month ends (late delivery receipts).
pub const GRACE_DAYS: i64 = 5;

/// A plan on the price list, with its prices and add-ons.
#[derive(Debug, Clone)]
pub struct PlanView {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub setup_fee_yen: i64,
    pub system_fee_yen: i64,
    pub cloud_fee_yen: i64,
    pub prices: BTreeMap<MeteredKind, Price>,
    /// (code, name, monthly fee)
    pub addons: Vec<(String, String, i64)>,
}

pub async fn list_plans(conn: &mut PgConnection) -> Result<Vec<PlanView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, code, name, setup_fee_yen, system_fee_yen, cloud_fee_yen FROM plans ORDER BY code",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: Uuid = r.try_get("id")?;
        let mut prices = BTreeMap::new();
        for p in sqlx::query(
            "SELECT kind, included_quantity, unit_price_yen, hard_cap FROM plan_prices WHERE plan_id = $1",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        {
            if let Some(kind) = MeteredKind::parse(&p.try_get::<String, _>("kind")?) {
                prices.insert(
                    kind,
                    Price {
                        included_quantity: p.try_get("included_quantity")?,
                        unit_price_yen: p.try_get("unit_price_yen")?,
                        hard_cap: p.try_get("hard_cap")?,
                    },
                );
            }
        }
        let addons = sqlx::query(
            "SELECT code, name, monthly_fee_yen FROM plan_addons WHERE plan_id = $1 ORDER BY code",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|a| {
            Ok((
                a.try_get("code")?,
                a.try_get("name")?,
                a.try_get("monthly_fee_yen")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?;
        out.push(PlanView {
            id,
            code: r.try_get("code")?,
            name: r.try_get("name")?,
            setup_fee_yen: r.try_get("setup_fee_yen")?,
            system_fee_yen: r.try_get("system_fee_yen")?,
            cloud_fee_yen: r.try_get("cloud_fee_yen")?,
            prices,
            addons,
        });
    }
    Ok(out)
}

/// The contract in force on `on` (or the latest one), as the console shows it.
#[derive(Debug, Clone)]
pub struct ContractView {
    pub plan_code: String,
    pub plan_name: String,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
    pub overrides: serde_json::Value,
    pub addons: BTreeMap<String, i64>,
}

pub async fn current_contract(
    tx: &mut TenantTx,
    on: NaiveDate,
) -> Result<Option<ContractView>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT p.code, p.name, c.starts_on, c.ends_on, c.overrides, c.addons \
         FROM contracts c JOIN plans p ON p.id = c.plan_id \
         ORDER BY (c.starts_on <= $1 AND (c.ends_on IS NULL OR c.ends_on > $1)) DESC, c.starts_on DESC LIMIT 1",
    )
    .bind(on)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(ContractView {
        plan_code: r.try_get("code")?,
        plan_name: r.try_get("name")?,
        starts_on: r.try_get("starts_on")?,
        ends_on: r.try_get("ends_on")?,
        overrides: r.try_get("overrides")?,
        addons: serde_json::from_value(r.try_get("addons")?).unwrap_or_default(),
    }))
}

/// The first day of the month containing `day`.
pub fn month_of(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// The invoice lines and totals `month` would have now, computed and not stored (the projection
/// the consoles show; `build_draft` stores the same lines).
pub async fn preview(
    tx: &mut TenantTx,
    month: NaiveDate,
    tz: &str,
) -> Result<(Vec<Line>, Totals), BillingError> {
    let first = month_of(month);
    let periods = super::periods(tx, first, tz).await?;
    let first_start: Option<NaiveDate> = sqlx::query_scalar("SELECT min(starts_on) FROM contracts")
        .fetch_one(&mut **tx)
        .await?;
    let setup_fee = match (first_start, periods.first()) {
        (Some(start), Some(p)) if month_of(start) == first => Some(p.terms.setup_fee_yen),
        _ => None,
    };
    let lines = pricing::invoice_lines(first, &periods, setup_fee);
    let totals = pricing::totals(&lines);
    Ok((lines, totals))
}

/// Usage and included quantity per metered kind in `month` (included: of the contract in force
/// now, prorated as on the invoice, summed over the month's contract periods).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindUsage {
    pub kind: MeteredKind,
    pub used: i64,
    pub included: i64,
    pub unit_price_yen: i64,
    pub hard_cap: bool,
}

pub async fn month_usage(
    tx: &mut TenantTx,
    month: NaiveDate,
    tz: &str,
) -> Result<Vec<KindUsage>, BillingError> {
    let first = month_of(month);
    let after = first + Duration::days(pricing::days_in_month(first));
    let used = usage::between(tx, first, after, tz).await?;
    let periods = super::periods(tx, first, tz).await?;
    Ok(MeteredKind::ALL
        .into_iter()
        .map(|kind| {
            let mut included = 0;
            let mut price = None;
            for p in &periods {
                if let Some(pr) = p.terms.prices.get(&kind) {
                    let days = pricing::covered_days(first, p.starts_on, p.ends_on);
                    included += pr.included_quantity * days / pricing::days_in_month(first);
                    price = Some(*pr);
                }
            }
            KindUsage {
                kind,
                used: used.get(&kind).copied().unwrap_or(0),
                included,
                unit_price_yen: price.map_or(0, |p| p.unit_price_yen),
                hard_cap: price.is_some_and(|p| p.hard_cap),
            }
        })
        .collect())
}

/// Usage per kind for each of the `months` months ending with `last` (oldest first).
pub async fn monthly_history(
    tx: &mut TenantTx,
    last: NaiveDate,
    months: u32,
    tz: &str,
) -> Result<Vec<(NaiveDate, BTreeMap<MeteredKind, i64>)>, sqlx::Error> {
    let last = month_of(last);
    let first = last
        .checked_sub_months(Months::new(months.saturating_sub(1)))
        .unwrap_or(last);
    let rows = sqlx::query(
        "SELECT date_trunc('month', occurred_at AT TIME ZONE $2)::date AS m, kind, \
         COALESCE(sum(quantity), 0)::bigint AS total, COALESCE(max(quantity), 0)::bigint AS peak \
         FROM metered_usage WHERE (occurred_at AT TIME ZONE $2)::date >= $1 GROUP BY 1, 2",
    )
    .bind(first)
    .bind(tz)
    .fetch_all(&mut **tx)
    .await?;
    let mut out: Vec<(NaiveDate, BTreeMap<MeteredKind, i64>)> = (0..months)
        .filter_map(|i| first.checked_add_months(Months::new(i)))
        .map(|m| (m, BTreeMap::new()))
        .collect();
    for r in rows {
        let m: NaiveDate = r.try_get("m")?;
        let Some(kind) = MeteredKind::parse(&r.try_get::<String, _>("kind")?) else {
            continue;
        };
        let v: i64 = r.try_get(if kind.is_peak() { "peak" } else { "total" })?;
        if let Some((_, map)) = out.iter_mut().find(|(mm, _)| *mm == m) {
            map.insert(kind, v);
        }
    }
    Ok(out)
}

/// Usage per kind for each local day of `month` (every day present, oldest first).
pub async fn daily_usage(
    tx: &mut TenantTx,
    month: NaiveDate,
    tz: &str,
) -> Result<Vec<(NaiveDate, BTreeMap<MeteredKind, i64>)>, sqlx::Error> {
    let first = month_of(month);
    let days = pricing::days_in_month(first);
    let after = first + Duration::days(days);
    let rows = sqlx::query(
        "SELECT (occurred_at AT TIME ZONE $3)::date AS d, kind, \
         COALESCE(sum(quantity), 0)::bigint AS total, COALESCE(max(quantity), 0)::bigint AS peak \
         FROM metered_usage WHERE (occurred_at AT TIME ZONE $3)::date >= $1 \
         AND (occurred_at AT TIME ZONE $3)::date < $2 GROUP BY 1, 2",
    )
    .bind(first)
    .bind(after)
    .bind(tz)
    .fetch_all(&mut **tx)
    .await?;
    let mut out: Vec<(NaiveDate, BTreeMap<MeteredKind, i64>)> = (0..days)
        .map(|i| (first + Duration::days(i), BTreeMap::new()))
        .collect();
    for r in rows {
        let d: NaiveDate = r.try_get("d")?;
        let Some(kind) = MeteredKind::parse(&r.try_get::<String, _>("kind")?) else {
            continue;
        };
        let v: i64 = r.try_get(if kind.is_peak() { "peak" } else { "total" })?;
        if let Some((_, map)) = out.iter_mut().find(|(dd, _)| *dd == d) {
            map.insert(kind, v);
        }
    }
    Ok(out)
}

/// What one tick of the monthly job did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// false when another process held the job's lock (it did nothing then).
    pub ran: bool,
    pub drafts_built: usize,
    pub finalized: usize,
    pub resident_counts: usize,
    pub failures: usize,
}

/// The advisory lock key of the monthly billing job (any constant, the same in every process).
pub const JOB_LOCK: i64 = 0x5959_4B5F_4249_4C4C; // "YYK_BILL"

/// One tick of the monthly job, at `now`: once across processes (advisory lock), for every tenant
/// with a contract (the contract decides who is billed, not the status: a suspended city still owes
/// its fees): record today's residents-under-management count (once per local day),
/// build or refresh the previous month's draft while its grace period lasts, and finalise drafts
/// whose grace period has ended. One tenant's failure does not stop the others.
pub async fn tick(pool: &PgPool, now: DateTime<Utc>) -> Result<TickReport, sqlx::Error> {
    let mut lock = pool.begin().await?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(JOB_LOCK)
        .fetch_one(&mut *lock)
        .await?;
    if !got {
        return Ok(TickReport::default());
    }
    let mut report = TickReport {
        ran: true,
        ..TickReport::default()
    };
    for t in crate::list(pool).await? {
        match tick_tenant(pool, &t, now).await {
            Ok((built, finalized, counted)) => {
                report.drafts_built += built;
                report.finalized += finalized;
                report.resident_counts += counted;
            }
            Err(e) => {
                report.failures += 1;
                tracing::error!(tenant = %t.slug, error = %e, "monthly billing tick failed");
            }
        }
    }
    lock.commit().await?;
    Ok(report)
}

async fn tick_tenant(
    pool: &PgPool,
    t: &crate::Tenant,
    now: DateTime<Utc>,
) -> Result<(usize, usize, usize), BillingError> {
    let tz = t.time_zone.name().to_owned();
    let local_today = now.with_timezone(&t.time_zone.0).date_naive();
    let mut tx = crate::begin(pool, t.id).await?;
    let has_contract: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM contracts)")
        .fetch_one(&mut *tx)
        .await?;
    if !has_contract {
        return Ok((0, 0, 0));
    }
    let residents: i64 = sqlx::query_scalar("SELECT count(*) FROM residents")
        .fetch_one(&mut *tx)
        .await?;
    let counted = usize::from(
        usage::record(
            &mut tx,
            &format!("residents:{local_today}"),
            MeteredKind::Resident,
            residents,
            now,
        )
        .await?,
    );
    let mut built = 0;
    let previous = month_of(local_today)
        .checked_sub_months(Months::new(1))
        .unwrap_or(local_today);
    let existing: Option<(String, DateTime<Utc>)> = sqlx::query(
        "SELECT status, grace_until FROM invoices WHERE month = $1 AND kind = 'invoice'",
    )
    .bind(previous)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| Ok::<_, sqlx::Error>((r.try_get("status")?, r.try_get("grace_until")?)))
    .transpose()?;
    let billed_before: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM contracts WHERE starts_on < $1)")
            .bind(month_of(local_today))
            .fetch_one(&mut *tx)
            .await?;
    let in_grace = billed_before
        && existing
            .as_ref()
            .is_none_or(|(status, grace_until)| status == "draft" && now < *grace_until);
    if in_grace {
        let draft = super::build_draft(&mut tx, previous, &tz, Duration::days(GRACE_DAYS)).await?;
        if now < draft.grace_until {
            built = 1;
        }
    }
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM invoices WHERE status = 'draft' AND kind = 'invoice' AND grace_until <= $1 ORDER BY month",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for id in &due {
        super::finalize(&mut tx, *id, now, false).await?;
    }
    tx.commit().await?;
    Ok((built, due.len(), counted))
}
