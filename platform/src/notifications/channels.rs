//! A city's configured notification channels, with their secret fields encrypted at rest
//! (ChaCha20-Poly1305 under the server's key), and the SMS budget check.
//!
//! Saving validates the whole configuration by building the channel (so a bad value is refused with
//! the field's name before anything is stored); a secret left empty on update keeps the stored one,
//! so the admin UI never has to show a secret again — it shows [`Masked`] values instead.

use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretSlice};
use serde_json::{Map, Value, json};
use sqlx::Row;
use tenants::TenantTx;

use crate::staff::audit;
use crate::staff::authz::{Act, Actor, Authz, Denied, Object, Scope};

/// The key that seals channel secrets; 32 bytes.
#[derive(Clone)]
pub struct SealingKey(Arc<SecretSlice<u8>>);

impl SealingKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Arc::new(SecretSlice::from(bytes.to_vec())))
    }

    fn cipher(&self) -> Result<ChaCha20Poly1305, ChannelError> {
        ChaCha20Poly1305::new_from_slice(self.0.expose_secret()).map_err(|_| ChannelError::Sealing)
    }

    pub(crate) fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher()?
            .encrypt(&Nonce::from(nonce), plain)
            .map_err(|_| ChannelError::Sealing)?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    pub(crate) fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, ChannelError> {
        if sealed.len() < 12 {
            return Err(ChannelError::Sealing);
        }
        let (nonce, body) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| ChannelError::Sealing)?;
        self.cipher()?
            .decrypt(&Nonce::from(nonce), body)
            .map_err(|_| ChannelError::Sealing)
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey([REDACTED])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("{0}")]
    Config(#[from] plugins::ConfigError),
    #[error("channel kind {0:?} is not one of sms, email, webhook")]
    Kind(String),
    #[error("plugin {plugin} cannot serve {kind} messages")]
    WrongKind { plugin: String, kind: String },
    #[error(
        "stored channel secrets could not be decrypted (was notifications.encryption_key changed?)"
    )]
    Sealing,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn secret_fields(plugin: &str) -> Vec<&'static str> {
    plugins::catalogue()
        .into_iter()
        .filter(|p| p.name == plugin)
        .flat_map(|p| p.fields)
        .filter(|f| f.secret)
        .map(|f| f.name)
        .collect()
}

fn plugin_kind(plugin: &str) -> Option<&'static str> {
    plugins::catalogue()
        .into_iter()
        .find(|p| p.name == plugin)
        .map(|p| p.kind)
}

