//! A plan's hard caps at the point of use (docs/billing.md, "Hard caps"): e-mail, API calls and
//! exports. Every door that uses one of these calls [`take`] in the transaction that uses it (the
//! notification worker deciding an e-mail, the API-key check, the start of an export), so the rule
//! lives here once.
//!
//! * **The cap** is `tenants::billing::cap_terms`: the included quantity of the contract in force
//!   today, prorated for its days in the month exactly as the invoice prorates it. A kind without
//!   `hard_cap` costs one read of the contract and nothing else.
//! * **Exact under concurrency**: deciding is serialised per city and kind (a transaction-scoped
//!   advisory lock, held until the caller's short transaction commits), and what was decided but
//!   not yet metered counts as used ([`Use::in_flight`]): e-mails being sent, exports queued or
//!   running. An API call is metered in the same transaction right after the decision. So the
//!   cap-th use passes and the next one is refused, however many processes ask at once.
//! * **Alerts**: when a use takes the month to 80 % or to the cap (or is refused at it), the level is
//!   recorded in `plan_cap_alerts` (one row per month, kind and level) and, the first time only, an
//!   e-mail is queued to each of the city's admins in the same transaction
//!   ([`Notification::PlanCapAlert`], Japanese then English, naming the kind). The alert e-mails
//!   themselves are not metered and never refused by the e-mail cap.
//! * Bookings, residents under management and login codes are never capped (a resident must be able
//!   to log in and book whatever the city's contract says); SMS has its own check in the worker
//!   (`notifications::plan`), together with the city's own SMS budget.

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone as _, Utc};
use tenants::billing::{self, BillingError, MeteredKind};
use tenants::{Tenant, TenantTx};
use uuid::Uuid;

use crate::notifications::Notification;
use crate::notifications::outbox::push_once;

/// What is about to be used: which capped kind, and what of it is decided but not metered yet.
#[derive(Debug, Clone, Copy)]
pub enum Use<'a> {
    /// One e-mail of the notification job with this key (its own reservation is not counted twice).
    Email { job_key: &'a str },
    /// One GraphQL request authenticated by an API key (metered by the caller right after).
    ApiCall,
    /// One export about to be queued (its job row is inserted by the caller right after).
    Export,
}

impl Use<'_> {
    pub fn kind(&self) -> MeteredKind {
        match self {
            Self::Email { .. } => MeteredKind::Email,
            Self::ApiCall => MeteredKind::ApiCall,
            Self::Export => MeteredKind::Export,
        }
    }

    /// Units decided but not yet metered: e-mails reserved by a worker that is sending them
    /// (`sending` with units, claimed in the last 10 minutes, as for SMS), exports queued or
    /// running (metered when their file is written). API calls are metered at once.
    async fn in_flight(&self, tx: &mut TenantTx) -> Result<i64, sqlx::Error> {
        match self {
            Self::Email { job_key } => {
                sqlx::query_scalar(
                    "SELECT COALESCE(sum(units), 0)::bigint FROM notification_jobs \
                      WHERE status = 'sending' AND channel = 'email' AND units IS NOT NULL \
                        AND idempotency_key <> $1 AND claimed_at > now() - interval '10 minutes'",
                )
                .bind(*job_key)
                .fetch_one(&mut **tx)
                .await
            }
            Self::ApiCall => Ok(0),
            Self::Export => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM export_jobs WHERE state IN ('queued', 'running')",
                )
                .fetch_one(&mut **tx)
                .await
            }
        }
    }
}

/// A use refused at the plan's cap: what every door tells the person (see [`Self::ja`] and the
/// English `Display`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapReached {
    pub kind: MeteredKind,
    /// Used this month (with what is in flight) when refused.
    pub used: i64,
    pub cap: i64,
    /// The first day of the month the cap belongs to (city's time zone).
    pub month: NaiveDate,
    /// When the cap starts again: the first of next month, 00:00 in the city's time zone.
    pub resets_at: DateTime<Utc>,
    /// The city's time zone name, for the message.
    pub time_zone: &'static str,
    /// `resets_at` on the city's clock (`2027-01-01 00:00`).
    pub resets_local: String,
}

impl CapReached {
    fn local_reset(&self) -> String {
        self.resets_local.clone()
    }

