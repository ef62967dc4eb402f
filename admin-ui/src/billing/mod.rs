//! Pricing and billing pages. The operator's console (`/admin/plans`, `/admin/tenants/{slug}/billing`):
//! price list, a tenant's contract, this month's usage and projected invoice, a 12-month usage chart,
//! invoices with their actions. The city's own view (`/admin/t/{slug}/billing`): usage against the
//! included quantities and the SMS budget, a daily chart, invoices. Excel download for both at
//! `/admin/t/{slug}/invoices/{id}/xlsx`. The arithmetic is `tenants::billing`; nothing here computes
//! money. Every view of usage and every download is recorded in the tenant's audit log.

use maud::{Markup, html};
use platform::city::billing::{self};
use platform::staff::authz::{Act, Object, Scope};
use tenants::Tenant;
use tenants::billing::{BillingError, Invoice, Line, MeteredKind, Totals, report};
use uuid::Uuid;

use crate::format::{thousands, yen};
use crate::i18n::Lang;
use crate::page::{PageError, Staff};
use crate::routes::{Access as A, Route, get, post};
use crate::shell::enter;
use crate::state::AdminState;

mod contracts;
mod plans;
mod statements;

use contracts::{build_draft, credit_note, finalize, set_contract, tenant_billing, today_in};
use plans::{create_plan, plans};
use statements::{city_billing, download, printable, set_budget};

pub fn routes() -> Vec<Route> {
    let (read, write) = (
        A::City(Object::Billing, Act::Read),
        A::City(Object::Billing, Act::Write),
    );
    vec![
        get("/admin/plans", A::Operator, plans),
        post("/admin/plans", A::Operator, create_plan),
        get("/admin/tenants/{slug}/billing", A::Operator, tenant_billing),
        post("/admin/tenants/{slug}/contract", A::Operator, set_contract),
        post(
            "/admin/tenants/{slug}/invoices/draft",
            A::Operator,
            build_draft,
        ),
        post(
            "/admin/tenants/{slug}/invoices/{id}/finalize",
            A::Operator,
            finalize,
        ),
        post(
            "/admin/tenants/{slug}/invoices/{id}/credit-note",
            A::Operator,
            credit_note,
        ),
        get("/admin/t/{slug}/billing", read, city_billing),
        post("/admin/t/{slug}/billing/budget", write, set_budget),
        get("/admin/t/{slug}/invoices/{id}/xlsx", read, download),
        get("/admin/t/{slug}/invoices/{id}/print", read, printable),
    ]
}

fn tr(lang: Lang, ja: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

fn kind_label(lang: Lang, kind: MeteredKind) -> &'static str {
    match (lang, kind) {
        (Lang::Ja, k) => k.label(),
        (Lang::En, MeteredKind::SmsSegment) => "SMS segments",
        (Lang::En, MeteredKind::Email) => "E-mails",
        (Lang::En, MeteredKind::Booking) => "Bookings",
        (Lang::En, MeteredKind::Resident) => "Residents under management (peak)",
        (Lang::En, MeteredKind::Export) => "Exports",
        (Lang::En, MeteredKind::ApiCall) => "API calls",
    }
}

