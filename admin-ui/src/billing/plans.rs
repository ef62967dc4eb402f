//! The operator's price list (`/admin/plans`): the plans and the form for a new one.

use std::collections::BTreeMap;

use axum::{
    Form,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use platform::city::billing::{self};
use platform::staff::authz::Act;
use serde::Deserialize;
use tenants::billing::{MeteredKind, NewPlan, Price};

use crate::format::{thousands, yen};
use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff, csrf_field, page};
use crate::state::AdminState;

use super::{billing_error, kind_label, tr};

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

pub(super) fn money(field: &str, raw: &str, lang: Lang) -> Result<i64, String> {
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
