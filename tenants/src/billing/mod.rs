//! Plans, contracts, metered usage and invoices. The arithmetic is in [`pricing`] (pure); this module
//! loads its inputs, stores its outputs, and keeps the life cycle: a draft is rebuilt until its grace
//! period ends, then finalised with the next gapless number; a final invoice never changes (the
//! database refuses it), corrections are credit notes.

pub mod pricing;
pub mod report;
pub mod usage;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Deserialize;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

pub use pricing::{Line, MeteredKind, Price, Totals};

use crate::TenantTx;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("invoice {0} is final and cannot be changed; issue a credit note instead")]
    Final(String),
    #[error("the draft stays editable until {0}; finalise it after that (or force it)")]
    GraceNotOver(DateTime<Utc>),
    #[error("{0}")]
    Validation(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A plan for the operator's price list.
#[derive(Debug, Clone)]
pub struct NewPlan {
    pub code: String,
    pub name: String,
    pub setup_fee_yen: i64,
    pub system_fee_yen: i64,
    pub cloud_fee_yen: i64,
    pub prices: BTreeMap<MeteredKind, Price>,
    /// (code, name, monthly fee)
    pub addons: Vec<(String, String, i64)>,
}

pub async fn create_plan(conn: &mut PgConnection, plan: &NewPlan) -> Result<Uuid, BillingError> {
    let money = [plan.setup_fee_yen, plan.system_fee_yen, plan.cloud_fee_yen];
    if money.iter().any(|m| *m < 0)
        || plan
            .prices
            .values()
            .any(|p| p.unit_price_yen < 0 || p.included_quantity < 0)
    {
        return Err(BillingError::Validation(
            "prices and quantities cannot be negative".into(),
        ));
    }
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO plans (id, code, name, setup_fee_yen, system_fee_yen, cloud_fee_yen) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(&plan.code)
    .bind(&plan.name)
    .bind(plan.setup_fee_yen)
    .bind(plan.system_fee_yen)
    .bind(plan.cloud_fee_yen)
    .execute(&mut *conn)
    .await
    .map_err(|e| match e.as_database_error().and_then(|d| d.constraint()) {
        Some("plans_code_key") => BillingError::Validation(format!("a plan with code {:?} exists", plan.code)),
        Some("plans_code_check") => {
            BillingError::Validation("plan code: 2–40 lowercase letters, digits or '-'".into())
        }
        _ => BillingError::Database(e),
    })?;
    for (kind, price) in &plan.prices {
        sqlx::query(
            "INSERT INTO plan_prices (plan_id, kind, included_quantity, unit_price_yen, hard_cap) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(kind.as_str())
        .bind(price.included_quantity)
        .bind(price.unit_price_yen)
        .bind(price.hard_cap)
        .execute(&mut *conn)
        .await?;
    }
    for (code, name, fee) in &plan.addons {
        sqlx::query("INSERT INTO plan_addons (plan_id, code, name, monthly_fee_yen) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(code)
            .bind(name)
            .bind(fee)
            .execute(&mut *conn)
            .await?;
    }
    Ok(id)
}

/// Per-tenant changes to a plan's terms, as stored in `contracts.overrides`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub setup_fee_yen: Option<i64>,
    pub system_fee_yen: Option<i64>,
    pub cloud_fee_yen: Option<i64>,
    #[serde(default)]
    pub prices: BTreeMap<MeteredKind, PriceOverride>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceOverride {
    pub included_quantity: Option<i64>,
    pub unit_price_yen: Option<i64>,
    pub hard_cap: Option<bool>,
}

fn parse_overrides(value: &serde_json::Value) -> Result<Overrides, BillingError> {
    let o: Overrides = serde_json::from_value(value.clone())
        .map_err(|e| BillingError::Validation(format!("contract overrides: {e}")))?;
    let negative = [o.setup_fee_yen, o.system_fee_yen, o.cloud_fee_yen]
        .iter()
        .flatten()
        .any(|v| *v < 0)
        || o.prices.values().any(|p| {
            p.included_quantity.is_some_and(|v| v < 0) || p.unit_price_yen.is_some_and(|v| v < 0)
        });
    if negative {
        return Err(BillingError::Validation(
            "contract overrides cannot be negative".into(),
        ));
    }
    Ok(o)
}

/// Puts the tenant on `plan_code` from `starts_on`; an open contract that started earlier ends that
/// day (a plan change), so both are prorated in that month.
pub async fn start_contract(
    tx: &mut TenantTx,
    plan_code: &str,
    starts_on: NaiveDate,
    overrides: serde_json::Value,
    addons: BTreeMap<String, i64>,
) -> Result<Uuid, BillingError> {
    parse_overrides(&overrides)?;
    let plan_id: Uuid = sqlx::query_scalar("SELECT id FROM plans WHERE code = $1")
        .bind(plan_code)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(BillingError::NotFound("plan"))?;
    let known: Vec<String> = sqlx::query_scalar("SELECT code FROM plan_addons WHERE plan_id = $1")
        .bind(plan_id)
        .fetch_all(&mut **tx)
        .await?;
    if let Some((code, _)) = addons.iter().find(|(c, q)| !known.contains(c) || **q < 1) {
        return Err(BillingError::Validation(format!(
            "add-on {code:?} is not offered by plan {plan_code} (or its quantity is below 1)"
        )));
    }
    let later: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM contracts WHERE starts_on >= $1)")
            .bind(starts_on)
            .fetch_one(&mut **tx)
            .await?;
    if later {
        return Err(BillingError::Validation(format!(
            "a contract already starts on or after {starts_on}; change plans only forward in time"
        )));
    }
    sqlx::query("UPDATE contracts SET ends_on = $1 WHERE ends_on IS NULL OR ends_on > $1")
        .bind(starts_on)
        .execute(&mut **tx)
        .await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO contracts (tenant_id, id, plan_id, starts_on, overrides, addons) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tx.tenant_id().0)
    .bind(id)
    .bind(plan_id)
    .bind(starts_on)
    .bind(&overrides)
    .bind(serde_json::to_value(&addons).unwrap_or_default())
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

async fn terms(
    conn: &mut PgConnection,
    plan_id: Uuid,
    overrides: &Overrides,
) -> Result<pricing::Terms, BillingError> {
    let plan = sqlx::query(
        "SELECT name, setup_fee_yen, system_fee_yen, cloud_fee_yen FROM plans WHERE id = $1",
    )
    .bind(plan_id)
    .fetch_one(&mut *conn)
    .await?;
    let mut prices = BTreeMap::new();
    for row in sqlx::query("SELECT kind, included_quantity, unit_price_yen, hard_cap FROM plan_prices WHERE plan_id = $1")
        .bind(plan_id)
        .fetch_all(&mut *conn)
        .await?
    {
        let kind: String = row.try_get("kind")?;
        if let Some(kind) = MeteredKind::parse(&kind) {
            prices.insert(
                kind,
                Price {
                    included_quantity: row.try_get("included_quantity")?,
                    unit_price_yen: row.try_get("unit_price_yen")?,
                    hard_cap: row.try_get("hard_cap")?,
                },
            );
        }
    }
    for (kind, o) in &overrides.prices {
        let p = prices.entry(*kind).or_insert(Price {
            included_quantity: 0,
            unit_price_yen: 0,
            hard_cap: false,
        });
        p.included_quantity = o.included_quantity.unwrap_or(p.included_quantity);
        p.unit_price_yen = o.unit_price_yen.unwrap_or(p.unit_price_yen);
        p.hard_cap = o.hard_cap.unwrap_or(p.hard_cap);
    }
    let addon_fees =
        sqlx::query("SELECT code, name, monthly_fee_yen FROM plan_addons WHERE plan_id = $1")
            .bind(plan_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("code")?,
                    (r.try_get("name")?, r.try_get("monthly_fee_yen")?),
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?;
    Ok(pricing::Terms {
        plan_name: plan.try_get("name")?,
        setup_fee_yen: overrides
            .setup_fee_yen
            .unwrap_or(plan.try_get("setup_fee_yen")?),
        system_fee_yen: overrides
            .system_fee_yen
            .unwrap_or(plan.try_get("system_fee_yen")?),
        cloud_fee_yen: overrides
            .cloud_fee_yen
            .unwrap_or(plan.try_get("cloud_fee_yen")?),
        prices,
        addon_fees,
    })
}

/// The month's contract periods with their terms and usage.
pub async fn periods(
    tx: &mut TenantTx,
    month: NaiveDate,
    tz: &str,
) -> Result<Vec<pricing::Period>, BillingError> {
    let first = month.with_day(1).unwrap_or(month);
    let after = first + Duration::days(pricing::days_in_month(first));
    let rows = sqlx::query(
        "SELECT plan_id, starts_on, ends_on, overrides, addons FROM contracts \
         WHERE starts_on < $2 AND (ends_on IS NULL OR ends_on > $1) ORDER BY starts_on",
    )
    .bind(first)
    .bind(after)
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let overrides = parse_overrides(&row.try_get::<serde_json::Value, _>("overrides")?)?;
        let addons: BTreeMap<String, i64> =
            serde_json::from_value(row.try_get("addons")?).unwrap_or_default();
        let starts_on: NaiveDate = row.try_get("starts_on")?;
        let ends_on: Option<NaiveDate> = row.try_get("ends_on")?;
        let from = starts_on.max(first);
        let until = ends_on.map_or(after, |e| e.min(after));
        let usage = usage::between(tx, from, until, tz).await?;
        out.push(pricing::Period {
            terms: terms(tx, row.try_get("plan_id")?, &overrides).await?,
            addons,
            starts_on,
            ends_on,
            usage,
        });
    }
    Ok(out)
}

/// A plan's hard cap on one metered kind, as it stands now: the included quantity of the contract
/// in force today (with the tenant's overrides), prorated for that contract's days in this month
/// exactly as the invoice prorates it, and the usage so far in those days. A hard-capped kind thus
/// never shows an overage line on an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub kind: MeteredKind,
    /// The month (first day, tenant's time zone) the cap belongs to.
    pub month: NaiveDate,
    pub cap: i64,
    pub used: i64,
}

impl Cap {
    /// Whether `more` units still fit under the cap.
    pub fn allows(&self, more: i64) -> bool {
        self.used + more <= self.cap
    }
}

/// The hard cap on `kind` at `now` (local date in `tz`), or None when the contract in force has
/// none (or there is no contract). Reads the terms ([`cap_terms`]) and the month's usage of that
/// kind in the contract's days ([`usage::total_of`]).
pub async fn hard_cap(
    tx: &mut TenantTx,
    kind: MeteredKind,
    tz: &str,
    now: DateTime<Utc>,
) -> Result<Option<Cap>, BillingError> {
    let Some(terms) = cap_terms(tx, kind, tz, now).await? else {
        return Ok(None);
    };
    let used = usage::total_of(tx, kind, terms.from, terms.until, tz).await?;
    Ok(Some(Cap {
        kind,
        month: terms.month,
        cap: terms.cap,
        used,
    }))
}

/// A hard cap's terms without its usage: the prorated cap and the local dates [from, until) of
/// this month that the contract in force covers (where its usage counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapTerms {
    pub month: NaiveDate,
    pub cap: i64,
    pub from: NaiveDate,
    pub until: NaiveDate,
}