/// Validates and stores a channel configuration for the tenant of `tx`.
pub async fn save(
    tx: &mut TenantTx,
    key: &SealingKey,
    kind: &str,
    plugin: &str,
    config: Value,
) -> Result<(), ChannelError> {
    if !["sms", "email", "webhook"].contains(&kind) {
        return Err(ChannelError::Kind(kind.to_owned()));
    }
    let Value::Object(mut fields) = config else {
        return Err(plugins::ConfigError::new("config", "must be an object of fields").into());
    };
    match plugin_kind(plugin) {
        Some(k) if k == kind => {}
        Some(_) => {
            return Err(ChannelError::WrongKind {
                plugin: plugin.to_owned(),
                kind: kind.to_owned(),
            });
        }
        None => {
            plugins::build(plugin, Value::Object(fields))?;
            return Err(ChannelError::Kind(kind.to_owned()));
        }
    }
    // An empty secret on update keeps the stored one.
    if let Some((stored_plugin, stored)) = load_fields(tx, key, kind).await?
        && stored_plugin == plugin
    {
        for name in secret_fields(plugin) {
            let empty = fields
                .get(name)
                .is_none_or(|v| v.as_str().is_some_and(str::is_empty));
            if empty && let Some(v) = stored.get(name) {
                fields.insert(name.to_owned(), v.clone());
            }
        }
    }
    // drop empty optional values so the plugin sees "not set"
    fields.retain(|_, v| !v.as_str().is_some_and(str::is_empty) && !v.is_null());
    plugins::build(plugin, Value::Object(fields.clone()))?;

    let mut secrets = Map::new();
    for name in secret_fields(plugin) {
        if let Some(v) = fields.remove(name) {
            secrets.insert(name.to_owned(), v);
        }
    }
    let sealed = key.seal(Value::Object(secrets).to_string().as_bytes())?;
    sqlx::query(
        "INSERT INTO notification_channels (tenant_id, kind, plugin, settings, secrets, updated_at) \
         VALUES ($1, $2, $3, $4, $5, now()) \
         ON CONFLICT (tenant_id, kind) DO UPDATE SET plugin = $3, settings = $4, secrets = $5, \
         enabled = true, updated_at = now()",
    )
    .bind(tx.tenant_id().0)
    .bind(kind)
    .bind(plugin)
    .bind(Value::Object(fields))
    .bind(sealed)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn load_fields(
    tx: &mut TenantTx,
    key: &SealingKey,
    kind: &str,
) -> Result<Option<(String, Map<String, Value>)>, ChannelError> {
    let Some(row) = sqlx::query(
        "SELECT plugin, settings, secrets FROM notification_channels WHERE kind = $1 AND enabled",
    )
    .bind(kind)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let plugin: String = row.try_get("plugin")?;
    let mut fields = match row.try_get::<Value, _>("settings")? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let plain = key.open(&row.try_get::<Vec<u8>, _>("secrets")?)?;
    if let Ok(Value::Object(secrets)) = serde_json::from_slice::<Value>(&plain) {
        fields.extend(secrets);
    }
    Ok(Some((plugin, fields)))
}

/// Channels most kept by [`load`]; when full, it starts again empty.
pub const KEPT_CHANNELS: usize = 256;

/// A channel as [`load`] built it, by tenant and by its whole configuration (plugin and every
/// field, secrets included).
type Kept = std::collections::HashMap<(tenants::TenantId, String), Arc<dyn plugins::Channel>>;

/// The channels [`load`] built in this process. Building one makes a new HTTP client (Twilio,
/// webhook) or SMTP transport, so a new connection and TLS handshake for each message; kept, a
/// city's messages share one client and its open connections. An edited configuration is another
/// key: it takes effect with the next message.
static KEPT: std::sync::LazyLock<std::sync::Mutex<Kept>> =
    std::sync::LazyLock::new(Default::default);

/// The tenant's channel for `kind`, ready to send; `None` when none is configured. The stored
/// configuration is read every time; the channel built from it is the one built before for the
/// same configuration ([`KEPT_CHANNELS`]).
pub async fn load(
    tx: &mut TenantTx,
    key: &SealingKey,
    kind: &str,
) -> Result<Option<Arc<dyn plugins::Channel>>, ChannelError> {
    let Some((plugin, fields)) = load_fields(tx, key, kind).await? else {
        return Ok(None);
    };
    let config = Value::Object(fields);
    let id = (tx.tenant_id(), format!("{plugin}\u{0}{config}"));
    if let Some(channel) = KEPT.lock().ok().and_then(|k| k.get(&id).cloned()) {
        return Ok(Some(channel));
    }
    let channel = plugins::build(&plugin, config)?;
    if let Ok(mut k) = KEPT.lock() {
        if k.len() >= KEPT_CHANNELS {
            k.clear();
        }
        k.insert(id, channel.clone());
    }
    Ok(Some(channel))
}

/// Checks a delivery report from the city's SMS gateway: the signature must have been made with the
/// city's stored token over the callback URL the city configured (what the gateway signs). `false`
/// when the city has no Twilio-compatible channel or the signature is wrong.
pub async fn verify_sms_callback(
    tx: &mut TenantTx,
    key: &SealingKey,
    params: &[(String, String)],
    signature: &str,
) -> Result<bool, ChannelError> {
    let Some((plugin, fields)) = load_fields(tx, key, "sms").await? else {
        return Ok(false);
    };
    let (Some(Value::String(token)), Some(Value::String(url))) =
        (fields.get("auth_token"), fields.get("status_callback_url"))
    else {
        return Ok(false);
    };
    Ok(plugin == "twilio"
        && plugins::twilio::verify_twilio_signature(token, url, params, signature))
}

/// Records a verified delivery report on the job that sent `provider_message_id`. A report never
/// moves a message backwards (a late "sent" after "delivered" is ignored). `false` when no job sent it.
pub async fn record_delivery(
    tx: &mut TenantTx,
    provider_message_id: &str,
    state: plugins::DeliveryState,
    reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let status = match state {
        plugins::DeliveryState::Delivered => "delivered",
        plugins::DeliveryState::Failed => "failed",
        plugins::DeliveryState::Sent | plugins::DeliveryState::Queued => return Ok(true),
    };
    let done = sqlx::query(
        "UPDATE notification_jobs SET status = $2, last_error = COALESCE($3, last_error) \
         WHERE provider_message_id = $1 AND status IN ('sent', 'delivered', 'failed')",
    )
    .bind(provider_message_id)
    .bind(status)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A configuration as the admin UI may show it: secrets reduced to their last two characters.
#[derive(Debug, Clone, PartialEq)]
pub struct Masked {
    pub plugin: String,
    pub fields: Map<String, Value>,
    pub updated_at: DateTime<Utc>,
}

pub async fn masked(
    tx: &mut TenantTx,
    key: &SealingKey,
    kind: &str,
) -> Result<Option<Masked>, ChannelError> {
    let updated_at: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT updated_at FROM notification_channels WHERE kind = $1")
            .bind(kind)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((plugin, mut fields)) = load_fields(tx, key, kind).await? else {
        return Ok(None);
    };
    for name in secret_fields(&plugin) {
        if let Some(Value::String(s)) = fields.get(name) {
            let tail: String = s
                .chars()
                .rev()
                .take(2)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            fields.insert(name.to_owned(), Value::String(format!("••••••{tail}")));
        }
    }
    Ok(Some(Masked {
        plugin,
        fields,
        updated_at: updated_at.unwrap_or_else(Utc::now),
    }))
}

/// Where this month's SMS stand against the city's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// No budget set, or well under it.
    Within,
    /// This send crosses 80 % of the budget: send, and alert the city admins.
    CrossesAlert { used: i64, budget: i64 },
    /// The budget would be exceeded: do not send by SMS (use e-mail where possible).
    Exhausted { used: i64, budget: i64 },
}

/// Checks `segments` more SMS against the month's usage (usage events of kind sms_segment in the
/// tenant's local month).
pub async fn sms_budget(
    tx: &mut TenantTx,
    tz: &str,
    now: DateTime<Utc>,
    segments: i64,
) -> Result<Budget, sqlx::Error> {
    let budget: Option<i64> =
        sqlx::query_scalar("SELECT sms_monthly_budget FROM notification_settings")
            .fetch_optional(&mut **tx)
            .await?
            .flatten();
    let Some(budget) = budget else {
        return Ok(Budget::Within);
    };
    let used: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(quantity), 0)::bigint FROM usage_events WHERE kind = 'sms_segment' \
         AND date_trunc('month', occurred_at AT TIME ZONE $1) = date_trunc('month', $2 AT TIME ZONE $1)",
    )
    .bind(tz)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(if used + segments > budget {
        Budget::Exhausted { used, budget }
    } else if used * 5 < budget * 4 && (used + segments) * 5 >= budget * 4 {
        Budget::CrossesAlert {
            used: used + segments,
            budget,
        }
    } else {
        Budget::Within
    })
}

