//! The delivery log as city staff see it: one row per notification job (queued, sending, sent,
//! delivered, failed, skipped, dead + the reason), with the masked recipient and the provider's
//! message id, filtered by status, channel, event, date range (the city's time zone) and resident,
//! newest first, a page at a time. Recipients are personal data even masked, so every view is
//! recorded in the audit log (with the filters used).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::notifications::{NOTIFY_QUEUE, Notification};
use crate::staff::audit;
use crate::staff::authz::Scope;

pub const STATUSES: [&str; 7] = [
    "queued",
    "sending",
    "sent",
    "delivered",
    "failed",
    "skipped",
    "dead",
];
pub const CHANNELS: [&str; 4] = ["sms", "email", "webhook", "log"];
pub const PAGE_SIZE: i64 = 50;

/// What the staff asked for. Build it with [`LogFilter::parse`] so every value is a known one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub status: Option<&'static str>,
    pub channel: Option<&'static str>,
    pub event: Option<&'static str>,
    /// First and last day, inclusive, in the city's time zone.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// A resident's ticket number: only messages about their bookings and login codes.
    pub ticket: Option<String>,
    /// 1-based.
    pub page: i64,
}

/// The raw form fields of the filter.
#[derive(Debug, Clone, Default)]
pub struct RawFilter<'a> {
    pub status: &'a str,
    pub channel: &'a str,
    pub event: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub ticket: &'a str,
    pub page: &'a str,
}

fn pick(value: &str, allowed: &[&'static str], what: &str) -> Result<Option<&'static str>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    allowed
        .iter()
        .find(|a| **a == value)
        .map(|a| Some(*a))
        .ok_or_else(|| format!("{what} {value:?} is not one of: {}", allowed.join(", ")))
}

fn date(value: &str, what: &str) -> Result<Option<NaiveDate>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| format!("{what} {value:?} is not a date like 2026-11-21"))
}

