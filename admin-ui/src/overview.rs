//! The city hall's overview at `/admin/t/{slug}/overview` (docs/statistics.md, "Overview"): fill
//! rate by day (all venues, and per venue), doses given and the no-show rate, with bar charts drawn
//! here as SVG (no JavaScript, no chart library; every bar carries its number as text, so colour is
//! never the only signal). Guard object `statistics` (aggregates only).

use std::fmt::Write as _;

use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
};
use chrono::{Datelike, Duration, NaiveDate, Utc};
use maud::{PreEscaped, html};
use platform::staff::authz::{Act, Object};
use platform::stats::overview::{self, DayOutcome};
use serde::Deserialize;

use crate::i18n::{K, Lang};
use crate::page::{PageError, Staff};
use crate::routes::{Access as A, Route, get};
use crate::shell::{enter, render};
use crate::state::AdminState;

pub fn routes() -> Vec<Route> {
    vec![get(
        "/admin/t/{slug}/overview",
        A::City(Object::Statistics, Act::Read),
        page,
    )]
}

fn tr(lang: Lang, ja: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
    }
}

pub fn menu_label(lang: Lang) -> &'static str {
    lang.t(K::Overview)
}

#[derive(Deserialize, Default)]
pub struct Params {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

/// At most this many days on one page (the charts stay readable).
const MAX_DAYS: i64 = 62;

pub async fn page(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Query(q): Query<Params>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::Statistics, Act::Read).await?;
    let today = Utc::now().with_timezone(&t.time_zone.0).date_naive();
    let from = q.from.unwrap_or(today - Duration::days(7));
    let mut to = q.to.unwrap_or(today + Duration::days(14));
    if to < from {
        to = from;
    }
    if (to - from).num_days() >= MAX_DAYS {
        to = from + Duration::days(MAX_DAYS - 1);
    }
    let fill = overview::fill_by_day(&mut scope, from, to).await?;
    let outcomes = overview::outcomes_by_day(&mut scope, from, to).await?;
    scope.commit().await?;
    let totals = overview::total_by_day(&fill, from, to);
    let days: Vec<NaiveDate> = totals.iter().map(|(d, _, _)| *d).collect();
    let mut venues: Vec<(uuid::Uuid, String)> =
        fill.iter().map(|f| (f.venue_id, f.venue.clone())).collect();
    venues.sort_by(|a, b| a.1.cmp(&b.1));
    venues.dedup();
    let (all_cap, all_booked) = totals
        .iter()
        .fold((0, 0), |(c, b), (_, cap, bk)| (c + cap, b + bk));
    let given: i64 = outcomes.iter().map(DayOutcome::given).sum();
    let booked_past: i64 = outcomes.iter().map(|o| o.booked).sum();
    let no_show: i64 = outcomes.iter().map(|o| o.no_show).sum();
    let unrecorded: i64 = outcomes.iter().map(|o| o.unrecorded).sum();
    let body = html! {
        form method="get" action={"/admin/t/" (t.slug) "/overview"} {
            label { (tr(lang, "開始日", "From")) " " input type="date" name="from" value=(from); }
            label { (tr(lang, "終了日", "To")) " " input type="date" name="to" value=(to); }
            button type="submit" { (tr(lang, "表示", "Show")) }
        }
        dl #summary {
            dt { (tr(lang, "期間の充足率（全会場）", "Fill rate, all venues")) }
            dd #fill-total { (pct(overview::percent(all_booked, all_cap))) " (" (all_booked) " / " (all_cap) ")" }
            dt { (tr(lang, "接種数", "Doses given")) }
            dd #doses-total { (given) }
            dt { (tr(lang, "無断キャンセル率", "No-show rate")) }
            dd #no-show { (pct(overview::percent(no_show, booked_past))) " (" (no_show) " / " (booked_past) ")" }
            @if unrecorded > 0 {
                dt { (tr(lang, "受付記録のない予約（終了日）", "Bookings of past days with nothing recorded")) }
                dd #unrecorded { (unrecorded) }
            }
        }
        h2 { (tr(lang, "日別の充足率（全会場）", "Fill rate by day (all venues)")) }
        figure #fill-chart { (PreEscaped(fill_chart_svg(&totals, lang))) }
        h2 { (tr(lang, "日別の接種数", "Doses given by day")) }
        p.note #outcome-source {
            (tr(lang,
                "接種数は会場で記録された接種（受付画面）、無断キャンセル率は開始済みの予約のうち会場で「来場なし」とされた割合です。終了日で何も記録されていない予約は別に数えています。",
                "Doses given are the vaccinations recorded at the venues (intake); the no-show rate is the share of bookings of slots already begun that a venue marked as no-show. Bookings of past days with nothing recorded are counted apart."))
        }
        figure #doses-chart { (PreEscaped(doses_chart_svg(&outcomes, from, to, lang))) }
        @if !outcomes.is_empty() {
            table #outcomes-by-day {
                tr {
                    th { (tr(lang, "日付", "Day")) }
                    th { (tr(lang, "接種数", "Doses given")) }
                    th { (tr(lang, "開始済みの予約", "Bookings begun")) }
                    th { (tr(lang, "来場なし", "No-shows")) }
                    th { (tr(lang, "無断キャンセル率", "No-show rate")) }
                    th { (tr(lang, "記録なし", "Nothing recorded")) }
                }
                @for o in &outcomes {
                    tr data-day=(o.day) {
                        td { (o.day.format("%m/%d")) }
                        td { (o.given()) }
                        td { (o.booked) }
                        td { (o.no_show) }
                        td.no-show-rate { (pct(o.no_show_percent())) }
                        td { (o.unrecorded) }
                    }
                }
            }
        }
        h2 { (tr(lang, "会場別・日別の充足率", "Fill rate by venue and day")) }
        table #fill-by-venue {
            tr { th { (tr(lang, "会場", "Venue")) } @for d in &days { th { (d.format("%m/%d")) } } }
            @for (vid, name) in &venues {
                tr {
                    td { (name) }
                    @for d in &days {
                        @let cell = fill.iter().find(|f| f.venue_id == *vid && f.day == *d);
                        @match cell.and_then(|c| c.percent()) {
                            Some(p) => td style={"background:" (heat(p))} title={(cell.map(|c| c.booked).unwrap_or(0)) " / " (cell.map(|c| c.capacity).unwrap_or(0))} { (p) "%" },
                            None => td { "–" },
                        }
                    }
                }
            }
        }
    };
    Ok(render(&staff, &t, menu_label(lang), body).into_response())
}