/// Stores the budget (the one setter, [`set_sms_budget`], validates and audits).
async fn store_sms_budget(tx: &mut TenantTx, budget: Option<i64>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_settings (tenant_id, sms_monthly_budget) VALUES ($1, $2) \
         ON CONFLICT (tenant_id) DO UPDATE SET sms_monthly_budget = $2",
    )
    .bind(tx.tenant_id().0)
    .bind(budget)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The plugin that serves `kind` and its form fields (one plugin per kind today).
pub fn plugin_for_kind(kind: &str) -> Option<plugins::PluginInfo> {
    plugins::catalogue().into_iter().find(|p| p.kind == kind)
}

/// Why a test message could not be attempted (a provider's refusal is a result, not this).
#[derive(Debug, thiserror::Error)]
pub enum TestSendError {
    #[error("no {0} channel is configured yet: save the settings first")]
    NotConfigured(String),
    #[error("{0}")]
    Recipient(String),
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

/// Checks what an admin typed as a test recipient for a channel of `kind`.
pub fn test_recipient(kind: &str, to: &str) -> Result<plugins::Recipient, TestSendError> {
    let to = to.trim();
    let phone = || {
        let digits = to.chars().filter(char::is_ascii_digit).count();
        let ok = (10..=15).contains(&digits)
            && to
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_digit() || c == '-' || c == ' ' || (c == '+' && i == 0));
        ok.then(|| plugins::Recipient::Phone(to.replace(['-', ' '], "")))
    };
    let email = || {
        let ok = to.split_once('@').is_some_and(|(u, d)| {
            !u.is_empty()
                && d.contains('.')
                && !d.starts_with('.')
                && !to.contains(char::is_whitespace)
        });
        ok.then(|| plugins::Recipient::Email(to.to_owned()))
    };
    match kind {
        "sms" => phone().ok_or_else(|| {
            TestSendError::Recipient(
                "enter a mobile number such as 09012345678 or +819012345678".into(),
            )
        }),
        "email" => email().ok_or_else(|| {
            TestSendError::Recipient("enter an e-mail address such as name@example.jp".into())
        }),
        _ => email().or_else(phone).ok_or_else(|| {
            TestSendError::Recipient("enter an e-mail address or a mobile number".into())
        }),
    }
}