    /// The same refusal in Japanese.
    pub fn ja(&self) -> String {
        format!(
            "ご契約のプランの今月の{}の上限に達しました（{} / {}{}）。{}（{}）から再び利用できます。上限の変更はプラットフォーム運営者にご相談ください。",
            kind_ja(self.kind),
            self.used,
            self.cap,
            unit_ja(self.kind),
            self.local_reset(),
            self.time_zone,
        )
    }

    /// Whole seconds until the cap resets (at least one): the `Retry-After` of an HTTP refusal.
    pub fn retry_after_secs(&self, now: DateTime<Utc>) -> u64 {
        u64::try_from((self.resets_at - now).num_seconds())
            .unwrap_or(0)
            .max(1)
    }
}

impl std::fmt::Display for CapReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "The plan's monthly cap on {} is reached ({} of {} this month); it resets on {} ({}). \
             Ask the platform operator to change the plan.",
            kind_en(self.kind),
            self.used,
            self.cap,
            self.local_reset(),
            self.time_zone,
        )
    }
}

fn kind_en(kind: MeteredKind) -> &'static str {
    match kind {
        MeteredKind::Email => "e-mails",
        MeteredKind::ApiCall => "API calls",
        MeteredKind::Export => "exports",
        MeteredKind::SmsSegment => "SMS segments",
        MeteredKind::Booking => "bookings",
        MeteredKind::Resident => "residents under management",
    }
}

fn kind_ja(kind: MeteredKind) -> &'static str {
    match kind {
        MeteredKind::Email => "メール送信数",
        MeteredKind::ApiCall => "API呼び出し数",
        MeteredKind::Export => "データ出力数",
        MeteredKind::SmsSegment => "SMS送信数",
        MeteredKind::Booking => "予約件数",
        MeteredKind::Resident => "管理対象者数",
    }
}

fn unit_ja(kind: MeteredKind) -> &'static str {
    match kind {
        MeteredKind::Email => "通",
        MeteredKind::ApiCall => "回",
        MeteredKind::Export => "件",
        MeteredKind::SmsSegment => "通",
        MeteredKind::Booking => "件",
        MeteredKind::Resident => "人",
    }
}

/// The first instant of the month after `month` in `tz`, and that instant on the city's clock.
fn next_month_start(month: NaiveDate, tz: &tenants::TimeZone) -> (DateTime<Utc>, String) {
    let next = month
        .with_day(1)
        .and_then(|d| d.checked_add_months(Months::new(1)))
        .unwrap_or(month);
    let midnight = next.and_hms_opt(0, 0, 0).unwrap_or_default();
    let at =
        tz.0.from_local_datetime(&midnight)
            .earliest()
            .map_or_else(|| midnight.and_utc(), |d| d.with_timezone(&Utc));
    let local = at.with_timezone(&tz.0).format("%Y-%m-%d %H:%M").to_string();
    (at, local)
}

/// Decides one use of a capped kind in the caller's transaction: `Ok(Ok(()))` when it fits (or the
/// plan has no cap on it), `Ok(Err(reached))` when it would pass the cap. The caller meters (API
/// call), reserves (e-mail) or queues (export) in the same transaction, then commits, which
/// releases the lock; on a refusal it commits too, so the alert is kept. 80 % / 100 % alerts are
/// recorded and queued here.
pub async fn take(
    tx: &mut TenantTx,
    tenant: &Tenant,
    what: Use<'_>,
    now: DateTime<Utc>,
) -> Result<Result<(), CapReached>, sqlx::Error> {
    let kind = what.kind();
    let tz = tenant.time_zone.name();
    let Some(terms) = cap_terms(tx, kind, tz, now).await? else {
        return Ok(Ok(()));
    };
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('plan-cap:' || $1 || ':' || $2::text, 0))",
    )
    .bind(kind.as_str())
    .bind(tenant.id.0)
    .execute(&mut **tx)
    .await?;
    // read after the lock: every use decided before it is now metered or in flight
    let metered = billing::usage::total_of(tx, kind, terms.from, terms.until, tz).await?;
    let used = metered + what.in_flight(tx).await?;
    let cap = terms.cap;
    let after = used + 1;
    let over = after > cap;
    if after * 5 >= cap * 4 {
        alert(tx, tenant, kind, terms.month, 80, after.min(cap), cap, now).await?;
    }
    if after >= cap {
        let level_used = if over { used.min(cap) } else { after };
        alert(tx, tenant, kind, terms.month, 100, level_used, cap, now).await?;
    }
    if over {
        tracing::warn!(tenant.id = %tenant.id, kind = kind.as_str(), used, cap, "plan cap reached");
        let (resets_at, resets_local) = next_month_start(terms.month, &tenant.time_zone);
        return Ok(Err(CapReached {
            kind,
            used,
            cap,
            month: terms.month,
            resets_at,
            time_zone: tz,
            resets_local,
        }));
    }
    Ok(Ok(()))
}

