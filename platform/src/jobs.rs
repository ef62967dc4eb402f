//! Notification jobs: an outbox table (`notification_jobs`) written in the same transaction as the
//! booking or login code it announces, and a worker that delivers due jobs through a
//! [`plugins::Channel`].
//!
//! Why our own outbox rather than apalis (docs/architecture.md, Jobs): the jobs must be pushed by the
//! runtime role inside a tenant-scoped transaction and be visible to the isolation tests like any
//! other tenant-owned row; a 100-line SKIP LOCKED worker gave us that with retries and backoff in
//! the database, and no second schema to grant.
//!
//! * Push: [`push`] inserts one row with a unique idempotency key per tenant; a duplicate push fails
//!   and aborts the surrounding transaction (one logical message is queued once).
//! * Work: [`Worker::run_once`] claims due rows per tenant with `FOR UPDATE SKIP LOCKED` (so several
//!   server processes share the work), renders, sends, and marks `sent`; a transient failure is
//!   retried with exponential backoff (`run_after`), a permanent one or the 8th failure is `dead`.
//! * Payloads carry ids, never secrets: a login code is derived again from the login row's id.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use plugins::{Channel, Message, Recipient, SendError};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use tenants::{Tenant, TenantStatus};
use uuid::Uuid;

use crate::i18n::Lang;
use crate::residents::auth::{CODE_TTL_MINUTES, CodeSecret, code_for};

pub const NOTIFY_QUEUE: &str = "notifications";
const MAX_ATTEMPTS: i32 = 8;
const BATCH: i64 = 50;

/// What a job announces. Ids only: the worker reads the rest when it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notification {
    LoginCode { login_code_id: Uuid, lang: String },
    BookingConfirmed { booking_id: Uuid },
    BookingChanged { booking_id: Uuid },
    BookingCancelled { booking_id: Uuid },
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

/// phone, preferred locale, venue name, slot start
type BookingMessageRow = (Option<String>, Option<String>, String, DateTime<Utc>);

/// Delivers queued notifications.
#[derive(Clone)]
pub struct Worker {
    pub pool: PgPool,
    pub channel: Arc<dyn Channel>,
    pub secret: CodeSecret,
}

