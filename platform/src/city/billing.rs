//! The billing desk: what the admin UI and GraphQL do with plans, contracts, usage and invoices.
//! The arithmetic and the invoice life cycle are `tenants::billing`; this module adds what belongs
//! to the platform: who may do it (the guarded [`Scope`], and [`enter_operator`] for the operator's
//! console) and the audit entry that goes with it, written in the same transaction as the change or
//! the read it records. Front ends parse, call one of these, and render.
//!
//! Audited: plan creation (platform log), contracts, drafts, finalisations, credit notes, every
//! view of usage and every invoice read or download.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::json;
use sqlx::PgPool;
use tenants::TenantId;
use tenants::billing::{self, BillingError, Invoice, Line, MeteredKind, NewPlan, Totals, report};
use uuid::Uuid;

use crate::staff::audit;
use crate::staff::authz::{Act, Actor, Authz, Denied, Object, PlatformScope, Scope};

/// The operator's scope on a tenant's billing (contract, drafts, finalisation, credit notes, the
/// 12-month view). Anyone else — a city admin included — gets `NotFound`: the console does not
/// exist for them.
pub async fn enter_operator(
    authz: &Authz,
    actor: &Actor,
    tenant: TenantId,
    act: Act,
) -> Result<Scope, Denied> {
    if !authz.is_platform_operator(actor).await {
        return Err(Denied::NotFound);
    }
    authz.enter(actor, tenant, Object::Billing, act).await
}

/// The price list (platform-wide, no tenant).
pub async fn plans(pool: &PgPool) -> Result<Vec<report::PlanView>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    report::list_plans(&mut conn).await
}

