//! The notification worker: delivers the outbox's due jobs ([`super::outbox`]) through the city's
//! configured channel ([`super::channels`]).
//!
//! * Claim, send, record: due rows are claimed (`sending`, with a lease) and committed *before* the
//!   provider is called, then sent outside any transaction, then recorded (`sent` + provider id +
//!   units + a usage event keyed by the job, so retries and duplicates bill once). A worker killed
//!   mid-send leaves the job `sending`; when the lease ends it becomes `dead` ("not resent to avoid a
//!   duplicate") rather than being sent twice.
//! * Failures: transient ones are retried with exponential backoff and jitter (`run_after`, or the
//!   provider's Retry-After), a permanent one or the 8th failure is `dead` with the reason.
//! * Channel choice: e-mail when the resident has an address and the city has an e-mail channel,
//!   otherwise SMS; an SMS that would pass the city's monthly budget goes by e-mail where possible
//!   and is otherwise not sent (`dead`, "SMS budget reached"). Without a configured channel the
//!   development log channel is used outside production.
//! * Payloads carry ids, never secrets: a login code is derived again from the login row's id.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Utc};
use plugins::{Channel, Message, Recipient, SendError};
use sqlx::{PgConnection, PgPool};
use tenants::billing::{MeteredKind, usage};
use tenants::{Tenant, TenantStatus};
use uuid::Uuid;

use super::channels::mask;
use super::outbox::{NOTIFY_QUEUE, Notification, push_once, schedule_reminders};
use crate::notifications::channels::{self, SealingKey};
use crate::notifications::templates::{self, Event};
use crate::residents::auth::{CODE_TTL_MINUTES, CodeSecret, code_for};

pub const MAX_ATTEMPTS: i32 = 8;
const BATCH: i64 = 50;
/// A job claimed longer ago than this by a worker that never reported back is given up.
pub const LEASE_SECS: i64 = 300;

/// How the worker shares a process with the web server during a rush. While at least `busy_at`
/// requests are in flight, a pass sends only login codes (a resident is waiting on screen for
/// each); confirmations, changes, cancellations and reminders wait — they are durable rows — until
/// the rush eases, or at most `max_defer`, after which one full pass runs anyway.
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
}

/// A job as claimed.
struct Claimed {
    id: Uuid,
    key: String,
    payload: serde_json::Value,
    attempts: i32,
}

/// What the worker decided to do with a job.
enum Plan {
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
    /// Polls every `every` until `shutdown` resolves. A pass in progress is finished first.
    /// [`Worker::run`], or only waits for `shutdown` when `off` (a process that serves only).
    pub async fn run_unless(
        self,
        off: bool,
        every: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        if off {
            shutdown.await;
        } else {
            self.run(every, shutdown).await;
        }
    }