/// A bar chart rendered by the server: every bar carries its value and label as text, so it reads
/// without colour (and without JavaScript); the whole chart has a text alternative.
fn bar_chart(id: &str, title: &str, bars: &[(String, i64)]) -> Markup {
    let max = bars.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let bar_w = 36i64;
    let height = 160i64;
    let width = bar_w * bars.len() as i64 + 20;
    let summary = bars
        .iter()
        .map(|(l, v)| format!("{l}: {}", thousands(*v)))
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        figure {
            figcaption { (title) }
            svg id=(id) role="img" aria-label=(format!("{title}: {summary}")) width=(width) height=(height + 50)
                viewBox=(format!("0 0 {width} {}", height + 50)) xmlns="http://www.w3.org/2000/svg" {
                title { (title) ": " (summary) }
                @for (i, (label, value)) in bars.iter().enumerate() {
                    @let h = value * height / max;
                    @let x = 10 + i as i64 * bar_w;
                    rect x=(x + 4) y=(height + 15 - h) width=(bar_w - 8) height=(h) fill="#0b4f6c" stroke="#000" {}
                    text x=(x + bar_w / 2) y=(height + 12 - h) font-size="9" text-anchor="middle" { (thousands(*value)) }
                    text x=(x + bar_w / 2) y=(height + 30) font-size="9" text-anchor="middle" { (label) }
                }
                line x1="10" y1=(height + 15) x2=(width - 10) y2=(height + 15) stroke="#000" {}
            }
        }
    }
}

fn lines_table(lang: Lang, id: &str, lines: &[Line], totals: &Totals) -> Markup {
    html! {
        table id=(id) {
            tr { th { (tr(lang, "項目", "Item")) } th { (tr(lang, "数量", "Quantity")) } th { (tr(lang, "単価", "Unit price")) } th { (tr(lang, "金額", "Amount")) } }
            @for l in lines {
                tr { td { (l.description) } td { (thousands(l.quantity)) } td { (yen(l.unit_price_yen)) } td { (yen(l.amount_yen)) } }
            }
            tr { th colspan="3" { (tr(lang, "小計", "Subtotal")) } td { (yen(totals.subtotal_yen)) } }
            tr { th colspan="3" { (tr(lang, "消費税（10%、切り捨て）", "Consumption tax (10 %, rounded down)")) } td { (yen(totals.tax_yen)) } }
            tr { th colspan="3" { (tr(lang, "合計", "Total")) } td.total { (yen(totals.total_yen)) } }
        }
    }
}

fn usage_table(lang: Lang, usage: &[report::KindUsage]) -> Markup {
    html! {
        table #usage {
            tr { th { (tr(lang, "種類", "Kind")) } th { (tr(lang, "今月の利用", "Used this month")) } th { (tr(lang, "含まれる数量", "Included")) } th { (tr(lang, "超過単価", "Unit price beyond")) } th { (tr(lang, "上限", "Cap")) } }
            @for u in usage {
                tr data-kind=(u.kind.as_str()) {
                    td { (kind_label(lang, u.kind)) }
                    td { (thousands(u.used)) @if u.included > 0 { " (" (u.used * 100 / u.included) "%)" } }
                    td { (thousands(u.included)) }
                    td { (yen(u.unit_price_yen)) }
                    td { @if u.hard_cap { (tr(lang, "上限あり（超過不可）", "hard cap")) } @else { (tr(lang, "超過分を請求", "billed beyond")) } }
                }
            }
        }
    }
}

fn status_label(lang: Lang, i: &Invoice) -> &'static str {
    match (i.kind.as_str(), i.status.as_str()) {
        ("credit_note", _) => tr(lang, "クレジットノート", "credit note"),
        (_, "final") => tr(lang, "確定", "final"),
        _ => tr(lang, "下書き", "draft"),
    }
}

fn download_href(slug: &str, id: Uuid) -> String {
    format!("/admin/t/{slug}/invoices/{id}/xlsx")
}

// ---- access ------------------------------------------------------------------------------------

async fn tenant_by_slug(state: &AdminState, slug: &str, lang: Lang) -> Result<Tenant, PageError> {
    tenants::find_by_slug(&state.pool, slug)
        .await?
        .ok_or(PageError::not_found(lang))
}

/// The operator's scope in a tenant (404 for anyone else).
async fn operator_enter(
    state: &AdminState,
    staff: &Staff,
    slug: &str,
    act: Act,
) -> Result<(Tenant, Scope), PageError> {
    let lang = staff.lang;
    if !state.authz.is_platform_operator(&staff.actor).await {
        return Err(PageError::not_found(lang));
    }
    let t = tenant_by_slug(state, slug, lang).await?;
    let scope = billing::enter_operator(&state.authz, &staff.actor, t.id, act)
        .await
        .map_err(|d| PageError::denied(d, lang))?;
    Ok((t, scope))
}

