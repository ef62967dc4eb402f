//! Queuing a notification: one task in the job runtime ([`crate::jobs`], apalis-postgres) written
//! in the same transaction as the booking or login code it announces, never sent from that
//! transaction ([`super::worker`] sends).
//!
//! * Push: [`push`] queues one task keyed `<tenant>/<key>`; a duplicate push fails and aborts the
//!   surrounding transaction (one logical message is queued once). [`push_once`] ignores a
//!   duplicate instead (reminders and budget alerts, which may be queued from several places).
//! * Login codes go to their own queue ([`crate::jobs::NOTIFY_URGENT`]), worked first and never
//!   held back during a rush; everything else goes to [`crate::jobs::NOTIFY`], confirmations,
//!   changes and cancellations before reminders (priority).
//! * Payloads carry ids, never secrets or personal data: a login code is derived again from the
//!   login row's id, the rest is read in the tenant's scope when the message is sent.
//! * The delivery log row (`notification_jobs`, under row-level security) is written by the worker
//!   when it first takes the task; until then the task is the queued message.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::jobs;

/// The delivery log's queue name (column `notification_jobs.queue`).
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
    /// To one city admin: the month's use of a capped kind (e-mail, API calls, exports) reached
    /// `level` % (80 or 100) of the plan's hard cap. Queued once per month, kind and level
    /// (`plan_cap_alerts`, [`crate::caps`]), sent by e-mail, not billed and never capped.
    PlanCapAlert {
        account_id: Uuid,
        /// The capped kind (`kind` is the payload's event name).
        capped: tenants::billing::MeteredKind,
        level: i32,
        month: chrono::NaiveDate,
        used: i64,
        cap: i64,
    },
}

impl Notification {
    /// The event name shown in the delivery log and used by its filter (the payload's `kind`).
    pub const KINDS: [&'static str; 7] = [
        "login_code",
        "booking_confirmed",
        "booking_changed",
        "booking_cancelled",
        "reminder",
        "sms_budget_alert",
        "plan_cap_alert",
    ];

    /// The queue this message goes to.
    pub fn queue(&self) -> &'static str {
        match self {
            Notification::LoginCode { .. } => jobs::NOTIFY_URGENT,
            _ => jobs::NOTIFY,
        }
    }

    /// Within its queue, higher first: what a resident just did before reminders and alerts.
    pub fn priority(&self) -> i32 {
        match self {
            Notification::LoginCode { .. } => 10,
            Notification::BookingConfirmed { .. }
            | Notification::BookingChanged { .. }
            | Notification::BookingCancelled { .. } => 5,
            Notification::SmsBudgetAlert { .. } | Notification::PlanCapAlert { .. } => 1,
            Notification::Reminder { .. } => 0,
        }
    }
}

/// The task's arguments: the tenant, the message's key (also the provider's idempotency token),
/// and what it announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyTask {
    pub tenant: Uuid,
    pub key: String,
    #[serde(flatten)]
    pub note: Notification,
}

impl NotifyTask {
    /// The task's bytes as the booking SQL functions store them (apalis's JSON encoding).
    pub fn encode(&self) -> Result<Vec<u8>, sqlx::Error> {
        serde_json::to_vec(self).map_err(|e| sqlx::Error::Encode(Box::new(e)))
    }
}

/// Queues a notification inside the caller's transaction.
pub async fn push(
    conn: &mut PgConnection,
    tenant: Uuid,
    idempotency_key: &str,
    notification: &Notification,
) -> Result<(), sqlx::Error> {
    let task = NotifyTask {
        tenant,
        key: idempotency_key.to_owned(),
        note: notification.clone(),
    };
    jobs::push(
        conn,
        notification.queue(),
        &jobs::tenant_key(tenant, idempotency_key),
        usize::try_from(notification.priority()).unwrap_or(0),
        &task,
    )
    .await
}

/// Like [`push`], to be sent at `run_at`, and a job with the same key already queued (or sent) is
/// left alone; `true` when queued now.
pub async fn push_once(
    conn: &mut PgConnection,
    tenant: Uuid,
    idempotency_key: &str,
    notification: &Notification,
    run_at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let task = NotifyTask {
        tenant,
        key: idempotency_key.to_owned(),
        note: notification.clone(),
    };
    jobs::push_once(
        conn,
        notification.queue(),
        &jobs::tenant_key(tenant, idempotency_key),
        notification.priority(),
        run_at,
        &task,
    )
    .await
}

/// Messages of the tenant not yet taken by a worker (tests and tools; the delivery log shows a
/// message from the moment a worker takes it).
pub async fn queued_keys(pool: &sqlx::PgPool, tenant: Uuid) -> Result<Vec<String>, sqlx::Error> {
    let prefix = format!("{tenant}/");
    sqlx::query_scalar(
        "SELECT substr(idempotency_key, length($1) + 1) FROM apalis.jobs \
          WHERE job_type IN ($2, $3) AND starts_with(idempotency_key, $1) \
            AND status IN ('Pending', 'Queued', 'Running', 'Failed') ORDER BY id",
    )
    .bind(prefix)
    .bind(jobs::NOTIFY_URGENT)
    .bind(jobs::NOTIFY)
    .fetch_all(pool)
    .await
}
