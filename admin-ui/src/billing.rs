//! Pricing and billing pages. The operator's console (`/admin/plans`, `/admin/tenants/{slug}/billing`):
//! price list, a tenant's contract, this month's usage and projected invoice, a 12-month usage chart,
//! invoices with their actions. The city's own view (`/admin/t/{slug}/billing`): usage against the
//! included quantities and the SMS budget, a daily chart, invoices. Excel download for both at
//! `/admin/t/{slug}/invoices/{id}/xlsx`. The arithmetic is `tenants::billing`; nothing here computes
//! money. Every view of usage and every download is recorded in the tenant's audit log.

use std::collections::BTreeMap;

use axum::{
    Form,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use chrono::{Datelike, NaiveDate, Utc};
use maud::{Markup, html};
use platform::authz::{Act, Object, Scope};
use platform::billing::{self, InvoiceRead, UsageView};
use serde::Deserialize;
use serde_json::json;
use tenants::Tenant;
use tenants::billing::{BillingError, Invoice, Line, MeteredKind, NewPlan, Price, Totals, report};
use uuid::Uuid;

use crate::format::{thousands, yen};
use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff, csrf_field, page};
use crate::routes::{Access as A, Route, get, post};
use crate::shell::enter;
use crate::sms_budget;
use crate::state::AdminState;

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

// ---- plans -------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct PlanForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    setup_fee: String,
    #[serde(default)]
    system_fee: String,
    #[serde(default)]
    cloud_fee: String,
    /// one add-on a line: code, name, monthly fee
    #[serde(default)]
    addons: String,
    #[serde(flatten)]
    rest: BTreeMap<String, String>,
}

fn money(field: &str, raw: &str, lang: Lang) -> Result<i64, String> {
    let cleaned: String = raw.chars().filter(|c| *c != ',' && *c != '_').collect();
    match cleaned.trim().parse::<i64>() {
        Ok(v) if v >= 0 => Ok(v),
        _ => Err(match lang {
            Lang::Ja => format!("{field}: 0以上の整数（円）を入力してください"),
            Lang::En => format!("{field}: enter a whole number of yen, 0 or more"),
        }),
    }
}

fn parse_plan(f: &PlanForm, lang: Lang) -> Result<NewPlan, String> {
    let mut prices = BTreeMap::new();
    for kind in MeteredKind::ALL {
        let k = kind.as_str();
        let unit = f
            .rest
            .get(&format!("{k}_unit"))
            .map(String::as_str)
            .unwrap_or("");
        let included = f
            .rest
            .get(&format!("{k}_included"))
            .map(String::as_str)
            .unwrap_or("");
        if unit.trim().is_empty() && included.trim().is_empty() {
            continue;
        }
        prices.insert(
            kind,
            Price {
                included_quantity: money(
                    &format!("{k} included"),
                    if included.trim().is_empty() {
                        "0"
                    } else {
                        included
                    },
                    lang,
                )?,
                unit_price_yen: money(
                    &format!("{k} unit price"),
                    if unit.trim().is_empty() { "0" } else { unit },
                    lang,
                )?,
                hard_cap: f
                    .rest
                    .get(&format!("{k}_cap"))
                    .is_some_and(|v| !v.is_empty()),
            },
        );
    }
    let mut addons = Vec::new();
    for line in f.addons.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split(',').map(str::trim).collect();
        let [code, name, fee] = parts.as_slice() else {
            return Err(match lang {
                Lang::Ja => {
                    format!("オプション「{line}」: 「コード, 名称, 月額」の形式で入力してください")
                }
                Lang::En => format!("add-on {line:?}: write \"code, name, monthly fee\""),
            });
        };
        addons.push((code.to_string(), name.to_string(), money(code, fee, lang)?));
    }
    if f.name.trim().is_empty() {
        return Err(tr(lang, "プラン名を入力してください", "enter the plan's name").into());
    }
    Ok(NewPlan {
        code: f.code.trim().to_owned(),
        name: f.name.trim().to_owned(),
        setup_fee_yen: money(tr(lang, "初期費用", "set-up fee"), &f.setup_fee, lang)?,
        system_fee_yen: money(
            tr(lang, "システム利用料", "system fee"),
            &f.system_fee,
            lang,
        )?,
        cloud_fee_yen: money(tr(lang, "クラウド利用料", "cloud fee"), &f.cloud_fee, lang)?,
        prices,
        addons,
    })
}