/// A test message for the city's configured channel of `kind`, ready to send: the channel and the
/// message. Send it with no transaction open, then [`record_test`] the receipt.
pub async fn prepare_test(
    tx: &mut TenantTx,
    key: &SealingKey,
    kind: &str,
    to: &str,
    city: &str,
) -> Result<(Arc<dyn plugins::Channel>, plugins::Message), TestSendError> {
    let recipient = test_recipient(kind, to)?;
    let channel = load(tx, key, kind)
        .await?
        .ok_or_else(|| TestSendError::NotConfigured(kind.to_owned()))?;
    let message = plugins::Message {
        to: recipient,
        subject: Some(format!("【{city}】テスト送信 / test message")),
        text: format!("{city}：予約システムからのテスト送信です。/ Test message from {city}."),
        html: None,
        idempotency_key: format!("notify-test:{}", uuid::Uuid::now_v7()),
    };
    Ok((channel, message))
}

/// Meters a sent test message like any other (SMS segments, e-mails), keyed by the message.
pub async fn record_test(
    tx: &mut TenantTx,
    kind: &str,
    message: &plugins::Message,
    receipt: &plugins::DeliveryReceipt,
) -> Result<(), sqlx::Error> {
    let metered = match kind {
        "sms" => tenants::billing::MeteredKind::SmsSegment,
        "email" => tenants::billing::MeteredKind::Email,
        _ => return Ok(()),
    };
    tenants::billing::usage::record(
        tx,
        &message.idempotency_key,
        metered,
        i64::from(receipt.units).max(1),
        Utc::now(),
    )
    .await?;
    Ok(())
}

/// This month's SMS use against the city's budget, for banners and the budget form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStatus {
    pub budget: Option<i64>,
    pub used: i64,
}

/// How far along the budget is: what the admin pages say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BudgetLevel {
    Fine,
    /// 80 % or more used.
    Alert,
    /// All used: SMS go by e-mail where possible.
    Reached,
}

impl BudgetStatus {
    pub fn level(&self) -> BudgetLevel {
        match self.budget {
            Some(b) if self.used >= b => BudgetLevel::Reached,
            Some(b) if self.used * 5 >= b * 4 => BudgetLevel::Alert,
            _ => BudgetLevel::Fine,
        }
    }
    /// Percent used (0 when no budget is set).
    pub fn percent(&self) -> i64 {
        match self.budget {
            Some(b) if b > 0 => self.used * 100 / b,
            Some(_) => 100,
            None => 0,
        }
    }
}

pub async fn budget_status(
    tx: &mut TenantTx,
    tz: &str,
    now: DateTime<Utc>,
) -> Result<BudgetStatus, sqlx::Error> {
    let budget: Option<i64> =
        sqlx::query_scalar("SELECT sms_monthly_budget FROM notification_settings")
            .fetch_optional(&mut **tx)
            .await?
            .flatten();
    let used: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(quantity), 0)::bigint FROM usage_events WHERE kind = 'sms_segment' \
         AND date_trunc('month', occurred_at AT TIME ZONE $1) = date_trunc('month', $2 AT TIME ZONE $1)",
    )
    .bind(tz)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(BudgetStatus { budget, used })
}

/// The largest SMS budget accepted: 100 million segments a month.
pub const SMS_BUDGET_MAX: i64 = 100_000_000;

