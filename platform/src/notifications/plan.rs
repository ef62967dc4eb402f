//! Deciding what to send for a job: the channel (e-mail when the resident has an address and the
//! city an e-mail channel, else SMS; login codes always by SMS), the rendered template, the SMS
//! budget (and its 80 % / 100 % alerts to the city admins).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};
use plugins::{Channel, Message, Recipient};
use tenants::Tenant;
use uuid::Uuid;

use super::outbox::{Notification, push_once};
use super::worker::{Plan, Worker};
use crate::notifications::channels;
use crate::notifications::templates::{self, Event};
use crate::residents::auth::{CODE_TTL_MINUTES, code_for};

impl Worker {
    /// The tenant's channel of `kind`, or the development fallback.
    pub(super) async fn channel(
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

    pub(super) async fn plan(
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
                let url = format!("{}/admin/t/{}/notifications", self.public_url, tenant.slug);
                let text = budget_alert_text(&tenant.name, *level, *used, *budget, &url);
                return self.admin_alert_plan(tx, key, *account_id, text).await;
            }
            Notification::PlanCapAlert {
                account_id,
                capped,
                level,
                used,
                cap,
                ..
            } => {
                let url = format!("{}/admin/t/{}/billing", self.public_url, tenant.slug);
                let text =
                    crate::caps::alert_text(&tenant.name, *capped, *level, *used, *cap, &url);
                return self.admin_alert_plan(tx, key, *account_id, text).await;
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
            // the plan's hard cap on e-mail (docs/billing.md, "Hard caps"): exactly the cap, then
            // the job is dead with the reason (login codes never come here: SMS only)
            if let Err(reached) = crate::caps::take(
                tx,
                tenant,
                crate::caps::Use::Email { job_key: key },
                Utc::now(),
            )
            .await?
            {
                return Ok(Plan::Fail(format!(
                    "the plan's e-mail cap reached ({} of {} e-mails this month); not sent (the cap resets on {}, {})",
                    reached.used, reached.cap, reached.resets_local, reached.time_zone
                )));
            }
            // reserve the e-mail until the send is metered (counted by the next decision)
            sqlx::query(
                "UPDATE notification_jobs SET channel = 'email', units = 1 WHERE idempotency_key = $1 AND status = 'sending'",
            )
            .bind(key)
            .execute(&mut **tx)
            .await?;
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
        // Exactly at the cap, even with many workers: deciding an SMS is serialised per city
        // (a lock held until this short transaction commits), and SMS decided but not yet sent
        // (`sending` with units, claimed in the last 10 minutes) count as used until the send
        // is metered or fails.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('sms-cap:' || $1::text, 0))")
            .bind(tenant.id.0)
            .execute(&mut **tx)
            .await?;
        let in_flight: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(units), 0)::bigint FROM notification_jobs \
              WHERE status = 'sending' AND channel = 'sms' AND units IS NOT NULL \
                AND idempotency_key <> $1 AND claimed_at > now() - interval '10 minutes'",
        )
        .bind(key)
        .fetch_one(&mut **tx)
        .await?;
        let mut status = channels::budget_status(tx, tenant.time_zone.name(), now).await?;
        status.used += in_flight;
        // The tighter of the city's own SMS budget and the plan's hard cap on SMS segments
        // (docs/billing.md, "Hard caps"): whichever leaves less room decides, and its 80 % /
        // 100 % alerts are the ones e-mailed (once a month per level, whichever limit it was).
        let plan_cap = match tenants::billing::hard_cap(
            tx,
            tenants::billing::MeteredKind::SmsSegment,
            tenant.time_zone.name(),
            now,
        )
        .await
        {
            Ok(cap) => cap,
            Err(tenants::billing::BillingError::Database(e)) => return Err(e),
            Err(e) => {
                tracing::error!(error = %e, "the plan's SMS cap could not be read");
                None
            }
        };
        let mut limit = status.budget.map(|b| (b, status.used, "SMS budget"));
        // A login code is never refused for the city's contract with us (a resident must be able
        // to log in, as bookings are never capped): the plan's cap does not apply to it; it is
        // metered and counts toward the month (the city's own SMS budget still applies).
        let login_code = matches!(notification, Notification::LoginCode { .. });
        if let Some(cap) = plan_cap
            && !login_code
            && limit.is_none_or(|(b, u, _)| cap.cap - cap.used < b - u)
        {
            limit = Some((cap.cap, cap.used + in_flight, "the plan's SMS cap"));
        }
        if let Some((budget, used_now, what)) = limit {
            let status = channels::BudgetStatus {
                budget: Some(budget),
                used: used_now,
            };
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
                    "{what} reached ({} of {budget} segments this month) and no e-mail address to fall back to",
                    status.used
                )));
            }
        }
        // reserve the segments until the send is metered (see the lock above)
        sqlx::query(
            "UPDATE notification_jobs SET channel = 'sms', units = $2 WHERE idempotency_key = $1 AND status = 'sending'",
        )
        .bind(key)
        .bind(i32::try_from(segments).unwrap_or(i32::MAX))
        .execute(&mut **tx)
        .await?;
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
        let admins = crate::caps::city_admins(tx, tenant).await?;
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
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// An alert to one city admin (SMS budget, plan cap): by e-mail, not billed, never capped.
    async fn admin_alert_plan(
        &self,
        tx: &mut tenants::TenantTx,
        key: &str,
        account_id: Uuid,
        (subject, text): (String, String),
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
