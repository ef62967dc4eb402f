//! The webhook worker: the [`Handler`] of the [`jobs::WEBHOOKS`] queue. A task names one event and
//! one subscription ([`WebhookTask`]); the worker reads both in the city's scope, sends the event
//! through the webhook plugin ([`plugins::webhook::EventSender`], signed with the subscription's
//! secret) outside any transaction, and writes one row of the delivery log per attempt.
//!
//! * **At least once, one event id.** A failed attempt (no answer, a non-2xx status, a redirect)
//!   is retried on the schedule [`RETRY_DELAYS`] (with up to 10 % jitter, or later when the
//!   endpoint's `Retry-After` asks for it) until [`MAX_ATTEMPTS`]; then the task is dead
//!   (`gave_up` in the log; the operator's job page can retry it). Every attempt carries the same
//!   event id and body, so a receiver that de-duplicates by the id sees each event once; a task
//!   whose event was already delivered to the subscription (a worker that stopped before it
//!   recorded the outcome) is not sent again.
//! * A paused subscription's queued events are `skipped` (logged once); a deleted one's are
//!   dropped. A suspended city's deliveries wait (back in a minute, no attempt used).
//! * During a rush the queue gives way to residents like the notification queue ([`Pacing`]).

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use tenants::{Tenant, TenantId, TenantStatus};
use uuid::Uuid;

use crate::jobs::{self, Handler, Outcome, Runner, Task};
use crate::notifications::Pacing;
use crate::notifications::channels::SealingKey;

/// Attempts per (event, subscription) before the delivery is given up.
pub const MAX_ATTEMPTS: i32 = 12;

/// How long after the n-th failed attempt the next one is made (then 24 h each).
pub const RETRY_DELAYS: [Duration; 11] = [
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(4 * 3600),
    Duration::from_secs(8 * 3600),
    Duration::from_secs(12 * 3600),
    Duration::from_secs(24 * 3600),
];

/// The longest `Retry-After` an endpoint is granted.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The wait after failed attempt `attempt` (1-based), before jitter.
pub fn retry_delay(attempt: i32) -> Duration {
    let i = usize::try_from(attempt.max(1) - 1).unwrap_or(0);
    RETRY_DELAYS[i.min(RETRY_DELAYS.len() - 1)]
}

/// A task of the webhooks queue (ids only: the event's data stays under row-level security). The
/// SQL function `webhook_event` writes the same JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTask {
    pub tenant: Uuid,
    pub event: Uuid,
    pub subscription: Uuid,
}

/// Delivers queued events. Cheap to clone; one per process.
#[derive(Clone)]
pub struct WebhookWorker {
    pub pool: PgPool,
    /// Opens the subscriptions' signing secrets.
    pub sealing_key: SealingKey,
    pub sender: plugins::webhook::EventSender,
    /// Polling, heartbeats and concurrency.
    pub jobs: jobs::Settings,
    /// Giving way to residents during a rush (default: never).
    pub pacing: Pacing,
    /// This worker's id in `apalis.workers`, shared by its clones.
    pub name: Arc<String>,
}

/// What the city's scope said about a task.
enum Prepared {
    /// Nothing to send (delivered already, the subscription or event is gone, or paused and
    /// logged as skipped).
    Nothing,
    /// Cannot be sent, ever (the secret cannot be opened with this server's key).
    Impossible(String),
    Send {
        url: String,
        secret: secrecy::SecretString,
        event_type: String,
        body: Vec<u8>,
        attempt: i64,
    },
}

impl WebhookWorker {
    pub fn new(
        pool: PgPool,
        sealing_key: SealingKey,
        jobs: jobs::Settings,
    ) -> Result<Self, plugins::ConfigError> {
        Ok(Self {
            pool,
            sealing_key,
            sender: plugins::webhook::EventSender::new()?,
            jobs,
            pacing: Pacing::default(),
            name: Arc::new(jobs::runner::worker_name(jobs::WEBHOOKS)),
        })
    }

    pub fn runner(&self) -> Runner<WebhookWorker> {
        let mut runner = Runner::new(
            self.pool.clone(),
            jobs::WEBHOOKS,
            self.jobs.webhooks_concurrency,
            self.jobs.clone(),
            self.clone(),
        );
        runner.name = self.name.as_ref().clone();
        runner.hold = Some(self.pacing.hold());
        runner
    }