async fn cap_terms(
    tx: &mut TenantTx,
    kind: MeteredKind,
    tz: &str,
    now: DateTime<Utc>,
) -> Result<Option<billing::CapTerms>, sqlx::Error> {
    match billing::cap_terms(tx, kind, tz, now).await {
        Ok(t) => Ok(t),
        Err(BillingError::Database(e)) => Err(e),
        Err(e) => {
            // stored terms that no longer parse: the use goes ahead (and is billed), loudly
            tracing::error!(error = %e, kind = kind.as_str(), "the plan's cap could not be read");
            Ok(None)
        }
    }
}

/// The city's enabled admins, who get budget and cap alerts.
pub(crate) async fn city_admins(
    tx: &mut TenantTx,
    tenant: &Tenant,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT a.id FROM authz_rules r JOIN staff_accounts a ON r.v0 = 'staff:' || a.id::text \
         WHERE r.ptype = 'g' AND r.v1 = 'city_admin' AND r.v2 = $1 AND NOT a.disabled ORDER BY a.id",
    )
    .bind(tenant.id.0.to_string())
    .fetch_all(&mut **tx)
    .await
}

/// Records that `kind` reached `level` % of the plan's cap in `month` and, the first time, queues an
/// alert e-mail to each city admin (in the caller's transaction).
#[expect(
    clippy::too_many_arguments,
    reason = "the alert's fields, as recorded and queued"
)]
async fn alert(
    tx: &mut TenantTx,
    tenant: &Tenant,
    kind: MeteredKind,
    month: NaiveDate,
    level: i32,
    used: i64,
    cap: i64,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    // most calls past 80 % find the row already there: one index probe, nothing written
    let seen: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM plan_cap_alerts WHERE kind = $1 AND month = $2 AND level = $3)",
    )
    .bind(kind.as_str())
    .bind(month)
    .bind(i64::from(level))
    .fetch_one(&mut **tx)
    .await?;
    if seen {
        return Ok(());
    }
    let admins = city_admins(tx, tenant).await?;
    let recipients = i64::try_from(admins.len()).unwrap_or(i64::MAX);
    let done = sqlx::query(
        "INSERT INTO plan_cap_alerts (tenant_id, kind, month, level, used, cap, recipients) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, kind, month, level) DO NOTHING",
    )
    .bind(tenant.id.0)
    .bind(kind.as_str())
    .bind(month)
    .bind(i64::from(level))
    .bind(used)
    .bind(cap)
    .bind(recipients)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(());
    }
    tracing::warn!(tenant.id = %tenant.id, kind = kind.as_str(), level, used, cap, recipients, "plan cap alert");
    for account_id in admins {
        push_once(
            tx,
            tenant.id.0,
            &format!("plan-cap:{}:{month}:{level}:{account_id}", kind.as_str()),
            &Notification::PlanCapAlert {
                account_id,
                capped: kind,
                level,
                month,
                used,
                cap,
            },
            now,
        )
        .await?;
    }
    Ok(())
}

/// A cap alert as the billing page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapAlert {
    pub kind: MeteredKind,
    pub month: NaiveDate,
    pub level: i64,
    pub used: i64,
    pub cap: i64,
    pub at: DateTime<Utc>,
    pub recipients: i64,
}

/// A `plan_cap_alerts` row: kind, month, level, used, cap, at, recipients.
type AlertRow = (String, NaiveDate, i64, i64, i64, DateTime<Utc>, i64);