/// A member's scope on the tenant's billing (city admin, auditor, operator): 404 for others, 403 for
/// other roles and for a suspended city's staff (as every city page).
async fn member_enter(
    state: &AdminState,
    staff: &Staff,
    slug: &str,
    act: Act,
) -> Result<(Tenant, Scope), PageError> {
    enter(state, staff, slug, Object::Billing, act).await
}

/// Reading usage or projecting an invoice fails only on the database or on stored contract terms
/// that no longer parse (both are our problem, not the user's).
fn stored_terms_error(e: BillingError) -> PageError {
    match e {
        BillingError::Database(e) => e.into(),
        other => sqlx::Error::Protocol(format!("stored billing data: {other}")).into(),
    }
}

fn billing_error(e: BillingError, lang: Lang) -> Result<String, PageError> {
    match e {
        BillingError::Database(e) => Err(e.into()),
        BillingError::NotFound(_) => Err(PageError::not_found(lang)),
        BillingError::Final(number) => Ok(match lang {
            Lang::Ja => format!(
                "請求書 {number} は確定済みのため変更できません。訂正はクレジットノートで行ってください。"
            ),
            Lang::En => format!(
                "Invoice {number} is final and cannot be changed; issue a credit note instead."
            ),
        }),
        other => Ok(other.to_string()),
    }
}

/// For the operator's tenant list: plan, this month's usage (non-zero kinds) and projected total.
/// The billing columns of the operator's tenant list, one per tenant; the view is recorded once in
/// the platform audit log (it shows every tenant's usage).
pub(crate) async fn summaries(
    state: &AdminState,
    staff: &Staff,
    all: &[Tenant],
) -> Result<Vec<Markup>, PageError> {
    let lang = staff.lang;
    let platform_scope = state
        .authz
        .enter_platform(&staff.actor, Act::Read)
        .await
        .map_err(|d| PageError::denied(d, lang))?;
    let mut out = Vec::with_capacity(all.len());
    for t in all {
        out.push(summary(state, staff, t).await?);
    }
    billing::record_tenant_list_view(&platform_scope, all.len()).await?;
    Ok(out)
}

async fn summary(state: &AdminState, staff: &Staff, t: &Tenant) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let mut scope = state
        .authz
        .enter(&staff.actor, t.id, Object::Billing, Act::Read)
        .await
        .map_err(|d| PageError::denied(d, lang))?;
    let s = billing::summary(&mut scope, today_in(t), t.time_zone.name())
        .await
        .map_err(stored_terms_error)?;
    scope.commit().await?;
    Ok(html! {
        td.plan { @if let Some(c) = &s.plan_code { (c) } @else { "—" } }
        td.usage { @for (k, v) in &s.used { @if *v > 0 { (kind_label(lang, *k)) ": " (thousands(*v)) br; } } }
        td.projected { @if let Some(p) = s.projected_yen { (yen(p)) } }
        td { a href={"/admin/tenants/" (t.slug) "/billing"} { (tr(lang, "料金と請求", "Billing")) } }
    })
}

pub(crate) fn summary_headers(lang: Lang) -> Markup {
    html! {
        th { (tr(lang, "プラン", "Plan")) } th { (tr(lang, "今月の利用", "Usage this month")) }
        th { (tr(lang, "今月の請求見込み", "Projected this month")) } th { (tr(lang, "請求", "Billing")) }
    }
}

pub(crate) fn plans_label(lang: Lang) -> &'static str {
    tr(lang, "料金プラン", "Plans")
}

pub(crate) fn billing_label(lang: Lang) -> &'static str {
    tr(lang, "料金と請求", "Billing")
}