/// The terms of the hard cap on `kind` at `now` (local date in `tz`), or None: the one rule for
/// what the cap is (the included quantity of the contract in force today, with the tenant's
/// overrides, prorated for that contract's days in the month exactly as the invoice prorates it).
pub async fn cap_terms(
    tx: &mut TenantTx,
    kind: MeteredKind,
    tz: &str,
    now: DateTime<Utc>,
) -> Result<Option<CapTerms>, BillingError> {
    let today: NaiveDate = sqlx::query_scalar("SELECT ($1::timestamptz AT TIME ZONE $2)::date")
        .bind(now)
        .bind(tz)
        .fetch_one(&mut **tx)
        .await?;
    let Some(row) = sqlx::query(
        "SELECT plan_id, starts_on, ends_on, overrides FROM contracts \
         WHERE starts_on <= $1 AND (ends_on IS NULL OR ends_on > $1) ORDER BY starts_on DESC LIMIT 1",
    )
    .bind(today)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let overrides = parse_overrides(&row.try_get::<serde_json::Value, _>("overrides")?)?;
    let terms = terms(tx, row.try_get("plan_id")?, &overrides).await?;
    let Some(price) = terms.prices.get(&kind).filter(|p| p.hard_cap).copied() else {
        return Ok(None);
    };
    let first = today.with_day(1).unwrap_or(today);
    let month_days = pricing::days_in_month(first);
    let after = first + Duration::days(month_days);
    let starts_on: NaiveDate = row.try_get("starts_on")?;
    let ends_on: Option<NaiveDate> = row.try_get("ends_on")?;
    let days = pricing::covered_days(first, starts_on, ends_on);
    Ok(Some(CapTerms {
        month: first,
        cap: pricing::prorate(price.included_quantity, days, month_days),
        from: starts_on.max(first),
        until: ends_on.map_or(after, |e| e.min(after)),
    }))
}