/// The cap alerts recorded for the transaction's tenant, newest month first (at most 36).
pub async fn alerts(tx: &mut TenantTx) -> Result<Vec<CapAlert>, sqlx::Error> {
    let rows: Vec<AlertRow> = sqlx::query_as(
        "SELECT kind, month, level, used, cap, at, recipients FROM plan_cap_alerts \
         ORDER BY month DESC, kind, level DESC LIMIT 36",
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(kind, month, level, used, cap, at, recipients)| {
            Some(CapAlert {
                kind: MeteredKind::parse(&kind)?,
                month,
                level,
                used,
                cap,
                at,
                recipients,
            })
        })
        .collect())
}

/// The alert e-mail to city admins, in Japanese then English (the staff's language is not known).
pub fn alert_text(
    city: &str,
    kind: MeteredKind,
    level: i32,
    used: i64,
    cap: i64,
    url: &str,
) -> (String, String) {
    let (ja, en, unit) = (kind_ja(kind), kind_en(kind), unit_ja(kind));
    let stops = match kind {
        MeteredKind::Email => (
            "今月これ以降、住民へのお知らせメールは送られません（認証コードはSMSで送られます）。",
            "No more e-mails to residents are sent this month (login codes go by SMS).",
        ),
        MeteredKind::ApiCall => (
            "今月これ以降、APIキーによる呼び出しはお断りします（HTTP 429）。",
            "API-key requests are refused for the rest of the month (HTTP 429).",
        ),
        _ => (
            "今月これ以降、データ出力は開始できません。",
            "No more exports can be started this month.",
        ),
    };
    if level >= 100 {
        (
            format!(
                "【{city}】ご契約プランの今月の{ja}の上限に達しました / Plan cap on {en} reached"
            ),
            format!(
                "{city} の今月の{ja}がご契約プランの上限に達しました（{used} / {cap}{unit}）。\n\
                 {}\n\
                 利用状況：{url}\n\n\
                 The plan's monthly cap on {en} is reached in {city}: {used} of {cap} used this month. \
                 {}\n\
                 Usage: {url}\n",
                stops.0, stops.1
            ),
        )
    } else {
        (
            format!(
                "【{city}】ご契約プランの今月の{ja}の上限の80%を使用しました / 80 % of the plan's cap on {en} used"
            ),
            format!(
                "{city} の今月の{ja}がご契約プランの上限の80%に達しました（{used} / {cap}{unit}）。\n\
                 上限に達すると：{}\n\
                 利用状況：{url}\n\n\
                 80 % of the plan's monthly cap on {en} used in {city} ({used} of {cap}). \
                 At the cap: {}\n\
                 Usage: {url}\n",
                stops.0, stops.1
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_resets_at_the_citys_next_midnight_on_the_first() {
        let month = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let tz = tenants::TimeZone::parse("Asia/Tokyo").unwrap();
        let (at, resets_local) = next_month_start(month, &tz);
        assert_eq!(at.to_rfc3339(), "2026-12-31T15:00:00+00:00");
        let reached = CapReached {
            kind: MeteredKind::ApiCall,
            used: 1000,
            cap: 1000,
            month,
            resets_at: at,
            time_zone: "Asia/Tokyo",
            resets_local,
        };
        let en = reached.to_string();
        assert!(
            en.contains("API calls") && en.contains("1000 of 1000"),
            "{en}"
        );
        assert!(en.contains("2027-01-01 00:00 (Asia/Tokyo)"), "{en}");
        assert!(
            reached
                .ja()
                .contains("API呼び出し数の上限に達しました（1000 / 1000回）")
        );
        let now = at - chrono::Duration::seconds(90);
        assert_eq!(reached.retry_after_secs(now), 90);
        assert_eq!(reached.retry_after_secs(at), 1);
    }

    #[test]
    fn alerts_name_the_kind_in_both_languages() {
        let (subject, text) = alert_text("デモ市", MeteredKind::Export, 80, 8, 10, "u");
        assert!(
            subject.contains("データ出力数") && subject.contains("exports"),
            "{subject}"
        );
        assert!(
            text.contains("8 / 10件") && text.contains("8 of 10"),
            "{text}"
        );
        let (subject, _) = alert_text("デモ市", MeteredKind::Email, 100, 5, 5, "u");
        assert!(
            subject.contains("メール送信数") && subject.contains("e-mails reached"),
            "{subject}"
        );
    }
}