async fn plans_body(
    state: &AdminState,
    staff: &Staff,
    f: &PlanForm,
    message: Option<&str>,
) -> Result<Markup, PageError> {
    let lang = staff.lang;
    let list = billing::plans(&state.pool).await?;
    let v = |k: &str| f.rest.get(k).cloned().unwrap_or_default();
    Ok(html! {
        p { a href="/admin/tenants" { (lang.t(K::Municipalities)) } }
        table #plans {
            tr { th { (tr(lang, "コード", "Code")) } th { (tr(lang, "名称", "Name")) } th { (tr(lang, "初期費用", "Set-up fee")) } th { (tr(lang, "システム利用料（月）", "System fee / month")) } th { (tr(lang, "クラウド利用料（月）", "Cloud fee / month")) } th { (tr(lang, "従量", "Metered")) } th { (tr(lang, "オプション", "Add-ons")) } }
            @for p in &list {
                tr {
                    td { (p.code) } td { (p.name) } td { (yen(p.setup_fee_yen)) } td { (yen(p.system_fee_yen)) } td { (yen(p.cloud_fee_yen)) }
                    td { @for (k, pr) in &p.prices { (kind_label(lang, *k)) ": " (thousands(pr.included_quantity)) " + " (yen(pr.unit_price_yen)) @if pr.hard_cap { " (cap)" } br; } }
                    td { @for (c, n, fee) in &p.addons { (n) " (" (c) "): " (yen(*fee)) br; } }
                }
            }
        }
        h2 { (tr(lang, "プランを作成", "Create a plan")) }
        @if let Some(m) = message { p.error role="alert" { (m) } }
        form method="post" action="/admin/plans" id="plan" {
            (csrf_field(staff))
            label { (tr(lang, "コード（英小文字・数字・-）", "Code (lowercase letters, digits, -)")) br; input name="code" value=(f.code) required; }
            label { (tr(lang, "名称", "Name")) br; input name="name" value=(f.name) required; }
            label { (tr(lang, "初期費用（円）", "Set-up fee (yen)")) br; input name="setup_fee" value=(f.setup_fee) inputmode="numeric" required; }
            label { (tr(lang, "システム利用料（円／月）", "System fee (yen / month)")) br; input name="system_fee" value=(f.system_fee) inputmode="numeric" required; }
            label { (tr(lang, "クラウド利用料（円／月）", "Cloud fee (yen / month)")) br; input name="cloud_fee" value=(f.cloud_fee) inputmode="numeric" required; }
            fieldset {
                legend { (tr(lang, "従量課金（空欄の種類は対象外）", "Metered kinds (leave empty for none)")) }
                table {
                    tr { th { (tr(lang, "種類", "Kind")) } th { (tr(lang, "含まれる数量／月", "Included / month")) } th { (tr(lang, "超過単価（円）", "Unit price (yen)")) } th { (tr(lang, "上限", "Hard cap")) } }
                    @for k in MeteredKind::ALL {
                        @let key = k.as_str();
                        tr {
                            td { (kind_label(lang, k)) }
                            td { input name={(key) "_included"} value=(v(&format!("{key}_included"))) inputmode="numeric" aria-label={(kind_label(lang, k)) " included"}; }
                            td { input name={(key) "_unit"} value=(v(&format!("{key}_unit"))) inputmode="numeric" aria-label={(kind_label(lang, k)) " unit price"}; }
                            td { input type="checkbox" name={(key) "_cap"} value="on" checked[!v(&format!("{key}_cap")).is_empty()] aria-label={(kind_label(lang, k)) " hard cap"}; }
                        }
                    }
                }
            }
            label { (tr(lang, "オプション（1行に「コード, 名称, 月額」）", "Add-ons (one a line: code, name, monthly fee)")) br;
                textarea name="addons" rows="3" cols="50" { (f.addons) } }
            button type="submit" { (tr(lang, "プランを作成", "Create plan")) }
        }
    })
}

