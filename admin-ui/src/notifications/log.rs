//! A city's delivery log (`/admin/t/{slug}/notifications/log`): filtered, paged.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::Response,
};
use maud::html;
use platform::notifications::delivery_log::{self, LogFilter, RawFilter};
use platform::staff::authz::{Act, Object};
use serde::Deserialize;

use crate::page::{PageError, Staff};
use crate::shell::enter;
use crate::state::AdminState;

use super::{event_label, frame, kind_label, status_label, tr, with_status};

#[derive(Deserialize, Default)]
pub struct LogParams {
    #[serde(default)]
    status: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    page: String,
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn log_link(slug: &str, q: &LogParams, page: i64) -> String {
    format!(
        "/admin/t/{slug}/notifications/log?status={}&channel={}&event={}&from={}&to={}&ticket={}&page={page}",
        enc(&q.status),
        enc(&q.channel),
        enc(&q.event),
        enc(&q.from),
        enc(&q.to),
        enc(&q.ticket)
    )
}

pub async fn log_page(
    State(state): State<AdminState>,
    staff: Staff,
    Path(slug): Path<String>,
    Query(q): Query<LogParams>,
) -> Result<Response, PageError> {
    let lang = staff.lang;
    let (t, mut scope) = enter(&state, &staff, &slug, Object::DeliveryLog, Act::Read).await?;
    let parsed = LogFilter::parse(&RawFilter {
        status: &q.status,
        channel: &q.channel,
        event: &q.event,
        from: &q.from,
        to: &q.to,
        ticket: &q.ticket,
        page: &q.page,
    });
    let (filter, error) = match parsed {
        Ok(f) => (Some(f), None),
        Err(m) => (None, Some(m)),
    };
    let result = match &filter {
        Some(f) => Some(delivery_log::list(&mut scope, f, t.time_zone.name()).await?),
        None => None,
    };
    scope.commit().await?;
    let tz = t.time_zone.0;
    let s = &t.slug;
    let select = |name: &'static str,
                  current: &str,
                  options: &[&'static str],
                  label: &dyn Fn(&str) -> &'static str| {
        html! {
            select name=(name) id=(name) {
                option value="" { (tr(lang, "すべて", "all")) }
                @for o in options { option value=(o) selected[current == *o] { (label(o)) } }
            }
        }
    };
    let body = html! {
        p { (tr(lang, "宛先は一部を伏せて表示します。この画面の表示は監査ログに記録されます。",
                "Recipients are shown masked. Viewing this page is recorded in the audit log.")) }
        form method="get" action={"/admin/t/" (s) "/notifications/log"} #log-filter {
            label { (tr(lang, "状態", "Status")) " " (select("status", &q.status, &delivery_log::STATUSES, &|o| status_label(lang, o))) }
            label { (tr(lang, "チャネル", "Channel")) " " (select("channel", &q.channel, &delivery_log::CHANNELS, &|o| kind_label(lang, o))) }
            label { (tr(lang, "お知らせ", "Event")) " " (select("event", &q.event, &platform::notifications::Notification::KINDS, &|o| event_label(lang, o))) }
            label { (tr(lang, "期間（から）", "From")) " " input type="date" name="from" id="from" value=(q.from); }
            label { (tr(lang, "期間（まで）", "To")) " " input type="date" name="to" id="to" value=(q.to); }
            label { (tr(lang, "接種券番号（この方のお知らせだけ）", "Ticket number (this resident only)")) " " input name="ticket" id="ticket" value=(q.ticket) inputmode="numeric"; }
            button type="submit" #filter { (tr(lang, "絞り込む", "Filter")) }
        }
        @if let Some(m) = &error { p.error role="alert" { (m) } }
        @if let Some(r) = &result {
            @if r.unknown_ticket {
                p.error role="alert" { (tr(lang, "この接種券番号の方は見つかりません。", "No resident holds this ticket number.")) }
            }
            table #delivery-log {
                tr {
                    th { (tr(lang, "登録日時", "Queued at")) } th { (tr(lang, "お知らせ", "Event")) }
                    th { (tr(lang, "チャネル", "Channel")) } th { (tr(lang, "宛先", "Recipient")) }
                    th { (tr(lang, "状態", "Status")) } th { (tr(lang, "試行", "Attempts")) }
                    th { (tr(lang, "理由", "Reason")) } th { (tr(lang, "プロバイダーID", "Provider id")) }
                    th { (tr(lang, "送信日時", "Sent at")) }
                }
                @for e in &r.entries {
                    tr.entry data-status=(e.status) {
                        td { (e.created_at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S")) }
                        td { (event_label(lang, &e.event)) }
                        td { (e.channel.as_deref().map(|c| kind_label(lang, c)).unwrap_or("–")) }
                        td.recipient { (e.recipient.as_deref().unwrap_or("–")) }
                        td.status { (status_label(lang, &e.status)) }
                        td { (e.attempts) }
                        td.reason { (e.reason.as_deref().unwrap_or("")) }
                        td.provider { (e.provider_message_id.as_deref().unwrap_or("")) }
                        td { (e.sent_at.map(|d| d.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()) }
                    }
                }
            }
            @if r.entries.is_empty() && !r.unknown_ticket { p #empty { (tr(lang, "該当するお知らせはありません。", "No messages match.")) } }
            @let page_no = filter.as_ref().map(|f| f.page).unwrap_or(1);
            p.pages {
                @if page_no > 1 { a #prev-page href=(log_link(s, &q, page_no - 1)) { (tr(lang, "← 新しい", "← Newer")) } " " }
                (tr(lang, "ページ ", "Page ")) (page_no)
                @if r.has_next { " " a #next-page href=(log_link(s, &q, page_no + 1)) { (tr(lang, "古い →", "Older →")) } }
            }
        }
    };
    let response = frame(&staff, &t, tr(lang, "配信ログ", "Delivery log"), body);
    Ok(if error.is_some() {
        with_status(StatusCode::BAD_REQUEST, response)
    } else {
        response
    })
}
