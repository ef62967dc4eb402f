//! The notification worker: the [`Handler`] of the queues [`jobs::NOTIFY_URGENT`] (login codes)
//! and [`jobs::NOTIFY`] (everything else); delivers each task through the city's configured
//! channel ([`super::channels`]) and keeps the delivery log (`notification_jobs`).
//!
//! * Claim, send, record: the task's delivery-log row is created (or taken up again) as `sending`
//!   and committed *before* the provider is called, then the message is sent outside any
//!   transaction, then the outcome is recorded (`sent` + provider id + units + a usage event keyed
//!   by the row, so retries and duplicates bill once).
//! * A worker killed mid-send: its task is re-enqueued when its heartbeats stop (the job
//!   runtime's orphan rule) and finds its row still `sending`. It is sent again **only through a
//!   channel that recognises a resend** (`Channel::dedupes_resends`: the Twilio-compatible gateway
//!   by `I-Twilio-Idempotency-Token`, the webhook by `Idempotency-Key`, both the message's key), so
//!   the resident receives it once; through SMTP, which cannot, it is `dead` ("not resent to avoid
//!   a duplicate").
//! * Failures: transient ones are retried with exponential backoff and jitter, or after the
//!   provider's Retry-After (the task's `run_at`); a permanent one or the 8th failure is `dead`
//!   with the reason, in the delivery log and on the task.
//! * A suspended city's messages wait (the task is put back for a minute, no attempt used).
//! * During a rush ([`Pacing`]) the [`jobs::NOTIFY`] queue is held back (at most `max_defer` at a
//!   time); login codes are never held.
//! * Reminders: when a confirmation or change is first taken, the reminder for the booking's slot
//!   is queued to run at the start of the city's local day `reminder_days_before` days before the
//!   slot (key `reminder:<booking>:<slot>`, so once however often this runs); at send time a
//!   reminder whose booking was cancelled or moved is `skipped`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, TimeZone, Utc};
use plugins::{Channel, Message, Recipient, SendError};
use sqlx::PgPool;
use tenants::billing::{MeteredKind, usage};
use tenants::{Tenant, TenantId, TenantStatus};
use uuid::Uuid;

use super::channels::mask;
use super::outbox::{NOTIFY_QUEUE, Notification, NotifyTask, push_once};
use crate::jobs::{self, Handler, Outcome, Runner, Task};
use crate::notifications::channels::SealingKey;
use crate::residents::auth::CodeSecret;

pub const MAX_ATTEMPTS: i32 = 8;

/// How the worker shares a process with the web server during a rush. While at least `busy_at`
/// requests are in flight, only login codes are sent (a resident is waiting on screen for each);
/// confirmations, changes, cancellations and reminders wait — they are durable tasks — until the
/// rush eases, or at most `max_defer`, after which one batch is worked anyway.
#[derive(Clone, Debug, Default)]
pub struct Pacing {
    /// Requests being handled right now (counted by the HTTP layer).
    pub in_flight: Arc<AtomicUsize>,
    /// 0 = never give way.
    pub busy_at: usize,
    pub max_defer: Duration,
}

impl Pacing {
    pub fn busy(&self) -> bool {
        self.busy_at > 0 && self.in_flight.load(Ordering::Relaxed) >= self.busy_at
    }

    /// The hold of the [`jobs::NOTIFY`] (and [`jobs::WEBHOOKS`]) runner: true while busy, for at most `max_defer` at a time.
    pub(crate) fn hold(&self) -> jobs::runner::Hold {
        let pacing = self.clone();
        let since: Mutex<Option<Instant>> = Mutex::new(None);
        Arc::new(move || {
            let Ok(mut since) = since.lock() else {
                return false;
            };
            if !pacing.busy() {
                *since = None;
                return false;
            }
            let start = *since.get_or_insert_with(Instant::now);
            if start.elapsed() >= pacing.max_defer {
                *since = None;
                false
            } else {
                true
            }
        })
    }
}

/// Counts one request in flight for as long as it lives (see [`Pacing`]).
pub struct InFlightGuard(Arc<AtomicUsize>);