pub async fn plans(State(state): State<AdminState>, staff: Staff) -> Result<Response, PageError> {
    if !state.authz.is_platform_operator(&staff.actor).await {
        return Err(PageError::not_found(staff.lang));
    }
    let body = plans_body(&state, &staff, &PlanForm::default(), None).await?;
    Ok(page(
        staff.lang,
        tr(staff.lang, "料金プラン", "Plans"),
        Some(&staff),
        body,
    )
    .into_response())
}

pub async fn create_plan(
    State(state): State<AdminState>,
    staff: Staff,
    Form(form): Form<PlanForm>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let scope = state
        .authz
        .enter_platform(&staff.actor, Act::Write)
        .await
        .map_err(|d| PageError::denied(d, lang))?;
    let result = match parse_plan(&form, lang) {
        Ok(plan) => match billing::create_plan(&scope, &plan).await {
            Ok(_) => Ok(()),
            Err(e) => Err(billing_error(e, lang)?),
        },
        Err(m) => Err(m),
    };
    match result {
        Ok(()) => Ok(Redirect::to("/admin/plans").into_response()),
        Err(m) => {
            let body = plans_body(&state, &staff, &form, Some(&m)).await?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page(lang, tr(lang, "料金プラン", "Plans"), Some(&staff), body),
            )
                .into_response())
        }
    }
}

// ---- the operator's view of a tenant -----------------------------------------------------------

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

fn today_in(t: &Tenant) -> NaiveDate {
    Utc::now().with_timezone(&t.time_zone.0).date_naive()
}

/// Everything a billing page shows, read through the platform (which records the view).
async fn overview(
    scope: &mut Scope,
    t: &Tenant,
    view: UsageView,
) -> Result<billing::Overview, PageError> {
    billing::overview(scope, today_in(t), t.time_zone.name(), view)
        .await
        .map_err(stored_terms_error)
}

fn charts(
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

fn invoice_rows(staff: &Staff, t: &Tenant, invoices: &[Invoice], operator: bool) -> Markup {
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

fn back(slug: &str) -> Response {
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

// ---- the city's own view -------------------------------------------------------------------------

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
    let can_set_budget = platform::channels::may_set_sms_budget(&state.authz, &staff.actor, t.id)
        .await
        .map_err(|d| PageError::denied(d, lang))?;
    let o = overview(&mut scope, &t, UsageView::City).await?;
    let budget = platform::channels::sms_budget_status(&mut scope, t.time_zone.name(), Utc::now())
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
    let markup = maud::html! {
        (maud::DOCTYPE)
        html lang="ja" {
            head {
                meta charset="utf-8";
                title { (title) " " (number) }
                style { (maud::PreEscaped("body{font-family:'Noto Sans CJK JP',sans-serif;margin:2rem;color:#111}table{border-collapse:collapse;width:100%}th,td{border:1px solid #444;padding:.3rem .5rem}td.n{text-align:right}@page{size:A4;margin:15mm}@media print{a{display:none}}")) }
            }
            body {
                h1 { (title) }
                p { "番号: " (number) br; "請求先: " (t.name) " 御中" br; "対象月: " (invoice.month.format("%Y年%m月")) }
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
    let bytes = platform::export::invoice_xlsx(&invoice, &t.name).map_err(|e| {
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