    /// Works the queue until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        self.runner().run(shutdown).await;
    }

    /// Works every due delivery now; returns how many tasks were handled (tests, tools).
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        self.runner().run_once().await
    }

    async fn prepare(&self, tenant: &Tenant, task: &WebhookTask) -> Result<Prepared, sqlx::Error> {
        let mut tx = tenants::begin(&self.pool, tenant.id).await?;
        let delivered: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE tenant_id = $1 AND event_id = $2 \
                              AND subscription_id = $3 AND outcome IN ('delivered', 'skipped'))",
        )
        .bind(tenant.id.0)
        .bind(task.event)
        .bind(task.subscription)
        .fetch_one(&mut *tx)
        .await?;
        if delivered {
            return Ok(Prepared::Nothing);
        }
        let sub: Option<(String, Vec<u8>, bool)> = sqlx::query_as(
            "SELECT url, secret, active FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.id.0)
        .bind(task.subscription)
        .fetch_optional(&mut *tx)
        .await?;
        let event: Option<(String, Value, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT event_type, data, occurred_at FROM webhook_events WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.id.0)
        .bind(task.event)
        .fetch_optional(&mut *tx)
        .await?;
        let (Some((url, sealed, active)), Some((event_type, data, occurred_at))) = (sub, event)
        else {
            // the subscription was deleted (with its log): nothing to send or record
            return Ok(Prepared::Nothing);
        };
        let attempt: i64 = sqlx::query_scalar(
            "SELECT count(*) + 1 FROM webhook_deliveries WHERE tenant_id = $1 AND event_id = $2 \
               AND subscription_id = $3",
        )
        .bind(tenant.id.0)
        .bind(task.event)
        .bind(task.subscription)
        .fetch_one(&mut *tx)
        .await?;
        if !active {
            log(
                &mut tx,
                tenant.id,
                task,
                attempt,
                "skipped",
                None,
                Some("the subscription is paused"),
                None,
            )
            .await?;
            tx.commit().await?;
            return Ok(Prepared::Nothing);
        }
        tx.commit().await?;
        let secret = match self.sealing_key.open(&sealed) {
            Ok(plain) => secrecy::SecretString::from(String::from_utf8_lossy(&plain).into_owned()),
            Err(_) => {
                return Ok(Prepared::Impossible(
                    "the subscription's secret could not be decrypted (was notifications.encryption_key changed?)"
                        .into(),
                ));
            }
        };
        let body = json!({
            "id": task.event,
            "type": event_type,
            "created_at": occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "city": { "id": tenant.id.0, "slug": tenant.slug },
            "data": data,
        });
        let body = serde_json::to_vec(&body).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        Ok(Prepared::Send {
            url,
            secret,
            event_type,
            body,
            attempt,
        })
    }

    async fn deliver(
        &self,
        tenant: &Tenant,
        task: &WebhookTask,
        earlier: i32,
    ) -> Result<Outcome, sqlx::Error> {
        let (url, secret, event_type, body, attempt) = match self.prepare(tenant, task).await? {
            Prepared::Send {
                url,
                secret,
                event_type,
                body,
                attempt,
            } => (url, secret, event_type, body, attempt),
            Prepared::Nothing => return Ok(Outcome::Done),
            Prepared::Impossible(reason) => {
                tracing::error!(tenant.id = %tenant.id, subscription = %task.subscription, reason = %reason, "webhook cannot be sent");
                return Ok(Outcome::Dead { reason });
            }
        };
        let event_id = task.event.to_string();
        // no transaction is open while the endpoint is called
        let answer = self
            .sender
            .send(&plugins::webhook::EventDelivery {
                url: &url,
                secret: secret.expose_secret(),
                event_id: &event_id,
                event_type: &event_type,
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                body: &body,
            })
            .await;
        let latency = i64::try_from(answer.latency.as_millis()).unwrap_or(i64::MAX);
        let status = answer.status.map(i64::from);
        let mut tx = tenants::begin(&self.pool, tenant.id).await?;
        let outcome = match &answer.error {
            None => {
                log(
                    &mut tx,
                    tenant.id,
                    task,
                    attempt,
                    "delivered",
                    status,
                    None,
                    Some(latency),
                )
                .await?;
                Outcome::Done
            }
            Some(reason) if earlier + 1 >= MAX_ATTEMPTS => {
                log(
                    &mut tx,
                    tenant.id,
                    task,
                    attempt,
                    "gave_up",
                    status,
                    Some(reason),
                    Some(latency),
                )
                .await?;
                tracing::warn!(tenant.id = %tenant.id, event = %task.event, subscription = %task.subscription, reason = %reason, "webhook given up");
                Outcome::Dead {
                    reason: format!("{reason} (attempt {attempt}, given up)"),
                }
            }
            Some(reason) => {
                let jitter = 1.0 + rand::random::<f64>() * 0.1;
                let scheduled = retry_delay(earlier + 1).mul_f64(jitter);
                let after = answer
                    .retry_after
                    .map(|r| r.min(MAX_RETRY_AFTER))
                    .map_or(scheduled, |r| r.max(scheduled));
                sqlx::query(
                    "INSERT INTO webhook_deliveries (tenant_id, id, subscription_id, event_id, attempt, outcome, \
                                                     http_status, latency_ms, error, next_attempt_at) \
                     VALUES ($1, $2, $3, $4, $5, 'failed', $6, $7, $8, now() + make_interval(secs => $9))",
                )
                .bind(tenant.id.0)
                .bind(Uuid::now_v7())
                .bind(task.subscription)
                .bind(task.event)
                .bind(attempt)
                .bind(status)
                .bind(latency)
                .bind(reason)
                .bind(after.as_secs_f64())
                .execute(&mut *tx)
                .await?;
                Outcome::Retry {
                    after,
                    reason: reason.clone(),
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}

/// One line of the delivery log.
#[allow(clippy::too_many_arguments)]
async fn log(
    tx: &mut tenants::TenantTx,
    tenant: TenantId,
    task: &WebhookTask,
    attempt: i64,
    outcome: &str,
    status: Option<i64>,
    error: Option<&str>,
    latency_ms: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (tenant_id, id, subscription_id, event_id, attempt, outcome, \
                                         http_status, latency_ms, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant.0)
    .bind(Uuid::now_v7())
    .bind(task.subscription)
    .bind(task.event)
    .bind(attempt)
    .bind(outcome)
    .bind(status)
    .bind(latency_ms)
    .bind(error)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Handler for WebhookWorker {
    async fn handle(&self, task: &Task) -> Result<Outcome, sqlx::Error> {
        let hook: WebhookTask = match serde_json::from_slice(&task.args) {
            Ok(h) => h,
            Err(e) => {
                return Ok(Outcome::Dead {
                    reason: format!("unreadable task: {e}"),
                });
            }
        };
        let Some(tenant) = tenants::find_by_id(&self.pool, TenantId(hook.tenant)).await? else {
            return Ok(Outcome::Dead {
                reason: "the city no longer exists".into(),
            });
        };
        if tenant.status == TenantStatus::Suspended {
            return Ok(Outcome::Later {
                after: Duration::from_secs(60),
            });
        }
        self.deliver(&tenant, &hook, task.attempts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_schedule_grows_and_stops_at_a_day() {
        assert_eq!(retry_delay(1), Duration::from_secs(10));
        assert_eq!(retry_delay(2), Duration::from_secs(30));
        assert_eq!(retry_delay(11), Duration::from_secs(24 * 3600));
        assert_eq!(retry_delay(40), Duration::from_secs(24 * 3600));
        assert!(RETRY_DELAYS.windows(2).all(|w| w[0] < w[1]));
        // 12 attempts over about two days
        let total: Duration = (1..MAX_ATTEMPTS).map(retry_delay).sum();
        assert!(total > Duration::from_secs(40 * 3600) && total < Duration::from_secs(60 * 3600));
    }

    #[test]
    fn the_task_the_sql_function_writes_reads_back() {
        let t: WebhookTask = serde_json::from_str(
            r#"{"event": "0193a5e0-0000-7000-8000-000000000001", "tenant": "0193a5e0-0000-7000-8000-000000000002", "subscription": "0193a5e0-0000-7000-8000-000000000003"}"#,
        )
        .expect("task");
        assert_eq!(t.event.to_string(), "0193a5e0-0000-7000-8000-000000000001");
    }
}