impl InFlightGuard {
    pub fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Delivers queued notifications.
#[derive(Clone)]
pub struct Worker {
    /// Giving way to residents during a rush (default: never).
    pub pacing: Pacing,
    pub pool: PgPool,
    /// Used when a city has no channel of the needed kind: the development log channel; `None` in
    /// production (the job then fails with "no channel configured").
    pub fallback: Option<Arc<dyn Channel>>,
    pub secret: CodeSecret,
    pub sealing_key: SealingKey,
    /// Base URL for links in messages.
    pub public_url: String,
    /// Polling, heartbeats and concurrency of the two queues.
    pub jobs: jobs::Settings,
    /// Worker ids in `apalis.workers` (urgent, other), fixed for this worker and its clones.
    pub names: Arc<(String, String)>,
}

/// A job as taken.
pub(super) struct Claimed {
    pub id: Uuid,
    pub attempts: i32,
    /// Taken up again after a worker stopped while sending it.
    pub resumed: bool,
}

/// What the worker decided to do with a job.
pub(super) enum Plan {
    Send {
        channel: Arc<dyn Channel>,
        kind: &'static str,
        message: Message,
        units: i64,
        /// Metered as the city's usage (not the platform's own alerts).
        billed: bool,
    },
    Skip(String),
    Fail(String),
}

impl Worker {
    pub fn names() -> Arc<(String, String)> {
        Arc::new((
            jobs::runner::worker_name(jobs::NOTIFY_URGENT),
            jobs::runner::worker_name(jobs::NOTIFY),
        ))
    }

    /// The runners of the two queues (login codes; everything else, held back during a rush).
    pub fn runners(&self) -> (Runner<Worker>, Runner<Worker>) {
        let mut urgent = Runner::new(
            self.pool.clone(),
            jobs::NOTIFY_URGENT,
            self.jobs.urgent_concurrency,
            self.jobs.clone(),
            self.clone(),
        );
        urgent.name = self.names.0.clone();
        let mut other = Runner::new(
            self.pool.clone(),
            jobs::NOTIFY,
            self.jobs.notify_concurrency,
            self.jobs.clone(),
            self.clone(),
        );
        other.name = self.names.1.clone();
        other.hold = Some(self.pacing.hold());
        (urgent, other)
    }

    /// Works both queues until `shutdown` resolves; batches in progress are finished first.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let (urgent, other) = self.runners();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let a = urgent.run(wait(stopped.clone()));
        let b = other.run(wait(stopped));
        let signal = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        tokio::join!(a, b, signal);
    }