fn pct(p: Option<i64>) -> String {
    p.map_or_else(|| "–".to_owned(), |p| format!("{p}%"))
}

/// A light background by fill rate (the number is always printed too).
fn heat(p: i64) -> &'static str {
    match p {
        100.. => "#f4b6b6",
        80..=99 => "#f9dca5",
        50..=79 => "#d8ecc4",
        _ => "#ffffff",
    }
}

fn bar_colour(p: i64) -> &'static str {
    match p {
        100.. => "#b3261e",
        80..=99 => "#c77700",
        _ => "#2e7d32",
    }
}

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 18.0;
const BOTTOM: f64 = 34.0;

fn plot_h() -> f64 {
    H - TOP - BOTTOM
}

fn svg_open(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" \
         aria-label=\"{title}\" style=\"max-width:{W}px;font-family:sans-serif\"><title>{title}</title>"
    );
}

/// x position and width of bar `i` of `n`.
fn bar_x(i: usize, n: usize) -> (f64, f64) {
    let step = (W - LEFT - RIGHT) / n.max(1) as f64;
    let width = (step * 0.7).max(1.0);
    (LEFT + step * i as f64 + (step - width) / 2.0, width)
}

fn day_label(out: &mut String, i: usize, n: usize, day: NaiveDate) {
    // every day when few, else every other / every week, so labels never overlap
    let every = match n {
        0..=16 => 1,
        17..=31 => 2,
        _ => 7,
    };
    if !i.is_multiple_of(every) {
        return;
    }
    let (x, w) = bar_x(i, n);
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}/{}</text>",
        x + w / 2.0,
        H - BOTTOM + 14.0,
        day.month(),
        day.day()
    );
}