/// Why a typed SMS budget was refused. The budget counts **SMS segments** per month (what the
/// worker compares with the month's `sms_segment` usage), never yen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetInputError {
    #[error("{0:?} is not a whole number of SMS segments (leave it empty for no budget)")]
    NotANumber(String),
    #[error("the SMS budget must be between 0 and 100,000,000 segments, not {0}")]
    OutOfRange(i64),
}

impl BudgetInputError {
    /// The same reason in Japanese.
    pub fn ja(&self) -> String {
        match self {
            Self::NotANumber(input) => format!(
                "「{input}」はSMSの通数（整数）ではありません（上限なしにするには空欄にしてください）"
            ),
            Self::OutOfRange(n) => {
                format!("SMS予算は0〜100,000,000通の範囲で入力してください（{n}）")
            }
        }
    }
}

/// Reads a budget typed into a form: empty = no budget; otherwise a whole number of SMS segments
/// from 0 to [`SMS_BUDGET_MAX`] (commas, spaces, underscores and full-width digits accepted).
pub fn parse_budget(input: &str) -> Result<Option<i64>, BudgetInputError> {
    let cleaned: String = input
        .trim()
        .chars()
        .filter(|c| !matches!(c, ',' | '_' | ' ' | '，' | '\u{3000}'))
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            '－' => '-',
            c => c,
        })
        .collect();
    if cleaned.is_empty() {
        return Ok(None);
    }
    match cleaned.parse::<i64>() {
        Ok(n) if (0..=SMS_BUDGET_MAX).contains(&n) => Ok(Some(n)),
        Ok(n) => Err(BudgetInputError::OutOfRange(n)),
        Err(_) => Err(BudgetInputError::NotANumber(input.trim().to_owned())),
    }
}