/// An invoice with its lines.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Invoice {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub month: NaiveDate,
    pub kind: String,
    pub status: String,
    pub number: Option<String>,
    pub corrects: Option<Uuid>,
    pub totals: Totals,
    pub grace_until: DateTime<Utc>,
    pub lines: Vec<Line>,
    /// Qualified-invoice (適格請求書) facts: the issuer and its registration number (fixed when
    /// final; the operator's current ones on a draft), the issue date (the day it was finalised,
    /// JST) and the payment due date (the end of the month after issue). None on a draft.
    pub issuer: Option<Issuer>,
    pub issued_on: Option<NaiveDate>,
    pub due_on: Option<NaiveDate>,
}

/// The platform operator as the issuer of invoices (適格請求書発行事業者).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issuer {
    pub name: String,
    /// 登録番号: `T` + the 13-digit corporate number.
    pub registration_number: String,
}

/// Checks a qualified-invoice registration number: `T` and 13 digits whose first digit is the
/// corporate number's check digit (9 − (Σ digit × weight (1, 2 alternating from the right)) mod 9).
pub fn valid_registration_number(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('T') else {
        return false;
    };
    if digits.len() != 13 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let d: Vec<i64> = digits.bytes().map(|b| i64::from(b - b'0')).collect();
    let sum: i64 = d[1..]
        .iter()
        .rev()
        .enumerate()
        .map(|(i, v)| v * if i % 2 == 0 { 1 } else { 2 })
        .sum();
    d[0] == 9 - sum % 9
}