    /// Works every due message now (login codes first); returns how many were handled.
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        let (urgent, other) = self.runners();
        Ok(urgent.run_once().await? + other.run_once().await?)
    }

    /// Takes the job: creates its delivery-log row, or takes up the existing one (a retry, or a
    /// send a vanished worker left `sending`); `None` when it was already decided.
    async fn claim(
        &self,
        tenant: &Tenant,
        task: &NotifyTask,
    ) -> Result<Option<Claimed>, sqlx::Error> {
        let mut tx = tenants::begin(&self.pool, tenant.id).await?;
        let existing: Option<(Uuid, String, i32)> = sqlx::query_as(
            "SELECT id, status, attempts FROM notification_jobs \
              WHERE tenant_id = $1 AND idempotency_key = $2 FOR UPDATE",
        )
        .bind(tenant.id.0)
        .bind(&task.key)
        .fetch_optional(&mut *tx)
        .await?;
        let claimed = match existing {
            None => {
                let id = Uuid::now_v7();
                sqlx::query(
                    "INSERT INTO notification_jobs (tenant_id, id, queue, idempotency_key, payload, status, attempts, claimed_at) \
                     VALUES ($1, $2, $3, $4, $5, 'sending', 1, now())",
                )
                .bind(tenant.id.0)
                .bind(id)
                .bind(NOTIFY_QUEUE)
                .bind(&task.key)
                .bind(serde_json::to_value(&task.note).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
                .execute(&mut *tx)
                .await?;
                if let Notification::BookingConfirmed { booking_id }
                | Notification::BookingChanged { booking_id } = &task.note
                {
                    schedule_reminder(&mut tx, tenant, *booking_id, Utc::now()).await?;
                }
                Some(Claimed {
                    id,
                    attempts: 1,
                    resumed: false,
                })
            }
            Some((id, status, attempts)) if status == "queued" || status == "sending" => {
                sqlx::query(
                    "UPDATE notification_jobs SET status = 'sending', attempts = attempts + 1, claimed_at = now() \
                      WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.id.0)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                Some(Claimed {
                    id,
                    attempts: attempts + 1,
                    resumed: status == "sending",
                })
            }
            Some(_) => None,
        };
        tx.commit().await?;
        Ok(claimed)
    }

    async fn deliver(&self, tenant: &Tenant, task: &NotifyTask) -> Result<Outcome, sqlx::Error> {
        let Some(job) = self.claim(tenant, task).await? else {
            return Ok(Outcome::Done);
        };
        let plan = {
            let mut tx = tenants::begin(&self.pool, tenant.id).await?;
            let plan = self.plan(&mut tx, tenant, &task.key, &task.note).await?;
            tx.commit().await?;
            plan
        };
        let plan = match plan {
            Plan::Send { channel, .. } if job.resumed && !channel.dedupes_resends() => Plan::Fail(
                "the worker stopped while sending; not resent to avoid a duplicate".into(),
            ),
            other => other,
        };
        let outcome = match plan {
            Plan::Send {
                channel,
                kind,
                message,
                units,
                billed,
            } => {
                // No transaction is open while the provider is called.
                let result = channel.send(&message).await;
                let mut tx = tenants::begin(&self.pool, tenant.id).await?;
                let outcome = match result {
                    Ok(receipt) => {
                        sqlx::query(
                            "UPDATE notification_jobs SET status = 'sent', sent_at = now(), provider_message_id = $2, \
                             channel = $3, recipient = $4, units = $5, last_error = NULL WHERE id = $1",
                        )
                        .bind(job.id)
                        .bind(&receipt.provider_message_id)
                        .bind(if channel.name() == "log" { "log" } else { kind })
                        .bind(mask(&message.to))
                        .bind(i32::try_from(receipt.units).unwrap_or(i32::MAX))
                        .execute(&mut *tx)
                        .await?;
                        let metered = match kind {
                            _ if !billed => None,
                            "sms" => Some(MeteredKind::SmsSegment),
                            "email" => Some(MeteredKind::Email),
                            _ => None,
                        };
                        if let Some(metered) = metered {
                            usage::record(
                                &mut tx,
                                &format!("notify:{}", job.id),
                                metered,
                                i64::from(receipt.units).max(units.min(1)),
                                Utc::now(),
                            )
                            .await?;
                        }
                        Outcome::Done
                    }
                    Err(e) => self.failed(&mut tx, &job, &e, kind, &message.to).await?,
                };
                tx.commit().await?;
                outcome
            }
            Plan::Skip(reason) => {
                let mut tx = tenants::begin(&self.pool, tenant.id).await?;
                sqlx::query(
                    "UPDATE notification_jobs SET status = 'skipped', last_error = $2 WHERE id = $1",
                )
                .bind(job.id)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Outcome::Done
            }
            Plan::Fail(reason) => {
                tracing::warn!(job.id = %job.id, reason = %reason, "notification cannot be sent");
                let mut tx = tenants::begin(&self.pool, tenant.id).await?;
                sqlx::query(
                    "UPDATE notification_jobs SET status = 'dead', last_error = $2 WHERE id = $1",
                )
                .bind(job.id)
                .bind(&reason)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Outcome::Dead { reason }
            }
        };
        Ok(outcome)
    }

    async fn failed(
        &self,
        tx: &mut sqlx::PgConnection,
        job: &Claimed,
        e: &SendError,
        kind: &str,
        to: &Recipient,
    ) -> Result<Outcome, sqlx::Error> {
        let dead = matches!(e, SendError::Permanent { .. }) || job.attempts >= MAX_ATTEMPTS;
        // exponential backoff with jitter (5 s, 10 s, 20 s … capped), or what the provider asked for
        let base = 5.0 * 2f64.powi((job.attempts - 1).clamp(0, 10));
        let jitter = 1.0 + (rand::random::<f64>() * 0.25);
        let wait = match e {
            SendError::Transient {
                retry_after: Some(d),
                ..
            } => d.as_secs_f64().max(1.0),
            _ => base * jitter,
        };
        tracing::warn!(job.id = %job.id, attempts = job.attempts, dead, error = %e, "notification not sent");
        sqlx::query(
            "UPDATE notification_jobs SET last_error = $2, channel = $4, recipient = $5, \
             status = CASE WHEN $3 THEN 'dead' ELSE 'queued' END, \
             run_after = now() + make_interval(secs => $6) WHERE id = $1",
        )
        .bind(job.id)
        .bind(e.to_string())
        .bind(dead)
        .bind(kind)
        .bind(mask(to))
        .bind(wait)
        .execute(tx)
        .await?;
        Ok(if dead {
            Outcome::Dead {
                reason: e.to_string(),
            }
        } else {
            Outcome::Retry {
                after: Duration::from_secs_f64(wait),
                reason: e.to_string(),
            }
        })
    }
}

