//! The operator's view of one tenant's billing (`/admin/tenants/{slug}/billing`): its contract, this
//! month's usage and projected invoice, charts, invoices and their actions (draft, finalize, credit
//! note).

use std::collections::BTreeMap;

use axum::{
    Form,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use chrono::{Datelike, NaiveDate, Utc};
use maud::{Markup, html};
use platform::city::billing::{self, UsageView};
use platform::staff::authz::{Act, Scope};
use serde::Deserialize;
use serde_json::json;
use tenants::Tenant;
use tenants::billing::{BillingError, Invoice, MeteredKind};
use uuid::Uuid;

use crate::format::yen;
use crate::i18n::Lang;
use crate::page::{PageError, Staff, csrf_field, page};
use crate::state::AdminState;

use super::plans::money;
use super::{
    bar_chart, billing_error, download_href, kind_label, lines_table, operator_enter, status_label,
    stored_terms_error, tr, usage_table,
};

#[derive(Deserialize, Default)]
pub struct ContractForm {
    #[serde(default)]
    plan: String,
    #[serde(default)]
    starts_on: String,
    /// "code=quantity, …"
    #[serde(default)]
    addons: String,
    /// JSON, e.g. {"system_fee_yen": 90000}
    #[serde(default)]
    overrides: String,
}

pub(super) fn today_in(t: &Tenant) -> NaiveDate {
    Utc::now().with_timezone(&t.time_zone.0).date_naive()
}

/// Everything a billing page shows, read through the platform (which records the view).
pub(super) async fn overview(
    scope: &mut Scope,
    t: &Tenant,
    view: UsageView,
) -> Result<billing::Overview, PageError> {
    billing::overview(scope, today_in(t), t.time_zone.name(), view)
        .await
        .map_err(stored_terms_error)
}

pub(super) fn charts(
    lang: Lang,
    history: &[(NaiveDate, BTreeMap<MeteredKind, i64>)],
    monthly: bool,
) -> Markup {
    html! {
        @for k in MeteredKind::ALL {
            @if history.iter().any(|(_, m)| m.get(&k).is_some_and(|v| *v > 0)) {
                @let bars: Vec<(String, i64)> = history.iter().map(|(d, m)| (
                    if monthly { d.format("%Y-%m").to_string() } else { d.day().to_string() },
                    m.get(&k).copied().unwrap_or(0),
                )).collect();
                (bar_chart(&format!("chart-{}", k.as_str()), kind_label(lang, k), &bars))
            }
        }
    }
}

pub(super) fn invoice_rows(
    staff: &Staff,
    t: &Tenant,
    invoices: &[Invoice],
    operator: bool,
) -> Markup {
    let lang = staff.lang;
    let now = Utc::now();
    html! {
        table #invoices {
            tr { th { (tr(lang, "対象月", "Month")) } th { (tr(lang, "番号", "Number")) } th { (tr(lang, "状態", "Status")) } th { (tr(lang, "合計", "Total")) } th { "Excel" } @if operator { th { (tr(lang, "操作", "Actions")) } } }
            @for i in invoices {
                tr data-invoice=(i.id) {
                    td { (i.month.format("%Y-%m")) }
                    td { (i.number.clone().unwrap_or_default()) }
                    td.status { (status_label(lang, i)) }
                    td { (yen(i.totals.total_yen)) }
                    td {
                        a.download href=(download_href(&t.slug, i.id)) { (tr(lang, "ダウンロード", "Download")) }
                        " · "
                        a.print href={"/admin/t/" (t.slug) "/invoices/" (i.id) "/print"} { (tr(lang, "印刷用", "Printable")) }
                    }
                    @if operator {
                        td {
                            @if i.status == "draft" {
                                form method="post" action={"/admin/tenants/" (t.slug) "/invoices/" (i.id) "/finalize"} .finalize {
                                    (csrf_field(staff))
                                    @if now < i.grace_until {
                                        label { input type="checkbox" name="force" value="on";
                                            (tr(lang, "猶予期間中ですが強制的に確定する", "Force: finalise before the grace period ends")) " (" (i.grace_until.with_timezone(&t.time_zone.0).format("%Y-%m-%d %H:%M")) ")" }
                                    } @else {
                                        p { (tr(lang, "猶予期間終了済み", "Grace period over")) }
                                    }
                                    button type="submit" { (tr(lang, "確定する", "Finalise")) }
                                }
                            } @else if i.kind == "invoice" {
                                form method="post" action={"/admin/tenants/" (t.slug) "/invoices/" (i.id) "/credit-note"} .credit-note {
                                    (csrf_field(staff))
                                    label { (tr(lang, "訂正内容", "Correction")) br; input name="description" required; }
                                    label { (tr(lang, "減額（円、税抜）", "Amount to credit (yen, before tax)")) br; input name="amount" inputmode="numeric" required; }
                                    button type="submit" { (tr(lang, "クレジットノートを発行", "Issue credit note")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn tenant_billing_page(
    state: &AdminState,
    staff: &Staff,
    slug: &str,
    form: &ContractForm,
    message: Option<&str>,
) -> Result<(String, Markup), PageError> {
    let lang = staff.lang;
    let (t, mut scope) = operator_enter(state, staff, slug, Act::Read).await?;
    let today = today_in(&t);
    let o = overview(&mut scope, &t, UsageView::Operator).await?;
    scope.commit().await?;
    let contract = &o.contract;
    let plans = billing::plans(&state.pool).await?;
    let month_default = today.format("%Y-%m").to_string();
    let body = html! {
        p { a href={"/admin/tenants/" (t.slug)} { (t.name) } " · " a href="/admin/plans" { (tr(lang, "料金プラン", "Plans")) } }
        h2 { (tr(lang, "契約", "Contract")) }
        @match contract {
            Some(c) => p #contract {
                (c.plan_name) " (" (c.plan_code) ") " (tr(lang, "開始日", "from")) " " (c.starts_on)
                @if let Some(e) = c.ends_on { " – " (e) }
                @for (code, q) in &c.addons { " · " (code) " × " (q) }
                @if c.overrides != json!({}) { " · " (tr(lang, "個別条件", "overrides")) ": " code { (c.overrides) } }
            },
            None => p #contract { (tr(lang, "契約はまだありません。", "No contract yet.")) },
        }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        form method="post" action={"/admin/tenants/" (t.slug) "/contract"} id="contract-form" {
            (csrf_field(staff))
            label { (tr(lang, "プラン", "Plan")) br;
                select name="plan" required {
                    @for p in &plans { option value=(p.code) selected[p.code == form.plan] { (p.name) " (" (p.code) ")" } }
                }
            }
            label { (tr(lang, "開始日（プラン変更は後の日付で）", "Starts on (a plan change: a later date)")) br;
                input type="date" name="starts_on" value=(if form.starts_on.is_empty() { today.to_string() } else { form.starts_on.clone() }) required; }
            label { (tr(lang, "オプション（例: multilingual=1, call_center_seat=3）", "Add-ons (e.g. multilingual=1, call_center_seat=3)")) br;
                input name="addons" value=(form.addons); }
            label { (tr(lang, "個別条件（JSON、例: {\"system_fee_yen\": 90000}）", "Overrides (JSON, e.g. {\"system_fee_yen\": 90000})")) br;
                input name="overrides" value=(form.overrides); }
            button type="submit" { (tr(lang, "契約を保存", "Save contract")) }
        }
        h2 { (tr(lang, "今月の利用", "Usage this month")) " (" (today.format("%Y-%m")) ")" }
        (usage_table(lang, &o.usage))
        h2 { (tr(lang, "今月の請求見込み（保存されません）", "Projected invoice this month (not stored)")) }
        (lines_table(lang, "projected", &o.projected.0, &o.projected.1))
        h2 { (tr(lang, "過去12か月の利用", "Usage over the last 12 months")) }
        (charts(lang, &o.history, true))
        h2 { (tr(lang, "請求書", "Invoices")) }
        form method="post" action={"/admin/tenants/" (t.slug) "/invoices/draft"} id="draft-form" {
            (csrf_field(staff))
            label { (tr(lang, "対象月（YYYY-MM）", "Month (YYYY-MM)")) br; input name="month" value=(month_default) required pattern="[0-9]{4}-[0-9]{2}"; }
            button type="submit" { (tr(lang, "下書きを作成／更新", "Build / refresh draft")) }
        }
        (invoice_rows(staff, &t, &o.invoices, true))
    };
    Ok((
        format!("{} – {}", t.name, tr(lang, "料金と請求", "Billing")),
        body,
    ))
}

pub async fn tenant_billing(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (title, body) =
        tenant_billing_page(&state, &staff, &slug, &ContractForm::default(), None).await?;
    Ok(page(staff.lang, &title, Some(&staff), body).into_response())
}

async fn rerender(
    state: &AdminState,
    staff: &Staff,
    slug: &str,
    form: &ContractForm,
    message: &str,
) -> Result<Response, PageError> {
    let (title, body) = tenant_billing_page(state, staff, slug, form, Some(message)).await?;
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        page(staff.lang, &title, Some(staff), body),
    )
        .into_response())
}

pub(super) fn back(slug: &str) -> Response {
    Redirect::to(&format!("/admin/tenants/{slug}/billing")).into_response()
}

fn parse_addons(raw: &str, lang: Lang) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for part in raw.split(',').filter(|p| !p.trim().is_empty()) {
        let (code, q) = part.split_once('=').unwrap_or((part, "1"));
        let q: i64 = q.trim().parse().map_err(|_| match lang {
            Lang::Ja => format!(
                "オプション「{}」: 数量は整数で入力してください",
                part.trim()
            ),
            Lang::En => format!(
                "add-on {:?}: the quantity must be a whole number",
                part.trim()
            ),
        })?;
        out.insert(code.trim().to_owned(), q);
    }
    Ok(out)
}

pub async fn set_contract(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(form): Form<ContractForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (_, mut scope) = operator_enter(&state, &staff, &slug, Act::Write).await?;
    let parsed = (|| {
        let starts_on =
            NaiveDate::parse_from_str(form.starts_on.trim(), "%Y-%m-%d").map_err(|_| {
                tr(
                    lang,
                    "開始日を YYYY-MM-DD で入力してください",
                    "enter the start date as YYYY-MM-DD",
                )
                .to_owned()
            })?;
        let addons = parse_addons(&form.addons, lang)?;
        let overrides: serde_json::Value = if form.overrides.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&form.overrides).map_err(|e| format!("overrides: {e}"))?
        };
        Ok::<_, String>((starts_on, addons, overrides))
    })();
    let message = match parsed {
        Ok((starts_on, addons, overrides)) => {
            match billing::start_contract(&mut scope, &form.plan, starts_on, overrides, addons)
                .await
            {
                Ok(_) => {
                    scope.commit().await?;
                    return Ok(back(&slug));
                }
                Err(BillingError::NotFound(_)) => {
                    tr(lang, "そのプランはありません", "no such plan").to_owned()
                }
                Err(e) => billing_error(e, lang)?,
            }
        }
        Err(m) => m,
    };
    drop(scope);
    rerender(&state, &staff, &slug, &form, &message).await
}

#[derive(Deserialize)]
pub struct DraftForm {
    #[serde(default)]
    month: String,
}

pub async fn build_draft(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Form(form): Form<DraftForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = operator_enter(&state, &staff, &slug, Act::Write).await?;
    let message = match NaiveDate::parse_from_str(&format!("{}-01", form.month.trim()), "%Y-%m-%d")
    {
        Ok(month) => match billing::build_draft(&mut scope, month, t.time_zone.name()).await {
            Ok(_) => {
                scope.commit().await?;
                return Ok(back(&slug));
            }
            Err(e) => billing_error(e, lang)?,
        },
        Err(_) => tr(
            lang,
            "対象月を YYYY-MM で入力してください",
            "enter the month as YYYY-MM",
        )
        .to_owned(),
    };
    drop(scope);
    rerender(&state, &staff, &slug, &ContractForm::default(), &message).await
}

#[derive(Deserialize)]
pub struct FinalizeForm {
    #[serde(default)]
    force: String,
}

pub async fn finalize(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, id)): Path<(String, Uuid)>,
    Form(form): Form<FinalizeForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (_, mut scope) = operator_enter(&state, &staff, &slug, Act::Write).await?;
    let force = !form.force.is_empty();
    let message = match billing::finalize(&mut scope, id, Utc::now(), force).await {
        Ok(_) => {
            scope.commit().await?;
            return Ok(back(&slug));
        }
        Err(BillingError::GraceNotOver(until)) => match lang {
            Lang::Ja => format!(
                "猶予期間中（{until} まで）です。今すぐ確定するには「強制的に確定する」を選んでください。"
            ),
            Lang::En => format!(
                "The draft stays editable until {until}; tick \"Force\" to finalise it now."
            ),
        },
        Err(e) => billing_error(e, lang)?,
    };
    drop(scope);
    rerender(&state, &staff, &slug, &ContractForm::default(), &message).await
}

#[derive(Deserialize)]
pub struct CreditForm {
    #[serde(default)]
    description: String,
    #[serde(default)]
    amount: String,
}

pub async fn credit_note(
    State(state): State<AdminState>,
    staff: Staff,
    Path((slug, id)): Path<(String, Uuid)>,
    Form(form): Form<CreditForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (_, mut scope) = operator_enter(&state, &staff, &slug, Act::Write).await?;
    let message = match money(tr(lang, "減額", "amount"), &form.amount, lang) {
        Ok(amount) if !form.description.trim().is_empty() => {
            match billing::credit_note(&mut scope, id, form.description.trim(), amount, Utc::now())
                .await
            {
                Ok(_) => {
                    scope.commit().await?;
                    return Ok(back(&slug));
                }
                Err(e) => billing_error(e, lang)?,
            }
        }
        Ok(_) => tr(
            lang,
            "訂正内容を入力してください",
            "describe the correction",
        )
        .to_owned(),
        Err(m) => m,
    };
    drop(scope);
    rerender(&state, &staff, &slug, &ContractForm::default(), &message).await
}
