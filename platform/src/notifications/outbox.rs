//! The notification outbox: a job row (`notification_jobs`) written in the same transaction as the
//! booking or login code it announces, never sent from that transaction ([`super::worker`] sends).
//!
//! Why our own outbox rather than apalis (docs/architecture.md, Jobs): the jobs must be pushed by the
//! runtime role inside a tenant-scoped transaction and be visible to the isolation tests like any
//! other tenant-owned row.
//!
//! * Push: [`push`] inserts one row with a unique idempotency key per tenant; a duplicate push fails
//!   and aborts the surrounding transaction (one logical message is queued once). [`push_once`]
//!   ignores a duplicate instead (reminders, which several processes may schedule).
//! * Payloads carry ids, never secrets: a login code is derived again from the login row's id.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use tenants::TenantStatus;
use uuid::Uuid;

pub const NOTIFY_QUEUE: &str = "notifications";

/// What a job announces. Ids only: the worker reads the rest when it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notification {
    LoginCode {
        login_code_id: Uuid,
        lang: String,
    },
    BookingConfirmed {
        booking_id: Uuid,
    },
    BookingChanged {
        booking_id: Uuid,
    },
    BookingCancelled {
        booking_id: Uuid,
    },
    /// Sent only if the booking is still live on this slot when the reminder goes out.
    Reminder {
        booking_id: Uuid,
        slot_id: Uuid,
        days: i32,
    },
    /// To one city admin: the month's SMS use reached `level` % (80 or 100) of the budget. Queued
    /// once per month and level (`sms_budget_alerts`), sent by e-mail, not billed to the city.
    SmsBudgetAlert {
        account_id: Uuid,
        level: i32,
        month: chrono::NaiveDate,
        used: i64,
        budget: i64,
    },
}

impl Notification {
    /// The event name shown in the delivery log and used by its filter (the payload's `kind`).
    pub const KINDS: [&'static str; 6] = [
        "login_code",
        "booking_confirmed",
        "booking_changed",
        "booking_cancelled",
        "reminder",
        "sms_budget_alert",
    ];
}

/// Queues a notification inside the caller's transaction (tenant-scoped).
pub async fn push(
    conn: &mut PgConnection,
    tenant: Uuid,
    idempotency_key: &str,
    notification: &Notification,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_jobs (tenant_id, id, queue, idempotency_key, payload) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(NOTIFY_QUEUE)
    .bind(idempotency_key)
    .bind(serde_json::to_value(notification).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
    .execute(conn)
    .await?;
    Ok(())
}

/// Like [`push`], but a job with the same key already queued is left alone; `true` when queued now.
pub async fn push_once(
    conn: &mut PgConnection,
    tenant: Uuid,
    idempotency_key: &str,
    notification: &Notification,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO notification_jobs (tenant_id, id, queue, idempotency_key, payload) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, idempotency_key) DO NOTHING",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(NOTIFY_QUEUE)
    .bind(idempotency_key)
    .bind(serde_json::to_value(notification).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Queues the reminders that are due: live bookings whose slot is `reminder_days_before` days ahead
/// in the tenant's time zone. Safe to run from every process at once: one process works a tick (an
/// advisory lock), and each reminder's key (`reminder:<booking>:<slot>`) queues it once.
pub async fn schedule_reminders(pool: &PgPool, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
    let mut queued = 0;
    for tenant in tenants::list(pool).await? {
        if tenant.status != TenantStatus::Active {
            continue;
        }
        let mut tx = tenants::begin(pool, tenant.id).await?;
        let locked: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock(hashtext('yoyaku.reminders'), hashtext($1))",
        )
        .bind(tenant.id.0.to_string())
        .fetch_one(&mut *tx)
        .await?;
        if !locked {
            continue;
        }
        let due: Vec<(Uuid, Uuid, i32)> = sqlx::query_as(
            "SELECT b.id, b.slot_id, COALESCE(ns.reminder_days_before, 2) FROM bookings b \
             JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
             LEFT JOIN notification_settings ns ON ns.tenant_id = b.tenant_id \
             WHERE b.status = 'booked' AND s.starts_at > $1 \
               AND (s.starts_at AT TIME ZONE $2)::date = ($1 AT TIME ZONE $2)::date + COALESCE(ns.reminder_days_before, 2)",
        )
        .bind(now)
        .bind(tenant.time_zone.name())
        .fetch_all(&mut *tx)
        .await?;
        for (booking_id, slot_id, days) in due {
            let note = Notification::Reminder {
                booking_id,
                slot_id,
                days,
            };
            if push_once(
                &mut tx,
                tenant.id.0,
                &format!("reminder:{booking_id}:{slot_id}"),
                &note,
            )
            .await?
            {
                queued += 1;
            }
        }
        tx.commit().await?;
    }
    Ok(queued)
}