/// Sets the operator's issuer name and registration number (from the configuration, at start-up).
pub async fn set_issuer(conn: &mut PgConnection, issuer: &Issuer) -> Result<(), BillingError> {
    if issuer.name.trim().is_empty() || issuer.name.chars().count() > 200 {
        return Err(BillingError::Validation(
            "billing.issuer_name: 1–200 characters".into(),
        ));
    }
    if !valid_registration_number(&issuer.registration_number) {
        return Err(BillingError::Validation(format!(
            "billing.issuer_registration_number: {:?} is not T + 13 digits with a valid check digit",
            issuer.registration_number
        )));
    }
    sqlx::query(
        "INSERT INTO billing_issuer (id, name, registration_number) VALUES (true, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, registration_number = EXCLUDED.registration_number, updated_at = now()",
    )
    .bind(issuer.name.trim())
    .bind(&issuer.registration_number)
    .execute(conn)
    .await?;
    Ok(())
}

/// The issuer a final invoice keeps, set in the finalising UPDATE (which also fixes the due date:
/// the last day of the month after the issue date, JST — 翌月末払い).
async fn current_issuer(
    tx: &mut TenantTx,
) -> Result<(Option<String>, Option<String>), sqlx::Error> {
    let issuer: Option<(String, String)> =
        sqlx::query_as("SELECT name, registration_number FROM billing_issuer")
            .fetch_optional(&mut **tx)
            .await?;
    Ok(issuer.unzip())
}