impl Worker {
    /// Polls every `every` until `shutdown` resolves.
    pub async fn run(self, every: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "notification worker pass failed");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One pass over every tenant; returns how many jobs were handled.
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        let mut handled = 0;
        for tenant in tenants::list(&self.pool).await? {
            if tenant.status == TenantStatus::Suspended {
                continue;
            }
            handled += self.work_tenant(&tenant).await?;
        }
        Ok(handled)
    }

    async fn work_tenant(&self, tenant: &Tenant) -> Result<usize, sqlx::Error> {
        let mut tx = tenants::begin(&self.pool, tenant.id).await?;
        let due: Vec<(Uuid, String, serde_json::Value, i32)> = sqlx::query_as(
            "SELECT id, idempotency_key, payload, attempts FROM notification_jobs \
             WHERE tenant_id = $1 AND queue = $2 AND status = 'queued' AND run_after <= now() \
             ORDER BY run_after LIMIT $3 FOR UPDATE SKIP LOCKED",
        )
        .bind(tenant.id.0)
        .bind(NOTIFY_QUEUE)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let n = due.len();
        for (id, key, payload, attempts) in due {
            let outcome = match serde_json::from_value::<Notification>(payload) {
                Ok(notification) => {
                    match self.render(&mut tx, tenant, &key, &notification).await? {
                        Some(message) => self
                            .channel
                            .send(&message)
                            .await
                            .map(|r| r.provider_message_id),
                        None => Ok("skipped: no phone on file".to_owned()),
                    }
                }
                Err(e) => Err(SendError::Permanent {
                    reason: format!("unreadable payload: {e}"),
                }),
            };
            match outcome {
                Ok(provider_id) => {
                    sqlx::query(
                        "UPDATE notification_jobs SET status = 'sent', sent_at = now(), attempts = attempts + 1, \
                         provider_message_id = $3 WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant.id.0)
                    .bind(id)
                    .bind(provider_id)
                    .execute(&mut *tx)
                    .await?;
                }
                Err(e) => {
                    let dead =
                        matches!(e, SendError::Permanent { .. }) || attempts + 1 >= MAX_ATTEMPTS;
                    let backoff_secs = 2f64.powi(attempts.min(12)) * 5.0;
                    tracing::warn!(job.id = %id, attempts = attempts + 1, dead, error = %e, "notification not sent");
                    sqlx::query(
                        "UPDATE notification_jobs SET attempts = attempts + 1, last_error = $3, \
                         status = CASE WHEN $4 THEN 'dead' ELSE 'queued' END, \
                         run_after = now() + make_interval(secs => $5) WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant.id.0)
                    .bind(id)
                    .bind(e.to_string())
                    .bind(dead)
                    .bind(backoff_secs)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn render(
        &self,
        conn: &mut PgConnection,
        tenant: &Tenant,
        key: &str,
        notification: &Notification,
    ) -> Result<Option<Message>, sqlx::Error> {
        let city = &tenant.name;
        let tz = tenant.time_zone.0;
        let sms = |phone: String, text: String| Message {
            to: Recipient::Phone(phone),
            subject: None,
            text,
            html: None,
            idempotency_key: key.to_owned(),
        };
        match notification {
            Notification::LoginCode {
                login_code_id,
                lang,
            } => {
                let phone: Option<String> = sqlx::query_scalar(
                    "SELECT phone FROM login_codes WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.id.0)
                .bind(login_code_id)
                .fetch_optional(&mut *conn)
                .await?;
                let code = code_for(&self.secret, *login_code_id);
                let text = match Lang::from_tag(lang).unwrap_or_default() {
                    Lang::Ja => format!(
                        "{city} ワクチン予約の認証コード: {code}（{CODE_TTL_MINUTES}分間有効）"
                    ),
                    Lang::En => format!(
                        "{city} vaccination booking code: {code} (valid {CODE_TTL_MINUTES} min)"
                    ),
                    Lang::ZhHans => {
                        format!("{city} 疫苗预约验证码：{code}（{CODE_TTL_MINUTES}分钟内有效）")
                    }
                    Lang::Pt => format!(
                        "{city} código de reserva da vacina: {code} (válido {CODE_TTL_MINUTES} min)"
                    ),
                };
                Ok(phone.map(|p| sms(p, text)))
            }
            Notification::BookingConfirmed { booking_id }
            | Notification::BookingChanged { booking_id }
            | Notification::BookingCancelled { booking_id } => {
                let row: Option<BookingMessageRow> = sqlx::query_as(
                    "SELECT r.phone, r.preferred_locale, v.name, s.starts_at FROM bookings b \
                     JOIN residents r ON r.tenant_id = b.tenant_id AND r.id = b.resident_id \
                     JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
                     JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
                     WHERE b.tenant_id = $1 AND b.id = $2",
                )
                .bind(tenant.id.0)
                .bind(booking_id)
                .fetch_optional(&mut *conn)
                .await?;
                let Some((Some(phone), locale, venue, starts)) = row else {
                    return Ok(None);
                };
                let when = starts.with_timezone(&tz).format("%Y-%m-%d %H:%M");
                let lang = locale
                    .as_deref()
                    .and_then(Lang::from_tag)
                    .unwrap_or_default();
                let text = match (notification, lang) {
                    (Notification::BookingConfirmed { .. }, Lang::Ja) => {
                        format!("{city}: {when} {venue} の予約を受け付けました。")
                    }
                    (Notification::BookingConfirmed { .. }, Lang::En) => {
                        format!("{city}: booked {when} at {venue}.")
                    }
                    (Notification::BookingConfirmed { .. }, Lang::ZhHans) => {
                        format!("{city}：已预约 {when} {venue}。")
                    }
                    (Notification::BookingConfirmed { .. }, Lang::Pt) => {
                        format!("{city}: reserva feita {when} em {venue}.")
                    }
                    (Notification::BookingChanged { .. }, Lang::Ja) => {
                        format!("{city}: 予約を {when} {venue} に変更しました。")
                    }
                    (Notification::BookingChanged { .. }, Lang::En) => {
                        format!("{city}: booking moved to {when} at {venue}.")
                    }
                    (Notification::BookingChanged { .. }, Lang::ZhHans) => {
                        format!("{city}：预约已改为 {when} {venue}。")
                    }
                    (Notification::BookingChanged { .. }, Lang::Pt) => {
                        format!("{city}: reserva alterada para {when} em {venue}.")
                    }
                    (_, Lang::Ja) => format!("{city}: {when} {venue} の予約を取り消しました。"),
                    (_, Lang::En) => format!("{city}: booking {when} at {venue} cancelled."),
                    (_, Lang::ZhHans) => format!("{city}：已取消 {when} {venue} 的预约。"),
                    (_, Lang::Pt) => format!("{city}: reserva {when} em {venue} cancelada."),
                };
                Ok(Some(sms(phone, text)))
            }
        }
    }
}