/// Why the budget was not set.
#[derive(Debug, thiserror::Error)]
pub enum SetBudgetError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Invalid(#[from] BudgetInputError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The one permission to set the SMS budget: `notifications` / write (city admins and the
/// operator; auditors only read it). The admin pages show the form only when this says yes.
pub async fn may_set_sms_budget(
    authz: &Authz,
    actor: &Actor,
    tenant: tenants::TenantId,
) -> Result<bool, Denied> {
    authz
        .check(actor, tenant, Object::Notifications, Act::Write)
        .await
}

/// The one SMS-budget setter, for every front end (the notifications page, the billing page):
/// checks [`may_set_sms_budget`] for the scope's actor, parses `input` with [`parse_budget`],
/// stores it and records `sms_budget.set` in the audit log, in the scope's transaction (the caller
/// commits). On any error nothing has been written.
pub async fn set_sms_budget(
    authz: &Authz,
    scope: &mut Scope,
    input: &str,
) -> Result<Option<i64>, SetBudgetError> {
    let tenant = scope.tenant_id();
    if !may_set_sms_budget(authz, &scope.actor, tenant).await? {
        return Err(if authz.is_member(&scope.actor, tenant).await {
            Denied::Forbidden
        } else {
            Denied::NotFound
        }
        .into());
    }
    let budget = parse_budget(input)?;
    store_sms_budget(&mut scope.tx, budget).await?;
    audit::record(
        scope,
        "sms_budget.set",
        "notification_settings",
        json!({ "budget": budget, "unit": "sms_segment" }),
    )
    .await?;
    Ok(budget)
}

/// This month's SMS use against the budget, for the scope's tenant.
pub async fn sms_budget_status(
    scope: &mut Scope,
    tz: &str,
    now: DateTime<Utc>,
) -> Result<BudgetStatus, sqlx::Error> {
    budget_status(&mut scope.tx, tz, now).await
}

/// Budget alerts sent so far, for the scope's tenant (see [`budget_alerts`]).
pub async fn sms_budget_alerts(
    scope: &mut Scope,
) -> Result<Vec<(chrono::NaiveDate, i32, DateTime<Utc>, i32)>, sqlx::Error> {
    budget_alerts(&mut scope.tx).await
}

/// The scope's channel of `kind` as an admin may see it (secrets masked).
pub async fn masked_channel(
    scope: &mut Scope,
    key: &SealingKey,
    kind: &str,
) -> Result<Option<Masked>, ChannelError> {
    masked(&mut scope.tx, key, kind).await
}

/// Validates and stores the scope's channel of `kind` ([`save`]) and records
/// `notification_channel.save` (field names and which secrets changed, never values).
pub async fn save_channel(
    scope: &mut Scope,
    key: &SealingKey,
    kind: &str,
    plugin: &str,
    config: Map<String, Value>,
) -> Result<(), ChannelError> {
    let field_names: Vec<String> = config.keys().cloned().collect();
    let secrets_changed: Vec<&str> = secret_fields(plugin)
        .into_iter()
        .filter(|n| config.contains_key(*n))
        .collect();
    save(&mut scope.tx, key, kind, plugin, Value::Object(config)).await?;
    audit::record(
        scope,
        "notification_channel.save",
        &format!("notification_channel/{kind}"),
        json!({ "plugin": plugin, "fields": field_names, "secrets_changed": secrets_changed }),
    )
    .await?;
    Ok(())
}

/// A test message for the scope's channel of `kind` ([`prepare_test`]).
pub async fn prepare_test_send(
    scope: &mut Scope,
    key: &SealingKey,
    kind: &str,
    to: &str,
    city: &str,
) -> Result<(Arc<dyn plugins::Channel>, plugins::Message), TestSendError> {
    prepare_test(&mut scope.tx, key, kind, to, city).await
}

/// After a test send (made with no transaction open): meters it when it was sent and records
/// `notification_channel.test` with the masked recipient either way.
pub async fn record_test_send(
    scope: &mut Scope,
    kind: &str,
    message: &plugins::Message,
    result: Result<&plugins::DeliveryReceipt, &plugins::SendError>,
) -> Result<(), sqlx::Error> {
    if let Ok(receipt) = result {
        record_test(&mut scope.tx, kind, message, receipt).await?;
    }
    audit::record(
        scope,
        "notification_channel.test",
        &format!("notification_channel/{kind}"),
        json!({
            "to": crate::notifications::channels::mask(&message.to),
            "sent": result.is_ok(),
            "provider_message_id": result.ok().map(|r| r.provider_message_id.clone()),
        }),
    )
    .await
}

/// Records that `level` (80 or 100) of the budget was reached in `month`; `true` only the first
/// time in that month (the caller then e-mails the city admins, in the same transaction).
pub async fn record_budget_alert(
    tx: &mut TenantTx,
    month: chrono::NaiveDate,
    level: i32,
    used: i64,
    budget: i64,
    recipients: i32,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO sms_budget_alerts (tenant_id, month, level, used, budget, recipients) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, month, level) DO NOTHING",
    )
    .bind(tx.tenant_id().0)
    .bind(month)
    .bind(level)
    .bind(used)
    .bind(budget)
    .bind(recipients)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Alerts sent so far: (month, level, when, how many admins were e-mailed), newest first.
pub async fn budget_alerts(
    tx: &mut TenantTx,
) -> Result<Vec<(chrono::NaiveDate, i32, DateTime<Utc>, i32)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT month, level, at, recipients FROM sms_budget_alerts ORDER BY month DESC, level DESC LIMIT 24",
    )
    .fetch_all(&mut **tx)
    .await
}

/// A recipient as logs and admin pages may show it: 090****5678, t***@example.jp.
pub fn mask(recipient: &plugins::Recipient) -> String {
    match recipient {
        plugins::Recipient::Phone(p) => {
            let digits: Vec<char> = p.chars().filter(char::is_ascii_digit).collect();
            let n = digits.len();
            digits
                .iter()
                .enumerate()
                .map(|(i, c)| if i < 3 || i + 4 >= n { *c } else { '*' })
                .collect()
        }
        plugins::Recipient::Email(e) => match e.split_once('@') {
            Some((user, domain)) => {
                format!("{}***@{domain}", user.chars().next().unwrap_or('*'))
            }
            None => "***".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_round_trips_and_detects_tampering_and_wrong_keys() {
        let key = SealingKey::new([7; 32]);
        let sealed = key.seal(b"tok-secret").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"tok-secret"));
        assert_eq!(key.open(&sealed).unwrap(), b"tok-secret");
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(key.open(&tampered).is_err());
        assert!(SealingKey::new([8; 32]).open(&sealed).is_err());
        assert_eq!(format!("{key:?}"), "SealingKey([REDACTED])");
    }
}