/// (Re)builds the month's draft from contracts and usage. Late usage (delivery receipts) keeps
/// counting until the grace period ends; a final invoice is never rebuilt.
pub async fn build_draft(
    tx: &mut TenantTx,
    month: NaiveDate,
    tz: &str,
    grace: Duration,
) -> Result<Invoice, BillingError> {
    let first = month.with_day(1).unwrap_or(month);
    let existing = sqlx::query(
        "SELECT id, status, number FROM invoices WHERE month = $1 AND kind = 'invoice' FOR UPDATE",
    )
    .bind(first)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = &existing
        && row.try_get::<String, _>("status")? == "final"
    {
        return Err(BillingError::Final(
            row.try_get::<Option<String>, _>("number")?
                .unwrap_or_default(),
        ));
    }
    let periods = periods(tx, first, tz).await?;
    let first_start: Option<NaiveDate> = sqlx::query_scalar("SELECT min(starts_on) FROM contracts")
        .fetch_one(&mut **tx)
        .await?;
    let setup_fee = match (first_start, periods.first()) {
        (Some(start), Some(p))
            if start.year() == first.year() && start.month() == first.month() =>
        {
            Some(p.terms.setup_fee_yen)
        }
        _ => None,
    };
    let lines = pricing::invoice_lines(first, &periods, setup_fee);
    let totals = pricing::totals(&lines);
    let after = first + Duration::days(pricing::days_in_month(first));
    let grace_until = DateTime::<Utc>::from_naive_utc_and_offset(
        after.and_hms_opt(0, 0, 0).unwrap_or_default(),
        Utc,
    ) + grace;
    let id = match existing {
        Some(row) => {
            let id: Uuid = row.try_get("id")?;
            sqlx::query("DELETE FROM invoice_lines WHERE invoice_id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            sqlx::query("UPDATE invoices SET subtotal_yen = $2, tax_yen = $3, total_yen = $4, grace_until = $5 WHERE id = $1")
                .bind(id)
                .bind(totals.subtotal_yen)
                .bind(totals.tax_yen)
                .bind(totals.total_yen)
                .bind(grace_until)
                .execute(&mut **tx)
                .await?;
            id
        }
        None => {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO invoices (tenant_id, id, month, subtotal_yen, tax_yen, total_yen, grace_until) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tx.tenant_id().0)
            .bind(id)
            .bind(first)
            .bind(totals.subtotal_yen)
            .bind(totals.tax_yen)
            .bind(totals.total_yen)
            .bind(grace_until)
            .execute(&mut **tx)
            .await?;
            id
        }
    };
    insert_lines(tx, id, &lines).await?;
    load_invoice(tx, id)
        .await?
        .ok_or(BillingError::NotFound("invoice"))
}

async fn insert_lines(tx: &mut TenantTx, invoice: Uuid, lines: &[Line]) -> Result<(), sqlx::Error> {
    for (i, l) in lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO invoice_lines (tenant_id, invoice_id, position, description, quantity, unit_price_yen, amount_yen) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tx.tenant_id().0)
        .bind(invoice)
        .bind(i as i32 + 1)
        .bind(&l.description)
        .bind(l.quantity)
        .bind(l.unit_price_yen)
        .bind(l.amount_yen)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The next number of the issuer's gapless sequence, taken inside the caller's transaction.
async fn next_number(tx: &mut TenantTx, year: i32) -> Result<String, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "INSERT INTO invoice_counters (issuer, last) VALUES ('yoyaku', 1) \
         ON CONFLICT (issuer) DO UPDATE SET last = invoice_counters.last + 1 RETURNING last",
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(format!("YYK-{year}-{n:06}"))
}

/// Finalises a draft once its grace period is over (or at once with `force`).
pub async fn finalize(
    tx: &mut TenantTx,
    id: Uuid,
    now: DateTime<Utc>,
    force: bool,
) -> Result<Invoice, BillingError> {
    let invoice = load_invoice(tx, id)
        .await?
        .ok_or(BillingError::NotFound("invoice"))?;
    if invoice.status == "final" {
        return Err(BillingError::Final(invoice.number.unwrap_or_default()));
    }
    if !force && now < invoice.grace_until {
        return Err(BillingError::GraceNotOver(invoice.grace_until));
    }
    let number = next_number(tx, now.year()).await?;
    let (issuer_name, issuer_registration) = current_issuer(tx).await?;
    sqlx::query(
        "UPDATE invoices SET status = 'final', number = $2, finalized_at = $3, \
                issuer_name = $4, issuer_registration = $5, \
                due_on = (date_trunc('month', $3::timestamptz AT TIME ZONE 'Asia/Tokyo') + interval '2 months')::date - 1 \
          WHERE id = $1",
    )
    .bind(id)
    .bind(&number)
    .bind(now)
    .bind(issuer_name)
    .bind(issuer_registration)
    .execute(&mut **tx)
    .await?;
    load_invoice(tx, id)
        .await?
        .ok_or(BillingError::NotFound("invoice"))
}

