//! The events a city can subscribe to, and queuing one in the transaction of what it announces.
//!
//! Queuing is the SQL function `webhook_event` (migrations/20261204002001_event_webhooks.sql):
//! it writes the event once (`webhook_events`, under row-level security) and one task per active
//! subscription that chose the type into `apalis.jobs` — nothing at all, in one index probe, when
//! no subscription wants it. Booking events go through `webhook_booking_event`, which shapes the
//! booking payload in the one place the one-statement booking functions use too.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// What happened. The wire names (`booking.created`, …) are stable; docs/webhooks.md shows each
/// payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A booking was made (resident site, API, call centre, intake's next dose): one event per
    /// booking row, so a group or dose 1 + 2 gives several.
    BookingCreated,
    /// A booking moved to another slot (`previous` in the data says from where).
    BookingChanged,
    /// A booking was cancelled.
    BookingCancelled,
    /// A vaccination was recorded at intake.
    VaccinationRecorded,
    /// A vaccination record was withdrawn (intake's undo of "vaccinated").
    VaccinationRemoved,
    /// An export's file is ready to download.
    ExportReady,
}

impl EventType {
    /// Every type, in the order forms list them.
    pub const ALL: [EventType; 6] = [
        EventType::BookingCreated,
        EventType::BookingChanged,
        EventType::BookingCancelled,
        EventType::VaccinationRecorded,
        EventType::VaccinationRemoved,
        EventType::ExportReady,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::BookingCreated => "booking.created",
            EventType::BookingChanged => "booking.changed",
            EventType::BookingCancelled => "booking.cancelled",
            EventType::VaccinationRecorded => "vaccination.recorded",
            EventType::VaccinationRemoved => "vaccination.removed",
            EventType::ExportReady => "export.ready",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw)
    }

    /// (Japanese, English) descriptions for forms.
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            EventType::BookingCreated => ("予約の作成", "A booking was made"),
            EventType::BookingChanged => ("予約の変更", "A booking was moved to another slot"),
            EventType::BookingCancelled => ("予約の取消", "A booking was cancelled"),
            EventType::VaccinationRecorded => ("接種の記録", "A vaccination was recorded"),
            EventType::VaccinationRemoved => {
                ("接種記録の取消", "A vaccination record was withdrawn")
            }
            EventType::ExportReady => ("エクスポートの完成", "An export is ready to download"),
        }
    }
}

/// Queues `event` with `data` for every subscription of `tenant` that wants it, in the caller's
/// transaction (scoped to `tenant`); the event's id, or `None` when none wants it.
pub(crate) async fn queue(
    conn: &mut PgConnection,
    tenant: Uuid,
    event: EventType,
    data: &Value,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT webhook_event($1, $2, $3)")
        .bind(tenant)
        .bind(event.as_str())
        .bind(data)
        .fetch_one(conn)
        .await
}

/// Whether an active subscription of `tenant` wants `event` (to skip building its data).
pub(crate) async fn wanted(
    conn: &mut PgConnection,
    tenant: Uuid,
    event: EventType,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM webhook_subscriptions s \
                         WHERE s.tenant_id = $1 AND s.active AND $2 = ANY (s.events))",
    )
    .bind(tenant)
    .bind(event.as_str())
    .fetch_one(conn)
    .await
}

/// A vaccination record as events carry it (`vaccination.recorded` / `.removed`): the resident
/// by id and ticket number only; not the vaccinator or who recorded it.
pub(crate) async fn vaccination_data(
    conn: &mut PgConnection,
    tenant: Uuid,
    record: Uuid,
) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object('vaccination', jsonb_build_object( \
                    'id', r.id, 'booking_id', r.booking_id, 'dose', r.dose, \
                    'resident', jsonb_build_object('id', p.id, 'ticket_no', p.ticket_no), \
                    'vaccine', jsonb_build_object('id', x.id, 'name', x.name), \
                    'venue', jsonb_build_object('id', v.id, 'name', v.name), \
                    'lot_number', r.lot_number, 'dose_ml', r.dose_ml, \
                    'vaccinated_at', \
                    to_char(r.vaccinated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))) \
           FROM vaccination_records r \
           JOIN residents p ON p.tenant_id = r.tenant_id AND p.id = r.resident_id \
           JOIN vaccines x ON x.tenant_id = r.tenant_id AND x.id = r.vaccine_id \
           JOIN venues v ON v.tenant_id = r.tenant_id AND v.id = r.venue_id \
          WHERE r.tenant_id = $1 AND r.id = $2",
    )
    .bind(tenant)
    .bind(record)
    .fetch_optional(conn)
    .await
}

/// Queues a booking's event (the booking as it stands in this transaction, plus `extra`).
pub(crate) async fn queue_booking(
    conn: &mut PgConnection,
    tenant: Uuid,
    event: EventType,
    booking: Uuid,
    extra: Value,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT webhook_booking_event($1, $2, $3, $4)")
        .bind(tenant)
        .bind(event.as_str())
        .bind(booking)
        .bind(extra)
        .fetch_one(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_reads_back_from_its_wire_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("booking.deleted"), None);
    }
}