/// Fill rate per day as bars on a 0–100 % axis, with the percentage above each bar.
pub fn fill_chart_svg(days: &[(NaiveDate, i64, i64)], lang: Lang) -> String {
    let mut out = String::new();
    svg_open(
        &mut out,
        tr(
            lang,
            "日別の充足率（予約数 / 定員）",
            "Fill rate by day (booked / capacity)",
        ),
    );
    for (pct, label) in [(0, "0%"), (50, "50%"), (100, "100%")] {
        let y = TOP + plot_h() * (1.0 - f64::from(pct) / 100.0);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#bbb\" stroke-dasharray=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{label}</text>",
            W - RIGHT,
            if pct == 0 { "0" } else { "3 3" },
            LEFT - 4.0,
            y + 3.0
        );
    }
    let n = days.len();
    for (i, (day, capacity, booked)) in days.iter().enumerate() {
        let (x, w) = bar_x(i, n);
        match overview::percent(*booked, *capacity) {
            Some(p) => {
                let h = plot_h() * (p.min(100) as f64) / 100.0;
                let y = TOP + plot_h() - h;
                let _ = write!(
                    out,
                    "<g class=\"bar\" data-day=\"{day}\" data-percent=\"{p}\"><title>{day}: {p}% ({booked} / {capacity})</title>\
                     <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{}\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{p}%</text></g>",
                    bar_colour(p),
                    x + w / 2.0,
                    y - 3.0
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#888\">–</text>",
                    x + w / 2.0,
                    TOP + plot_h() - 3.0
                );
            }
        }
        day_label(&mut out, i, n, *day);
    }
    out.push_str("</svg>");
    out
}

const DOSE_COLOURS: [&str; 3] = ["#1565c0", "#64b5f6", "#7b1fa2"];

/// Doses given per day, stacked by dose (1st, 2nd, booster) with the day's total above; a legend.
pub fn doses_chart_svg(days: &[DayOutcome], from: NaiveDate, to: NaiveDate, lang: Lang) -> String {
    let all: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let max = days.iter().map(DayOutcome::given).max().unwrap_or(0).max(1);
    let mut out = String::new();
    svg_open(&mut out, tr(lang, "日別の接種数", "Doses given by day"));
    let _ = write!(
        out,
        "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#bbb\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{max}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">0</text>",
        W - RIGHT,
        TOP + plot_h(),
        TOP + plot_h(),
        LEFT - 4.0,
        TOP + 3.0,
        LEFT - 4.0,
        TOP + plot_h() + 3.0
    );
    let labels = [
        tr(lang, "1回目", "1st"),
        tr(lang, "2回目", "2nd"),
        tr(lang, "追加", "booster"),
    ];
    for (k, label) in labels.iter().enumerate() {
        let x = LEFT + 10.0 + 80.0 * k as f64;
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"2\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"11\" font-size=\"10\">{label}</text>",
            DOSE_COLOURS[k],
            x + 14.0
        );
    }
    let n = all.len();
    for (i, day) in all.iter().enumerate() {
        let (x, w) = bar_x(i, n);
        if let Some(o) = days.iter().find(|o| o.day == *day) {
            let mut y = TOP + plot_h();
            for (k, count) in o.doses.iter().enumerate() {
                if *count == 0 {
                    continue;
                }
                let h = plot_h() * (*count as f64) / (max as f64);
                y -= h;
                let _ = write!(
                    out,
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{day} {}: {count}</title></rect>",
                    DOSE_COLOURS[k], labels[k]
                );
            }
            let _ = write!(
                out,
                "<text class=\"total\" data-day=\"{day}\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
                x + w / 2.0,
                y - 3.0,
                o.given()
            );
        }
        day_label(&mut out, i, n, *day);
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, day).expect("date")
    }

    #[test]
    fn fill_bars_are_proportional_and_labelled() {
        let svg = fill_chart_svg(&[(d(1), 10, 10), (d(2), 10, 5), (d(3), 0, 0)], Lang::Ja);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("role=\"img\""));
        // full day: the bar fills the plot height; half day: half of it
        assert!(svg.contains(&format!("height=\"{:.1}\"", plot_h())));
        assert!(svg.contains(&format!("height=\"{:.1}\"", plot_h() / 2.0)));
        assert!(svg.contains("data-percent=\"100\"") && svg.contains(">50%<"));
        assert_eq!(
            svg.matches("class=\"bar\"").count(),
            2,
            "no bar without capacity"
        );
    }

    #[test]
    fn dose_bars_stack_and_show_totals() {
        let days = [DayOutcome {
            day: d(2),
            doses: [3, 1, 0],
            booked: 4,
            ..Default::default()
        }];
        let svg = doses_chart_svg(&days, d(1), d(3), Lang::En);
        assert!(svg.contains("data-day=\"2026-12-02\""));
        assert!(svg.contains(">4</text>"));
        assert!(svg.contains("1st: 3") && svg.contains("2nd: 1"));
        assert!(!svg.contains("booster: 0"));
    }
}