/// A final credit note against a final invoice: `lines` are the corrections (amounts as positive
/// numbers; they are stored negated).
pub async fn credit_note(
    tx: &mut TenantTx,
    corrects: Uuid,
    lines: &[Line],
    now: DateTime<Utc>,
) -> Result<Invoice, BillingError> {
    let original = load_invoice(tx, corrects)
        .await?
        .ok_or(BillingError::NotFound("invoice"))?;
    if original.status != "final" || original.kind != "invoice" {
        return Err(BillingError::Validation(
            "only a final invoice can be corrected by a credit note; edit the draft instead".into(),
        ));
    }
    if lines.is_empty() || lines.iter().any(|l| l.amount_yen <= 0) {
        return Err(BillingError::Validation(
            "a credit note needs lines with positive amounts to credit".into(),
        ));
    }
    let negated: Vec<Line> = lines
        .iter()
        .map(|l| Line {
            description: l.description.clone(),
            quantity: l.quantity,
            unit_price_yen: -l.unit_price_yen.abs(),
            amount_yen: -l.amount_yen,
        })
        .collect();
    if -negated.iter().map(|l| l.amount_yen).sum::<i64>() > original.totals.subtotal_yen {
        return Err(BillingError::Validation(
            "a credit note cannot credit more than the invoice".into(),
        ));
    }
    let totals = pricing::totals(&negated);
    let id = Uuid::now_v7();
    let number = next_number(tx, now.year()).await?;
    sqlx::query(
        "INSERT INTO invoices (tenant_id, id, month, kind, status, number, corrects, subtotal_yen, tax_yen, total_yen, grace_until, finalized_at) \
         VALUES ($1, $2, $3, 'credit_note', 'draft', NULL, $4, $5, $6, $7, $8, NULL)",
    )
    .bind(tx.tenant_id().0)
    .bind(id)
    .bind(original.month)
    .bind(corrects)
    .bind(totals.subtotal_yen)
    .bind(totals.tax_yen)
    .bind(totals.total_yen)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    insert_lines(tx, id, &negated).await?;
    let (issuer_name, issuer_registration) = current_issuer(tx).await?;
    sqlx::query(
        "UPDATE invoices SET status = 'final', number = $2, finalized_at = $3, \
                issuer_name = $4, issuer_registration = $5, \
                due_on = (date_trunc('month', $3::timestamptz AT TIME ZONE 'Asia/Tokyo') + interval '2 months')::date - 1 \
          WHERE id = $1",
    )
    .bind(id)
    .bind(&number)
    .bind(now)
    .bind(issuer_name)
    .bind(issuer_registration)
    .execute(&mut **tx)
    .await?;
    load_invoice(tx, id)
        .await?
        .ok_or(BillingError::NotFound("invoice"))
}

pub async fn load_invoice(tx: &mut TenantTx, id: Uuid) -> Result<Option<Invoice>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT i.id, i.tenant_id, i.month, i.kind, i.status, i.number, i.corrects, i.subtotal_yen, i.tax_yen, \
                i.total_yen, i.grace_until, i.due_on, (i.finalized_at AT TIME ZONE 'Asia/Tokyo')::date AS issued_on, \
                COALESCE(i.issuer_name, b.name) AS issuer_name, \
                COALESCE(i.issuer_registration, b.registration_number) AS issuer_registration \
         FROM invoices i LEFT JOIN billing_issuer b ON true WHERE i.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let lines = sqlx::query(
        "SELECT description, quantity, unit_price_yen, amount_yen FROM invoice_lines WHERE invoice_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| {
        Ok(Line {
            description: r.try_get("description")?,
            quantity: r.try_get("quantity")?,
            unit_price_yen: r.try_get("unit_price_yen")?,
            amount_yen: r.try_get("amount_yen")?,
        })
    })
    .collect::<Result<_, sqlx::Error>>()?;
    Ok(Some(Invoice {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        month: row.try_get("month")?,
        kind: row.try_get("kind")?,
        status: row.try_get("status")?,
        number: row.try_get("number")?,
        corrects: row.try_get("corrects")?,
        totals: Totals {
            subtotal_yen: row.try_get("subtotal_yen")?,
            tax_yen: row.try_get("tax_yen")?,
            total_yen: row.try_get("total_yen")?,
        },
        grace_until: row.try_get("grace_until")?,
        lines,
        issuer: match (
            row.try_get::<Option<String>, _>("issuer_name")?,
            row.try_get::<Option<String>, _>("issuer_registration")?,
        ) {
            (Some(name), Some(registration_number)) => Some(Issuer {
                name,
                registration_number,
            }),
            _ => None,
        },
        issued_on: row.try_get("issued_on")?,
        due_on: row.try_get("due_on")?,
    }))
}

/// All of a tenant's invoices and credit notes, newest month first.
pub async fn list_invoices(tx: &mut TenantTx) -> Result<Vec<Invoice>, sqlx::Error> {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM invoices ORDER BY month DESC, created_at")
            .fetch_all(&mut **tx)
            .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(i) = load_invoice(tx, id).await? {
            out.push(i);
        }
    }
    Ok(out)
}