    pub async fn run(self, every: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut deferring_since: Option<Instant> = None;
        loop {
            let urgent_only = if self.pacing.busy() {
                let since = *deferring_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.pacing.max_defer {
                    deferring_since = None;
                    false
                } else {
                    true
                }
            } else {
                deferring_since = None;
                false
            };
            if let Err(e) = self.pass(urgent_only).await {
                tracing::warn!(error = %e, "notification worker pass failed");
            }
            if !urgent_only && let Err(e) = schedule_reminders(&self.pool, Utc::now()).await {
                tracing::warn!(error = %e, "reminder tick failed");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One pass over every tenant; returns how many jobs were handled.
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        self.pass(false).await
    }

    /// A pass; `urgent_only`: login codes only (see [`Pacing`]).
    pub async fn pass(&self, urgent_only: bool) -> Result<usize, sqlx::Error> {
        let mut handled = 0;
        for tenant in tenants::list(&self.pool).await? {
            if tenant.status == TenantStatus::Suspended {
                continue;
            }
            handled += self.work_tenant(&tenant, urgent_only).await?;
        }
        Ok(handled)
    }

    async fn claim(&self, tenant: &Tenant, urgent_only: bool) -> Result<Vec<Claimed>, sqlx::Error> {
        let mut tx = tenants::begin(&self.pool, tenant.id).await?;
        // A worker that claimed a job and never reported back may have sent it: give it up rather
        // than risk sending twice.
        sqlx::query(
            "UPDATE notification_jobs SET status = 'dead', \
             last_error = 'the worker stopped while sending; not resent to avoid a duplicate' \
             WHERE status = 'sending' AND claimed_at < now() - make_interval(secs => $1)",
        )
        .bind(LEASE_SECS as f64)
        .execute(&mut *tx)
        .await?;
        let due: Vec<(Uuid, String, serde_json::Value, i32)> = sqlx::query_as(
            "UPDATE notification_jobs SET status = 'sending', claimed_at = now(), attempts = attempts + 1 \
             WHERE (tenant_id, id) IN ( \
                 SELECT tenant_id, id FROM notification_jobs \
                 WHERE tenant_id = $1 AND queue = $2 AND status = 'queued' AND run_after <= now() \
                   AND (NOT $4 OR payload->>'kind' = 'login_code') \
                 ORDER BY run_after LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, idempotency_key, payload, attempts",
        )
        .bind(tenant.id.0)
        .bind(NOTIFY_QUEUE)
        .bind(BATCH)
        .bind(urgent_only)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(due
            .into_iter()
            .map(|(id, key, payload, attempts)| Claimed {
                id,
                key,
                payload,
                attempts,
            })
            .collect())
    }

    async fn work_tenant(&self, tenant: &Tenant, urgent_only: bool) -> Result<usize, sqlx::Error> {
        let claimed = self.claim(tenant, urgent_only).await?;
        let n = claimed.len();
        for job in claimed {
            let plan = {
                let mut tx = tenants::begin(&self.pool, tenant.id).await?;
                let plan = match serde_json::from_value::<Notification>(job.payload.clone()) {
                    Ok(notification) => self.plan(&mut tx, tenant, &job.key, &notification).await?,
                    Err(e) => Plan::Fail(format!("unreadable payload: {e}")),
                };
                tx.commit().await?;
                plan
            };
            // No transaction is open while the provider is called.
            let mut tx = tenants::begin(&self.pool, tenant.id).await?;
            match plan {
                Plan::Send {
                    channel,
                    kind,
                    message,
                    units,
                    billed,
                } => match channel.send(&message).await {
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
                    }
                    Err(e) => self.failed(&mut tx, &job, &e, kind, &message.to).await?,
                },
                Plan::Skip(reason) => {
                    sqlx::query(
                        "UPDATE notification_jobs SET status = 'skipped', last_error = $2 WHERE id = $1",
                    )
                    .bind(job.id)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
                }
                Plan::Fail(reason) => {
                    tracing::warn!(job.id = %job.id, reason = %reason, "notification cannot be sent");
                    sqlx::query(
                        "UPDATE notification_jobs SET status = 'dead', last_error = $2 WHERE id = $1",
                    )
                    .bind(job.id)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
        }
        Ok(n)
    }

    async fn failed(
        &self,
        tx: &mut PgConnection,
        job: &Claimed,
        e: &SendError,
        kind: &str,
        to: &Recipient,
    ) -> Result<(), sqlx::Error> {
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
        Ok(())
    }

    /// The tenant's channel of `kind`, or the development fallback.
    async fn channel(
        &self,
        tx: &mut tenants::TenantTx,
        kind: &str,
    ) -> Result<Option<Arc<dyn Channel>>, sqlx::Error> {
        match channels::load(tx, &self.sealing_key, kind).await {
            Ok(Some(c)) => Ok(Some(c)),
            Ok(None) => Ok(self.fallback.clone()),
            Err(channels::ChannelError::Database(e)) => Err(e),
            Err(e) => {
                tracing::error!(error = %e, kind, "city channel configuration unusable");
                Ok(None)
            }
        }
    }

    async fn plan(
        &self,
        tx: &mut tenants::TenantTx,
        tenant: &Tenant,
        key: &str,
        notification: &Notification,
    ) -> Result<Plan, sqlx::Error> {
        let mut values: BTreeMap<&str, String> = BTreeMap::new();
        values.insert("city", tenant.name.clone());
        let (event, phone, email, lang) = match notification {
            Notification::SmsBudgetAlert {
                account_id,
                level,
                used,
                budget,
                ..
            } => {
                return self
                    .budget_alert_plan(tx, tenant, key, *account_id, *level, *used, *budget)
                    .await;
            }
            Notification::LoginCode {
                login_code_id,
                lang,
            } => {
                let phone: Option<String> =
                    sqlx::query_scalar("SELECT phone FROM login_codes WHERE id = $1")
                        .bind(login_code_id)
                        .fetch_optional(&mut **tx)
                        .await?;
                values.insert("code", code_for(&self.secret, *login_code_id));
                values.insert("minutes", CODE_TTL_MINUTES.to_string());
                // the code proves the phone: SMS only, never e-mail
                (Event::LoginCode, phone, None, lang.clone())
            }
            Notification::BookingConfirmed { booking_id }
            | Notification::BookingChanged { booking_id }
            | Notification::BookingCancelled { booking_id }
            | Notification::Reminder { booking_id, .. } => {
                type Row = (
                    Option<String>,
                    Option<String>,
                    Option<String>,
                    String,
                    String,
                    String,
                    DateTime<Utc>,
                    i16,
                    String,
                    Uuid,
                );
                let row: Option<Row> = sqlx::query_as(
                    "SELECT r.phone, r.email, r.preferred_locale, r.kana_name, v.name, v.address, s.starts_at, \
                            b.dose, b.status, b.slot_id FROM bookings b \
                     JOIN residents r ON r.tenant_id = b.tenant_id AND r.id = b.resident_id \
                     JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
                     JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
                     WHERE b.id = $1",
                )
                .bind(booking_id)
                .fetch_optional(&mut **tx)
                .await?;
                let Some((phone, email, locale, name, venue, address, starts, dose, status, slot)) =
                    row
                else {
                    return Ok(Plan::Skip("the booking no longer exists".into()));
                };
                if let Notification::Reminder { slot_id, days, .. } = notification {
                    if status != "booked" || slot != *slot_id {
                        return Ok(Plan::Skip("the booking was cancelled or moved".into()));
                    }
                    values.insert("days", days.to_string());
                }
                let local = starts.with_timezone(&tenant.time_zone.0);
                values.insert("name", name);
                values.insert("venue", venue);
                values.insert("address", address);
                values.insert("date", local.format("%Y-%m-%d").to_string());
                values.insert("time", local.format("%H:%M").to_string());
                values.insert("dose", dose.to_string());
                values.insert(
                    "url",
                    format!("{}/t/{}/bookings", self.public_url, tenant.slug),
                );
                let event = match notification {
                    Notification::BookingConfirmed { .. } => Event::BookingConfirmed,
                    Notification::BookingChanged { .. } => Event::BookingChanged,
                    Notification::BookingCancelled { .. } => Event::BookingCancelled,
                    _ => Event::Reminder,
                };
                (
                    event,
                    phone,
                    email,
                    locale.unwrap_or_else(|| tenant.default_locale.clone()),
                )
            }
        };
        // the city's own wording where it wrote one, else the built-in default
        let (template, _) = templates::effective(tx, event, &lang).await?;
        let rendered = match templates::render(&template, &values) {
            Ok(r) => r,
            Err(e) => return Ok(Plan::Fail(format!("template: {e}"))),
        };
        let email_message = |to: String| Message {
            to: Recipient::Email(to),
            subject: Some(rendered.subject.clone()),
            text: rendered.text.clone(),
            html: Some(rendered.html.clone()),
            idempotency_key: key.to_owned(),
        };
        // e-mail first when the resident has an address (it costs the city nothing)
        if let Some(address) = email.clone().filter(|e| !e.is_empty())
            && let Some(channel) = self.channel(tx, "email").await?
        {
            return Ok(Plan::Send {
                channel,
                kind: "email",
                message: email_message(address),
                units: 1,
                billed: true,
            });
        }
        let Some(phone) = phone.filter(|p| !p.is_empty()) else {
            return Ok(Plan::Skip(
                "no phone number or e-mail address on file".into(),
            ));
        };
        let Some(channel) = self.channel(tx, "sms").await? else {
            return Ok(Plan::Fail(
                "no SMS channel is configured for this city".into(),
            ));
        };
        let segments = i64::from(plugins::sms_segments(&rendered.text));
        let now = Utc::now();
        let status = channels::budget_status(tx, tenant.time_zone.name(), now).await?;
        if let Some(budget) = status.budget {
            let after = status.used + segments;
            let over = after > budget;
            // 80 % and 100 % are each e-mailed to the city admins once a month
            if after * 5 >= budget * 4 {
                self.budget_alert(tx, tenant, 80, after.min(budget), budget, now)
                    .await?;
            }
            if after >= budget {
                let used = if over { status.used } else { after };
                self.budget_alert(tx, tenant, 100, used, budget, now)
                    .await?;
            }
            if over {
                tracing::warn!(tenant.id = %tenant.id, used = status.used, budget, "SMS budget reached");
                return Ok(Plan::Fail(format!(
                    "SMS budget reached ({} of {budget} segments this month) and no e-mail address to fall back to",
                    status.used
                )));
            }
        }
        Ok(Plan::Send {
            channel,
            kind: "sms",
            message: Message {
                to: Recipient::Phone(phone),
                subject: None,
                text: rendered.text,
                html: None,
                idempotency_key: key.to_owned(),
            },
            units: segments,
            billed: true,
        })
    }

    /// Records that the month's SMS use reached `level` % and, the first time in the month, queues
    /// an alert e-mail to each of the city's admins (in the caller's transaction).
    async fn budget_alert(
        &self,
        tx: &mut tenants::TenantTx,
        tenant: &Tenant,
        level: i32,
        used: i64,
        budget: i64,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let local = now.with_timezone(&tenant.time_zone.0).date_naive();
        let month = local.with_day(1).unwrap_or(local);
        let admins: Vec<Uuid> = sqlx::query_scalar(
            "SELECT a.id FROM authz_rules r JOIN staff_accounts a ON r.v0 = 'staff:' || a.id::text \
             WHERE r.ptype = 'g' AND r.v1 = 'city_admin' AND r.v2 = $1 AND NOT a.disabled ORDER BY a.id",
        )
        .bind(tenant.id.0.to_string())
        .fetch_all(&mut **tx)
        .await?;
        let recipients = i32::try_from(admins.len()).unwrap_or(i32::MAX);
        if !channels::record_budget_alert(tx, month, level, used, budget, recipients).await? {
            return Ok(());
        }
        tracing::warn!(tenant.id = %tenant.id, level, used, budget, recipients, "SMS budget alert");
        for account_id in admins {
            push_once(
                tx,
                tenant.id.0,
                &format!("sms-budget:{month}:{level}:{account_id}"),
                &Notification::SmsBudgetAlert {
                    account_id,
                    level,
                    month,
                    used,
                    budget,
                },
            )
            .await?;
        }
        Ok(())
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the alert's fields, read from its payload"
    )]
    async fn budget_alert_plan(
        &self,
        tx: &mut tenants::TenantTx,
        tenant: &Tenant,
        key: &str,
        account_id: Uuid,
        level: i32,
        used: i64,
        budget: i64,
    ) -> Result<Plan, sqlx::Error> {
        let email: Option<String> =
            sqlx::query_scalar("SELECT email FROM staff_accounts WHERE id = $1 AND NOT disabled")
                .bind(account_id)
                .fetch_optional(&mut **tx)
                .await?;
        let Some(email) = email else {
            return Ok(Plan::Skip(
                "the account no longer exists or is disabled".into(),
            ));
        };
        let Some(channel) = self.channel(tx, "email").await? else {
            return Ok(Plan::Fail(
                "no e-mail channel is configured for this city".into(),
            ));
        };
        let city = &tenant.name;
        let url = format!("{}/admin/t/{}/notifications", self.public_url, tenant.slug);
        let (subject, text) = budget_alert_text(city, level, used, budget, &url);
        Ok(Plan::Send {
            channel,
            kind: "email",
            message: Message {
                to: Recipient::Email(email),
                subject: Some(subject),
                html: None,
                text,
                idempotency_key: key.to_owned(),
            },
            units: 1,
            billed: false,
        })
    }
}

/// The alert e-mail to city admins, in Japanese then English (the staff's language is not known).
pub fn budget_alert_text(
    city: &str,
    level: i32,
    used: i64,
    budget: i64,
    url: &str,
) -> (String, String) {
    if level >= 100 {
        (
            format!("【{city}】今月のSMS予算に達しました / SMS budget reached"),
            format!(
                "{city} の今月のSMS送信数が予算に達しました（{used} / {budget}通）。\n\
                 今月これ以降のお知らせは、可能な場合はメールで送られます（メールアドレスのない方には送られません）。\n\
                 予算の変更：{url}\n\n\
                 SMS budget reached: {used} of {budget} segments used this month in {city}. \
                 Messages go by e-mail where possible for the rest of the month.\n\
                 Change the budget: {url}\n"
            ),
        )
    } else {
        (
            format!(
                "【{city}】今月のSMS予算の80%を使用しました / 80 % of this month's SMS budget used"
            ),
            format!(
                "{city} の今月のSMS送信数が予算の80%に達しました（{used} / {budget}通）。\n\
                 予算に達すると、お知らせは可能な場合メールで送られます。\n\
                 予算の確認・変更：{url}\n\n\
                 80 % of this month's SMS budget used in {city} ({used} of {budget} segments). \
                 When the budget is reached, messages go by e-mail where possible.\n\
                 Review the budget: {url}\n"
            ),
        )
    }
}