impl Handler for Worker {
    async fn handle(&self, task: &Task) -> Result<Outcome, sqlx::Error> {
        let note: NotifyTask = match serde_json::from_slice(&task.args) {
            Ok(n) => n,
            Err(e) => {
                return Ok(Outcome::Dead {
                    reason: format!("unreadable task: {e}"),
                });
            }
        };
        let Some(tenant) = tenants::find_by_id(&self.pool, TenantId(note.tenant)).await? else {
            return Ok(Outcome::Dead {
                reason: "the city no longer exists".into(),
            });
        };
        if tenant.status == TenantStatus::Suspended {
            return Ok(Outcome::Later {
                after: Duration::from_secs(60),
            });
        }
        self.deliver(&tenant, &note).await
    }
}

/// Queues the reminder of a live booking for the start of the city's local day
/// `reminder_days_before` days before its slot (now, if that day is today); none when that day
/// has passed or the slot has begun.
pub(crate) async fn schedule_reminder(
    tx: &mut tenants::TenantTx,
    tenant: &Tenant,
    booking_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let row: Option<(Uuid, DateTime<Utc>, i32)> = sqlx::query_as(
        "SELECT b.slot_id, s.starts_at, COALESCE(ns.reminder_days_before, 2) FROM bookings b \
           JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
           LEFT JOIN notification_settings ns ON ns.tenant_id = b.tenant_id \
          WHERE b.tenant_id = $1 AND b.id = $2 AND b.status = 'booked'",
    )
    .bind(tenant.id.0)
    .bind(booking_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((slot_id, starts, days)) = row else {
        return Ok(false);
    };
    let Some(due) = reminder_due(&tenant.time_zone.0, starts, days, now) else {
        return Ok(false);
    };
    push_once(
        tx,
        tenant.id.0,
        &format!("reminder:{booking_id}:{slot_id}"),
        &Notification::Reminder {
            booking_id,
            slot_id,
            days,
        },
        due,
    )
    .await
}

/// When the reminder of a slot starting at `starts` goes out: 00:00 city time, `days` local days
/// before the slot's local date, or `now` if that is today; `None` if that day has passed or the
/// slot has begun.
pub fn reminder_due<Z: TimeZone>(
    tz: &Z,
    starts: DateTime<Utc>,
    days: i32,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if starts <= now {
        return None;
    }
    let day = starts
        .with_timezone(tz)
        .date_naive()
        .checked_sub_days(Days::new(u64::try_from(days).ok()?))?;
    let today = now.with_timezone(tz).date_naive();
    if day < today {
        return None;
    }
    let midnight = tz
        .from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
        .earliest()?
        .with_timezone(&Utc);
    Some(midnight.max(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reminder_is_due_at_the_start_of_the_local_day_or_now_or_never() {
        let tz = chrono::FixedOffset::east_opt(9 * 3600).expect("Tokyo");
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&Utc)
        };
        let slot = at("2026-12-10T10:00:00+09:00");
        // booked well ahead: 00:00 Tokyo on the 8th
        assert_eq!(
            reminder_due(&tz, slot, 2, at("2026-12-01T12:00:00+09:00")),
            Some(at("2026-12-08T00:00:00+09:00"))
        );
        // booked on the reminder day itself: now
        let now = at("2026-12-08T15:00:00+09:00");
        assert_eq!(reminder_due(&tz, slot, 2, now), Some(now));
        // booked the day before the slot: the reminder day has passed
        assert_eq!(
            reminder_due(&tz, slot, 2, at("2026-12-09T09:00:00+09:00")),
            None
        );
        // the slot has begun
        assert_eq!(
            reminder_due(&tz, slot, 1, at("2026-12-10T10:30:00+09:00")),
            None
        );
    }
}
