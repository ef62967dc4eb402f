//! What a city reads back: the audit log (`/admin/t/{slug}/audit`) and the booking statistics with
//! their workbook (`/admin/t/{slug}/statistics`, `statistics.xlsx`).

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use maud::html;
use platform::staff::authz::{Act, Object};
use serde::Deserialize;

use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff};
use crate::shell::{enter, render};
use crate::state::AdminState;

pub async fn audit(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Audit, Act::Read).await?;
    let entries = platform::staff::audit::recent(&mut scope, 500).await?;
    let tz = t.time_zone.0;
    let body = html! {
        table #audit {
            tr { th { (lang.t(K::When)) } th { (lang.t(K::Who)) } th { (lang.t(K::What)) } th { (lang.t(K::Object)) } th { (lang.t(K::From)) } }
            @for e in &entries {
                tr {
                    td { (e.at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S")) }
                    td { (e.actor) } td { (e.action) } td { (e.object) } td { (e.ip.clone().unwrap_or_default()) }
                }
            }
        }
    };
    Ok(render(&staff, &t, lang.t(K::Audit), body))
}

// ---- Statistics ----------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct StatsParams {
    period: Option<String>,
    measure: Option<String>,
}

/// Cross tab of live bookings (docs/statistics.md): one table per period kind, doses side by side.
pub async fn statistics(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Query(q): Query<StatsParams>,
) -> Result<Response, PageError> {
    use platform::stats::{self, Measure, Period};
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Statistics, Act::Read).await?;
    let period = match q.period.as_deref() {
        Some("day") => Period::Day,
        Some("month") => Period::Month,
        _ => Period::Week,
    };
    let measure = match q.measure.as_deref() {
        Some("doses") => Measure::DosesGiven,
        _ => Measure::Bookings,
    };
    let rows = stats::pivot(&stats::crosstab_for(&mut scope, period, measure).await?);
    let title = staff.lang.t(K::Statistics);
    let measure_label = |m: Measure| match (m, staff.lang) {
        (Measure::Bookings, Lang::Ja) => "予約数（接種予定日別）",
        (Measure::Bookings, Lang::En) => "Bookings (by appointment date)",
        (Measure::DosesGiven, Lang::Ja) => "接種実績（接種日別）",
        (Measure::DosesGiven, Lang::En) => "Doses given (by date given)",
    };
    let body = html! {
        p #measures {
            @for m in Measure::ALL {
                @if m == measure { strong { (measure_label(m)) } " " }
                @else { a href={"/admin/t/" (t.slug) "/statistics?period=" (period.as_str()) "&measure=" (m.as_str())} { (measure_label(m)) } " " }
            }
        }
        p {
            @for p in Period::ALL {
                a href={"/admin/t/" (t.slug) "/statistics?period=" (p.as_str()) "&measure=" (measure.as_str())} { (p.sheet_name()) } " "
            }
            a href={"/admin/t/" (t.slug) "/statistics.xlsx"} { "Excel" }
        }
        table #statistics {
            @for c in stats::sheet_columns() { th { (c.title) } }
            @for r in &rows {
                tr {
                    td { (r.period_start) } td { (r.venue) } td { (r.age_band) } td { (r.sex) }
                    td { (r.doses[0]) } td { (r.doses[1]) } td { (r.doses[2]) } td { (r.total) }
                }
            }
        }
    };
    Ok(render(&staff, &t, title, body))
}

/// The statistics workbook (日別, 週別, 月別, 接種日別, 接種週別, 接種月別).
pub async fn statistics_xlsx(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    let (_t, mut scope) = enter(&state, &staff, &slug, Object::Statistics, Act::Read).await?;
    let bytes = platform::stats::workbook(&mut scope)
        .await
        .map_err(|e| PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
            lang: staff.lang,
        })?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"statistics.xlsx\"",
            ),
        ],
        bytes,
    )
        .into_response())
}