/// Adds a plan to the price list; recorded in the platform audit log in the same transaction.
pub async fn create_plan(scope: &PlatformScope, plan: &NewPlan) -> Result<Uuid, BillingError> {
    let mut tx = scope.pool.begin().await?;
    let id = billing::create_plan(&mut tx, plan).await?;
    audit::record_platform_in(
        &mut tx,
        &scope.actor,
        "plan.create",
        &format!("plan/{id}"),
        json!({ "code": plan.code }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Who is looking at a tenant's usage (what the audit entry says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageView {
    /// The city's own page: this month, day by day.
    City,
    /// The operator's console: the last 12 months.
    Operator,
}

impl UsageView {
    fn as_str(self) -> &'static str {
        match self {
            Self::City => "city",
            Self::Operator => "operator",
        }
    }
}

/// This month's usage, the projection, the history and the invoices of the scope's tenant.
pub struct Overview {
    pub usage: Vec<report::KindUsage>,
    pub projected: (Vec<Line>, Totals),
    /// Per day this month ([`UsageView::City`]) or per month over 12 months ([`UsageView::Operator`]).
    pub history: Vec<(NaiveDate, BTreeMap<MeteredKind, i64>)>,
    pub invoices: Vec<Invoice>,
    /// The operator's view only: the contract in force today.
    pub contract: Option<report::ContractView>,
    /// The plan's cap alerts (80 % / 100 % of a capped kind), newest month first.
    pub cap_alerts: Vec<crate::caps::CapAlert>,
}

/// Everything a billing page shows, read in the scope and recorded as a usage view.
pub async fn overview(
    scope: &mut Scope,
    today: NaiveDate,
    tz: &str,
    view: UsageView,
) -> Result<Overview, BillingError> {
    let contract = match view {
        UsageView::Operator => report::current_contract(&mut scope.tx, today).await?,
        UsageView::City => None,
    };
    let usage = report::month_usage(&mut scope.tx, today, tz).await?;
    let projected = report::preview(&mut scope.tx, today, tz).await?;
    let history = match view {
        UsageView::Operator => report::monthly_history(&mut scope.tx, today, 12, tz).await?,
        UsageView::City => report::daily_usage(&mut scope.tx, today, tz).await?,
    };
    let invoices = billing::list_invoices(&mut scope.tx).await?;
    let cap_alerts = crate::caps::alerts(&mut scope.tx).await?;
    audit::record(
        scope,
        "usage.view",
        "billing",
        json!({ "view": view.as_str() }),
    )
    .await?;
    Ok(Overview {
        usage,
        projected,
        history,
        invoices,
        contract,
        cap_alerts,
    })
}

/// Usage per metered kind in the month of `day` (the API); recorded as a usage view.
pub async fn month_usage(
    scope: &mut Scope,
    day: NaiveDate,
    tz: &str,
) -> Result<Vec<report::KindUsage>, BillingError> {
    let list = report::month_usage(&mut scope.tx, day, tz).await?;
    audit::record(
        scope,
        "usage.view",
        "billing",
        json!({ "via": "graphql", "month": report::month_of(day) }),
    )
    .await?;
    Ok(list)
}

/// One line of the operator's tenant list: plan, this month's usage and the projected total.
pub struct Summary {
    pub plan_code: Option<String>,
    pub used: BTreeMap<MeteredKind, i64>,
    /// `None` when the stored terms cannot be priced (no contract).
    pub projected_yen: Option<i64>,
}

/// The billing columns of one tenant on the operator's list (not audited per tenant: the list as
/// a whole is, by [`record_tenant_list_view`]).
pub async fn summary(
    scope: &mut Scope,
    today: NaiveDate,
    tz: &str,
) -> Result<Summary, BillingError> {
    let contract = report::current_contract(&mut scope.tx, today).await?;
    let first = report::month_of(today);
    let used = billing::usage::between(
        &mut scope.tx,
        first,
        first + Duration::days(billing::pricing::days_in_month(today)),
        tz,
    )
    .await?;
    let projected_yen = match report::preview(&mut scope.tx, today, tz).await {
        Ok((_, totals)) => Some(totals.total_yen),
        Err(BillingError::Database(e)) => return Err(BillingError::Database(e)),
        Err(_) => None,
    };
    Ok(Summary {
        plan_code: contract.map(|c| c.plan_code),
        used,
        projected_yen,
    })
}

/// The operator saw every tenant's usage on the tenant list: one entry in the platform log.
pub async fn record_tenant_list_view(
    scope: &PlatformScope,
    tenants: usize,
) -> Result<(), sqlx::Error> {
    audit::record_platform(
        &scope.pool,
        &scope.actor,
        "usage.view",
        "tenants",
        json!({ "tenants": tenants }),
    )
    .await
}

/// Puts the tenant on a plan from `starts_on` (the operator; see [`enter_operator`]).
pub async fn start_contract(
    scope: &mut Scope,
    plan_code: &str,
    starts_on: NaiveDate,
    overrides: serde_json::Value,
    addons: BTreeMap<String, i64>,
) -> Result<Uuid, BillingError> {
    let id = billing::start_contract(
        &mut scope.tx,
        plan_code,
        starts_on,
        overrides.clone(),
        addons.clone(),
    )
    .await?;
    audit::record(
        scope,
        "contract.start",
        &format!("contract/{id}"),
        json!({ "plan": plan_code, "starts_on": starts_on, "addons": addons, "overrides": overrides }),
    )
    .await?;
    Ok(id)
}

/// (Re)builds the draft invoice of `month` with the standard grace period.
pub async fn build_draft(
    scope: &mut Scope,
    month: NaiveDate,
    tz: &str,
) -> Result<Invoice, BillingError> {
    let inv =
        billing::build_draft(&mut scope.tx, month, tz, Duration::days(report::GRACE_DAYS)).await?;
    audit::record(
        scope,
        "invoice.draft",
        &format!("invoice/{}", inv.id),
        json!({ "month": month, "total_yen": inv.totals.total_yen }),
    )
    .await?;
    Ok(inv)
}

/// Finalises a draft (after its grace period, or at once with `force`).
pub async fn finalize(
    scope: &mut Scope,
    id: Uuid,
    now: DateTime<Utc>,
    force: bool,
) -> Result<Invoice, BillingError> {
    let inv = billing::finalize(&mut scope.tx, id, now, force).await?;
    audit::record(
        scope,
        "invoice.finalize",
        &format!("invoice/{id}"),
        json!({ "number": inv.number, "forced": force }),
    )
    .await?;
    Ok(inv)
}

/// A credit note of `amount_yen` (before tax) against a final invoice.
pub async fn credit_note(
    scope: &mut Scope,
    corrects: Uuid,
    description: &str,
    amount_yen: i64,
    now: DateTime<Utc>,
) -> Result<Invoice, BillingError> {
    let line = Line {
        description: description.to_owned(),
        quantity: 1,
        unit_price_yen: amount_yen,
        amount_yen,
    };
    let cn = billing::credit_note(&mut scope.tx, corrects, &[line], now).await?;
    audit::record(
        scope,
        "invoice.credit_note",
        &format!("invoice/{}", cn.id),
        json!({ "corrects": corrects, "number": cn.number, "subtotal_yen": cn.totals.subtotal_yen }),
    )
    .await?;
    Ok(cn)
}

/// Invoices and credit notes of the scope's tenant, newest month first (not audited: the list
/// shows totals only).
pub async fn invoices(scope: &mut Scope) -> Result<Vec<Invoice>, sqlx::Error> {
    billing::list_invoices(&mut scope.tx).await
}

/// A place in the order of [`invoice_page`]: the month newest first, then within a month in the
/// order issued (`created_at`, then id) — the invoice before the credit notes correcting it, as
/// [`invoices`] lists them. None of the three ever changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvoicePosition {
    pub month: NaiveDate,
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// One page of the scope's tenant's invoices and credit notes in the order of [`invoices`]: those
/// after `after` (from the newest month when `None`), at most `first + 1` of them — one more than
/// asked for tells the caller whether another page follows — each with its place to continue
/// after. Not audited, like [`invoices`]. Paging to the end sees every document that existed when
/// paging began exactly once.
pub async fn invoice_page(
    scope: &mut Scope,
    after: Option<InvoicePosition>,
    first: i64,
) -> Result<Vec<(InvoicePosition, Invoice)>, sqlx::Error> {
    let keys: Vec<(NaiveDate, DateTime<Utc>, Uuid)> = sqlx::query_as(
        "SELECT month, created_at, id FROM invoices WHERE tenant_id = $1 \
         AND ($2::date IS NULL OR month < $2 \
              OR (month = $2 AND (created_at, id) > ($3::timestamptz, $4::uuid))) \
         ORDER BY month DESC, created_at, id LIMIT $5",
    )
    .bind(scope.tenant_id().0)
    .bind(after.map(|a| a.month))
    .bind(after.map(|a| a.created_at))
    .bind(after.map(|a| a.id))
    .bind(first + 1)
    .fetch_all(&mut *scope.tx)
    .await?;
    let mut out = Vec::with_capacity(keys.len());
    for (month, created_at, id) in keys {
        if let Some(invoice) = billing::load_invoice(&mut scope.tx, id).await? {
            let at = InvoicePosition {
                month,
                created_at,
                id,
            };
            out.push((at, invoice));
        }
    }
    Ok(out)
}

/// How many invoices and credit notes the scope's tenant has.
pub async fn invoice_count(scope: &mut Scope) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM invoices WHERE tenant_id = $1")
        .bind(scope.tenant_id().0)
        .fetch_one(&mut *scope.tx)
        .await
}

/// How an invoice is read (what the audit entry says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceRead {
    /// The Excel download.
    Xlsx,
    /// The printable page.
    Html,
    /// The API.
    Api,
}

/// One invoice of the scope's tenant (`None` for another tenant's id), recorded as read.
pub async fn invoice(
    scope: &mut Scope,
    id: Uuid,
    how: InvoiceRead,
) -> Result<Option<Invoice>, sqlx::Error> {
    let Some(invoice) = billing::load_invoice(&mut scope.tx, id).await? else {
        return Ok(None);
    };
    let (action, detail) = match how {
        InvoiceRead::Xlsx => (
            "invoice.download",
            json!({ "number": invoice.number, "format": "xlsx" }),
        ),
        InvoiceRead::Html => (
            "invoice.download",
            json!({ "number": invoice.number, "format": "html" }),
        ),
        InvoiceRead::Api => ("invoice.view", json!({ "via": "graphql" })),
    };
    audit::record(scope, action, &format!("invoice/{id}"), detail).await?;
    Ok(Some(invoice))
}