impl LogFilter {
    /// Checks the fields; the error says which one is wrong and what it may be.
    pub fn parse(raw: &RawFilter<'_>) -> Result<Self, String> {
        let from = date(raw.from, "from")?;
        let to = date(raw.to, "to")?;
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(format!("the range starts ({f}) after it ends ({t})"));
        }
        let ticket = raw.ticket.trim();
        if !ticket.is_empty()
            && !ticket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!("{ticket:?} is not a ticket number"));
        }
        let page = match raw.page.trim() {
            "" => 1,
            p => p
                .parse::<i64>()
                .ok()
                .filter(|p| (1..=100_000).contains(p))
                .ok_or_else(|| format!("page {p:?} is not a page number"))?,
        };
        Ok(Self {
            status: pick(raw.status, &STATUSES, "status")?,
            channel: pick(raw.channel, &CHANNELS, "channel")?,
            event: pick(raw.event, &Notification::KINDS, "event")?,
            from,
            to,
            ticket: (!ticket.is_empty()).then(|| ticket.to_owned()),
            page,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub event: String,
    pub channel: Option<String>,
    /// Masked when sent (090****5678, t***@example.jp); empty before the first attempt.
    pub recipient: Option<String>,
    pub status: String,
    pub attempts: i32,
    /// Why it failed, was skipped or given up.
    pub reason: Option<String>,
    pub provider_message_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub entries: Vec<LogEntry>,
    pub has_next: bool,
    /// The filter named a ticket number that no resident holds.
    pub unknown_ticket: bool,
}

/// One page of the log; the view is audited (`delivery_log.view`) in the scope's transaction, so
/// commit the scope.
pub async fn list(scope: &mut Scope, filter: &LogFilter, tz: &str) -> Result<LogPage, sqlx::Error> {
    let resident: Option<Uuid> = match &filter.ticket {
        Some(t) => {
            let id = sqlx::query_scalar("SELECT id FROM residents WHERE ticket_no = $1")
                .bind(t)
                .fetch_optional(&mut *scope.tx)
                .await?;
            if id.is_none() {
                audit::record(
                    scope,
                    "delivery_log.view",
                    "",
                    json!({ "ticket_no": t, "found": false }),
                )
                .await?;
                return Ok(LogPage {
                    entries: vec![],
                    has_next: false,
                    unknown_ticket: true,
                });
            }
            id
        }
        None => None,
    };
    type Row = (
        Uuid,
        DateTime<Utc>,
        String,
        Option<String>,
        Option<String>,
        String,
        i32,
        Option<String>,
        Option<String>,
        Option<DateTime<Utc>>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT j.id, j.created_at, COALESCE(j.payload->>'kind', '') AS event, j.channel, j.recipient, \
                j.status, j.attempts, j.last_error AS reason, j.provider_message_id, j.sent_at \
         FROM notification_jobs j \
         LEFT JOIN bookings b ON b.tenant_id = j.tenant_id AND b.id = (j.payload->>'booking_id')::uuid \
         LEFT JOIN login_codes lc ON lc.tenant_id = j.tenant_id AND lc.id = (j.payload->>'login_code_id')::uuid \
         WHERE j.queue = $1 \
           AND ($2::text IS NULL OR j.status = $2) \
           AND ($3::text IS NULL OR j.channel = $3) \
           AND ($4::text IS NULL OR j.payload->>'kind' = $4) \
           AND ($5::date IS NULL OR j.created_at >= ($5::date::timestamp AT TIME ZONE $7)) \
           AND ($6::date IS NULL OR j.created_at < (($6::date + 1)::timestamp AT TIME ZONE $7)) \
           AND ($8::uuid IS NULL OR COALESCE(b.resident_id, lc.resident_id) = $8) \
         ORDER BY j.created_at DESC, j.id DESC LIMIT $9 OFFSET $10",
    )
    .bind(NOTIFY_QUEUE)
    .bind(filter.status)
    .bind(filter.channel)
    .bind(filter.event)
    .bind(filter.from)
    .bind(filter.to)
    .bind(tz)
    .bind(resident)
    .bind(PAGE_SIZE + 1)
    .bind((filter.page.max(1) - 1) * PAGE_SIZE)
    .fetch_all(&mut *scope.tx)
    .await?;
    let mut entries: Vec<LogEntry> = rows
        .into_iter()
        .map(
            |(
                id,
                created_at,
                event,
                channel,
                recipient,
                status,
                attempts,
                reason,
                provider_message_id,
                sent_at,
            )| LogEntry {
                id,
                created_at,
                event,
                channel,
                recipient,
                status,
                attempts,
                reason,
                provider_message_id,
                sent_at,
            },
        )
        .collect();
    let has_next = entries.len() as i64 > PAGE_SIZE;
    entries.truncate(PAGE_SIZE as usize);
    audit::record(
        scope,
        "delivery_log.view",
        &resident
            .map(|r| format!("resident/{r}"))
            .unwrap_or_default(),
        json!({
            "status": filter.status, "channel": filter.channel, "event": filter.event,
            "from": filter.from, "to": filter.to, "ticket_no": filter.ticket,
            "page": filter.page, "rows": entries.len(),
        }),
    )
    .await?;
    Ok(LogPage {
        entries,
        has_next,
        unknown_ticket: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_and_say_what_is_wrong() {
        let ok = LogFilter::parse(&RawFilter {
            status: "dead",
            channel: "sms",
            event: "booking_confirmed",
            from: "2026-11-01",
            to: "2026-11-30",
            ticket: " 1000000003 ",
            page: "2",
        })
        .expect("valid");
        assert_eq!(ok.status, Some("dead"));
        assert_eq!(ok.ticket.as_deref(), Some("1000000003"));
        assert_eq!(ok.page, 2);
        let err = |raw: RawFilter<'_>| LogFilter::parse(&raw).unwrap_err();
        assert!(
            err(RawFilter {
                status: "lost",
                ..Default::default()
            })
            .starts_with("status \"lost\" is not one of: queued")
        );
        assert!(
            err(RawFilter {
                from: "21/11/2026",
                ..Default::default()
            })
            .contains("not a date")
        );
        assert!(
            err(RawFilter {
                from: "2026-11-30",
                to: "2026-11-01",
                ..Default::default()
            })
            .contains("after it ends")
        );
        assert!(
            err(RawFilter {
                page: "0",
                ..Default::default()
            })
            .contains("page")
        );
        assert!(
            err(RawFilter {
                ticket: "1' OR 1=1",
                ..Default::default()
            })
            .contains("not a ticket number")
        );
    }
}
