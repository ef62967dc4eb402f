//! The city's own view of its billing (`/admin/t/{slug}/billing`): usage against the included
//! quantities, the SMS budget, invoices; the printable invoice and its Excel download.

use axum::{
    Form,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use chrono::Utc;
use maud::{Markup, html};
use platform::city::billing::{self, InvoiceRead, UsageView};
use platform::staff::authz::Act;
use serde::Deserialize;
use tenants::billing::MeteredKind;
use uuid::Uuid;

use crate::format::{thousands, yen};
use crate::i18n::Lang;
use crate::page::{PageError, Staff, csrf_field, page};
use crate::sms_budget;
use crate::state::AdminState;

use super::contracts::{charts, invoice_rows, overview, today_in};
use super::{kind_label, lines_table, member_enter, tr, usage_table};

async fn city_page(
    state: &AdminState,
    staff: &Staff,
    slug: &str,
    budget_input: Option<&str>,
    message: Option<&str>,
) -> Result<(String, Markup), PageError> {
    let lang = staff.lang;
    let (t, mut scope) = member_enter(state, staff, slug, Act::Read).await?;
    // the one permission for the SMS budget, whichever page shows its form
    let can_set_budget =
        platform::notifications::channels::may_set_sms_budget(&state.authz, &staff.actor, t.id)
            .await
            .map_err(|d| PageError::denied(d, lang))?;
    let o = overview(&mut scope, &t, UsageView::City).await?;
    let budget = platform::notifications::channels::sms_budget_status(
        &mut scope,
        t.time_zone.name(),
        Utc::now(),
    )
    .await?
    .budget;
    let sms_used = o
        .usage
        .iter()
        .find(|u| u.kind == MeteredKind::SmsSegment)
        .map_or(0, |u| u.used);
    scope.commit().await?;
    let today = today_in(&t);
    let body = html! {
        h2 { (tr(lang, "今月の利用と含まれる数量", "Usage this month against included quantities")) " (" (today.format("%Y-%m")) ")" }
        (usage_table(lang, &o.usage))
        h2 { (tr(lang, "SMS予算", "SMS budget")) }
        p #sms-budget {
            @match budget {
                Some(b) => { (tr(lang, "今月", "This month")) ": " (thousands(sms_used)) " / " (thousands(b)) " " (tr(lang, "通", "segments"))
                    @if b > 0 { " (" (sms_used * 100 / b) "%)" } }
                None => { (tr(lang, "予算は設定されていません（今月", "No budget set (this month: ")) (thousands(sms_used)) (tr(lang, "通）", " segments)")) }
            }
        }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        @if can_set_budget {
            form method="post" action={"/admin/t/" (t.slug) "/billing/budget"} id="budget-form" {
                (csrf_field(staff))
                label { (tr(lang, "SMS月間予算（通、空欄で上限なし）", "Monthly SMS budget (segments; empty for none)")) br;
                    input name="budget" inputmode="numeric" value=(budget_input.map(str::to_owned).or(budget.map(|b| b.to_string())).unwrap_or_default()); }
                button type="submit" { (tr(lang, "保存", "Save")) }
            }
        }
        @if !o.cap_alerts.is_empty() {
            h2 { (tr(lang, "プラン上限の通知", "Plan cap alerts")) }
            (cap_alerts(lang, &o.cap_alerts))
        }
        h2 { (tr(lang, "今月の請求見込み", "Projected invoice this month")) }
        (lines_table(lang, "projected", &o.projected.0, &o.projected.1))
        h2 { (tr(lang, "今月の日別利用", "Daily usage this month")) }
        (charts(lang, &o.history, false))
        h2 { (tr(lang, "請求書", "Invoices")) }
        (invoice_rows(staff, &t, &o.invoices, false))
    };
    Ok((
        format!(
            "{} – {}",
            t.name,
            tr(lang, "利用状況と請求", "Usage and invoices")
        ),
        body,
    ))
}

/// The plan's cap alerts e-mailed to the city admins: month, kind, level (as text), use.
fn cap_alerts(lang: Lang, alerts: &[platform::caps::CapAlert]) -> Markup {
    html! {
        table #cap-alerts {
            tr { th { (tr(lang, "月", "Month")) } th { (tr(lang, "種類", "Kind")) } th { (tr(lang, "段階", "Level")) } th { (tr(lang, "利用 / 上限", "Used / cap")) } th { (tr(lang, "通知した管理者", "Admins e-mailed")) } }
            @for a in alerts {
                tr {
                    td { (a.month.format("%Y-%m")) }
                    td { (kind_label(lang, a.kind)) }
                    td { @if a.level >= 100 { (tr(lang, "上限に到達（100%）", "cap reached (100 %)")) } @else { (tr(lang, "80%を使用", "80 % used")) } }
                    td { (thousands(a.used)) " / " (thousands(a.cap)) }
                    td { (a.recipients) }
                }
            }
        }
    }
}

pub async fn city_billing(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (title, body) = city_page(&state, &staff, &slug, None, None).await?;
    Ok(page(staff.lang, &title, Some(&staff), body).into_response())
}

#[derive(Deserialize)]
pub struct BudgetForm {
    #[serde(default)]
    budget: String,
}

/// The SMS budget from the billing page: the same platform setter, permission, validation and
/// messages as the notifications page (`notifications::set_budget`).
pub async fn set_budget(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(form): Form<BudgetForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    match sms_budget::save_budget(&state, &staff, &slug, &form.budget).await? {
        Ok(()) => Ok(Redirect::to(&format!("/admin/t/{slug}/billing")).into_response()),
        Err(m) => {
            let (title, body) =
                city_page(&state, &staff, &slug, Some(&form.budget), Some(&m)).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page(lang, &title, Some(&staff), body),
            )
                .into_response())
        }
    }
}

/// The invoice as a printable page (A4, no navigation; the browser's "print to PDF" makes the PDF),
/// for the same people as the Excel download, and audited the same way.
pub async fn printable(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let id: Uuid = id.parse().map_err(|_| PageError::not_found(lang))?;
    let (t, mut scope) = member_enter(&state, &staff, &slug, Act::Read).await?;
    let invoice = billing::invoice(&mut scope, id, InvoiceRead::Html)
        .await?
        .ok_or(PageError::not_found(lang))?;
    scope.commit().await?;
    let title = if invoice.kind == "credit_note" {
        "クレジットノート"
    } else {
        "請求書"
    };
    let number = invoice
        .number
        .clone()
        .unwrap_or_else(|| "下書き（未確定）".into());
    let facts = platform::exports::spreadsheet::qualified_invoice_facts(&invoice, &t.name);
    let markup = maud::html! {
        (maud::DOCTYPE)
        html lang="ja" {
            head {
                meta charset="utf-8";
                title { (title) " " (number) }
                style { (maud::PreEscaped("body{font-family:'Noto Sans CJK JP',sans-serif;margin:2rem;color:#111}table{border-collapse:collapse;width:100%}th,td{border:1px solid #444;padding:.3rem .5rem}td.n{text-align:right}dl.qualified{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dd{margin:0}@page{size:A4;margin:15mm}@media print{a{display:none}}")) }
            }
            body {
                h1 { (title) }
                // qualified-invoice facts (適格請求書): the same rows as the Excel version
                dl.qualified {
                    @for (label, value) in facts.rows() {
                        dt { (label) } dd { (value) }
                    }
                    dt { "対象月" } dd { (invoice.month.format("%Y年%m月")) }
                }
                table {
                    tr { th { "項目" } th { "数量" } th { "単価" } th { "金額" } }
                    @for l in &invoice.lines {
                        tr { td { (l.description) } td.n { (l.quantity) } td.n { (yen(l.unit_price_yen)) } td.n { (yen(l.amount_yen)) } }
                    }
                    tr { td colspan="3" { "小計" } td.n { (yen(invoice.totals.subtotal_yen)) } }
                    tr { td colspan="3" { "消費税（10%・切り捨て）" } td.n { (yen(invoice.totals.tax_yen)) } }
                    tr { td colspan="3" { strong { "合計" } } td.n { strong { (yen(invoice.totals.total_yen)) } } }
                }
                p { a href={"/admin/t/" (t.slug) "/billing"} { "← 戻る / back" } }
            }
        }
    };
    Ok(axum::response::Html(markup.into_string()).into_response())
}

/// The invoice as Excel, for the tenant's members with billing access and the operator.
pub async fn download(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let id: Uuid = id.parse().map_err(|_| PageError::not_found(lang))?;
    let (t, mut scope) = member_enter(&state, &staff, &slug, Act::Read).await?;
    let invoice = billing::invoice(&mut scope, id, InvoiceRead::Xlsx)
        .await?
        .ok_or(PageError::not_found(lang))?;
    // an export that fails drops the scope: the download is not recorded
    let bytes = platform::exports::spreadsheet::invoice_xlsx(&invoice, &t.name).map_err(|e| {
        tracing::error!(error = %e, "invoice export failed");
        PageError::bad_request("the invoice could not be exported; please try again", lang)
    })?;
    scope.commit().await?;
    let name = format!(
        "invoice-{}-{}.xlsx",
        t.slug,
        invoice
            .number
            .clone()
            .unwrap_or_else(|| format!("draft-{}", invoice.month.format("%Y-%m")))
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
