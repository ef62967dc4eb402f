//! A city's webhook subscriptions (endpoint, events, signing secret, active flag) and their
//! delivery log, read and changed through the guard (`Object::Webhooks`: write to manage, read to
//! see) with an audit entry in the transaction of each change.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde_json::json;
use sqlx::Row;
use uuid::Uuid;

use super::EventType;
use crate::notifications::channels::SealingKey;
use crate::staff::audit;
use crate::staff::authz::{Act, Authz, Denied, Object, Scope};

/// Subscriptions a city may have at once.
pub const MAX_SUBSCRIPTIONS: i64 = 20;
/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Which endpoints may be subscribed: https only; plain http to this machine's loopback interface
/// only where `allow_loopback_http` (development and tests; never in production).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointPolicy {
    pub allow_loopback_http: bool,
}

/// What a city admin asks for.
#[derive(Debug, Clone, Default)]
pub struct NewSubscription {
    pub url: String,
    pub description: String,
    /// Wire names (`booking.created`, …).
    pub events: Vec<String>,
}

/// A subscription as the admin page shows it (the secret only by its last characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub secret_hint: String,
    pub active: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// One line of the delivery log.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryEntry {
    /// The attempt's id (with `at`, its place in the log: [`DeliveryPosition`]).
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub subscription_id: Uuid,
    pub url: String,
    pub event_id: Uuid,
    pub event_type: String,
    pub attempt: i64,
    /// delivered | failed (to be retried at `next_attempt_at`) | gave_up | skipped
    pub outcome: String,
    pub http_status: Option<i64>,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The input cannot be used; `field` names the form field.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(
        "stored webhook secrets could not be decrypted (was notifications.encryption_key changed?)"
    )]
    Sealing,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl WebhookError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

async fn allow(authz: &Authz, scope: &Scope, act: Act) -> Result<(), Denied> {
    authz
        .allow(&scope.actor, scope.tenant_id(), Object::Webhooks, act)
        .await
}

/// The URL as the audit log keeps it: without its query string or fragment (which may carry a
/// token of the receiver's).
fn audit_url(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().to_owned()
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn hint(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("••••{tail}")
}

/// Checks and normalises the input: the endpoint by [`plugins::webhook::check_event_url`], the
/// description (at most 200 characters), the event types (at least one, each known; duplicates
/// dropped, in [`EventType::ALL`] order).
pub fn validate(
    policy: EndpointPolicy,
    input: &NewSubscription,
) -> Result<(String, String, Vec<String>), WebhookError> {
    let url = plugins::webhook::check_event_url(&input.url, policy.allow_loopback_http)
        .map_err(|e| WebhookError::invalid("url", e.reason))?;
    let description = input.description.trim();
    if description.chars().count() > 200 {
        return Err(WebhookError::invalid(
            "description",
            "must be at most 200 characters",
        ));
    }
    let mut chosen = Vec::new();
    for raw in &input.events {
        let Some(t) = EventType::parse(raw.trim()) else {
            return Err(WebhookError::invalid(
                "events",
                format!("unknown event type {raw:?}"),
            ));
        };
        chosen.push(t);
    }
    if chosen.is_empty() {
        return Err(WebhookError::invalid("events", "choose at least one event"));
    }
    let events = EventType::ALL
        .into_iter()
        .filter(|t| chosen.contains(t))
        .map(|t| t.as_str().to_owned())
        .collect();
    Ok((url.to_string(), description.to_owned(), events))
}

/// Subscribes an endpoint; returns the subscription and its signing secret, which is shown only
/// now (stored sealed). Audited (`webhook.create`).
pub async fn create(
    authz: &Authz,
    scope: &mut Scope,
    key: &SealingKey,
    policy: EndpointPolicy,
    input: &NewSubscription,
) -> Result<(Subscription, String), WebhookError> {
    allow(authz, scope, Act::Write).await?;
    let (url, description, events) = validate(policy, input)?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_subscriptions")
        .fetch_one(&mut *scope.tx)
        .await?;
    if count >= MAX_SUBSCRIPTIONS {
        return Err(WebhookError::invalid(
            "url",
            format!("a city may have at most {MAX_SUBSCRIPTIONS} subscriptions"),
        ));
    }
    let secret = new_secret();
    let sealed = key
        .seal(secret.as_bytes())
        .map_err(|_| WebhookError::Sealing)?;
    let id = Uuid::now_v7();
    let row = sqlx::query(
        "INSERT INTO webhook_subscriptions (tenant_id, id, url, description, events, secret, secret_hint, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING created_at",
    )
    .bind(scope.tenant_id().0)
    .bind(id)
    .bind(&url)
    .bind(&description)
    .bind(&events)
    .bind(sealed)
    .bind(hint(&secret))
    .bind(&scope.actor.label)
    .fetch_one(&mut *scope.tx)
    .await?;
    audit::record(
        scope,
        "webhook.create",
        &format!("webhook/{id}"),
        json!({ "url": audit_url(&url), "events": events, "description": description }),
    )
    .await?;
    let subscription = Subscription {
        id,
        url,
        description,
        events,
        secret_hint: hint(&secret),
        active: true,
        created_by: scope.actor.label.clone(),
        created_at: row.try_get("created_at")?,
    };
    Ok((subscription, secret))
}

/// Pauses (`active = false`: no new events are queued for it, and queued ones are skipped) or
/// resumes a subscription. Audited (`webhook.pause` / `webhook.resume`).
pub async fn set_active(
    authz: &Authz,
    scope: &mut Scope,
    id: Uuid,
    active: bool,
) -> Result<(), WebhookError> {
    allow(authz, scope, Act::Write).await?;
    let url: Option<String> = sqlx::query_scalar(
        "UPDATE webhook_subscriptions SET active = $2, updated_at = now() WHERE id = $1 RETURNING url",
    )
    .bind(id)
    .bind(active)
    .fetch_optional(&mut *scope.tx)
    .await?;
    let url = url.ok_or(WebhookError::NotFound)?;
    let action = if active {
        "webhook.resume"
    } else {
        "webhook.pause"
    };
    audit::record(
        scope,
        action,
        &format!("webhook/{id}"),
        json!({ "url": audit_url(&url) }),
    )
    .await?;
    Ok(())
}

/// Gives a subscription a new signing secret, shown only now; the old one stops at once (a
/// delivery still being retried is signed with the new one). Audited (`webhook.rotate_secret`).
pub async fn rotate_secret(
    authz: &Authz,
    scope: &mut Scope,
    key: &SealingKey,
    id: Uuid,
) -> Result<String, WebhookError> {
    allow(authz, scope, Act::Write).await?;
    let secret = new_secret();
    let sealed = key
        .seal(secret.as_bytes())
        .map_err(|_| WebhookError::Sealing)?;
    let url: Option<String> = sqlx::query_scalar(
        "UPDATE webhook_subscriptions SET secret = $2, secret_hint = $3, updated_at = now() \
          WHERE id = $1 RETURNING url",
    )
    .bind(id)
    .bind(sealed)
    .bind(hint(&secret))
    .fetch_optional(&mut *scope.tx)
    .await?;
    let url = url.ok_or(WebhookError::NotFound)?;
    audit::record(
        scope,
        "webhook.rotate_secret",
        &format!("webhook/{id}"),
        json!({ "url": audit_url(&url) }),
    )
    .await?;
    Ok(secret)
}

/// Deletes a subscription and its delivery log; its queued deliveries are dropped when their turn
/// comes. Audited (`webhook.delete`).
pub async fn delete(authz: &Authz, scope: &mut Scope, id: Uuid) -> Result<(), WebhookError> {
    allow(authz, scope, Act::Write).await?;
    let gone: Option<(String, Vec<String>)> =
        sqlx::query_as("DELETE FROM webhook_subscriptions WHERE id = $1 RETURNING url, events")
            .bind(id)
            .fetch_optional(&mut *scope.tx)
            .await?;
    let (url, events) = gone.ok_or(WebhookError::NotFound)?;
    audit::record(
        scope,
        "webhook.delete",
        &format!("webhook/{id}"),
        json!({ "url": audit_url(&url), "events": events }),
    )
    .await?;
    Ok(())
}

/// The city's subscriptions, oldest first.
pub async fn list(authz: &Authz, scope: &mut Scope) -> Result<Vec<Subscription>, WebhookError> {
    allow(authz, scope, Act::Read).await?;
    let rows = sqlx::query(
        "SELECT id, url, description, events, secret_hint, active, created_by, created_at \
           FROM webhook_subscriptions ORDER BY created_at, id",
    )
    .fetch_all(&mut *scope.tx)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Subscription {
            id: r.try_get("id")?,
            url: r.try_get("url")?,
            description: r.try_get("description")?,
            events: r.try_get("events")?,
            secret_hint: r.try_get("secret_hint")?,
            active: r.try_get("active")?,
            created_by: r.try_get("created_by")?,
            created_at: r.try_get("created_at")?,
        });
    }
    Ok(out)
}

/// The newest `limit` (at most 200) delivery attempts, of one subscription or of all, newest
/// first.
pub async fn deliveries(
    authz: &Authz,
    scope: &mut Scope,
    subscription: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DeliveryEntry>, WebhookError> {
    Ok(deliveries_page(authz, scope, subscription, None, limit)
        .await?
        .entries)
}

/// A place in the delivery log, which is ordered newest first by (`at`, `id`): neither changes
/// once written, so a page that starts after a position never repeats or skips an attempt that
/// existed when paging began (newer ones come before the first page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPosition {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl DeliveryEntry {
    /// Where this attempt stands in the log (for the next page's `after`).
    pub fn position(&self) -> DeliveryPosition {
        DeliveryPosition {
            at: self.at,
            id: self.id,
        }
    }
}

/// A page of the delivery log and whether older attempts follow.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPage {
    pub entries: Vec<DeliveryEntry>,
    pub has_next: bool,
}

/// At most `limit` (1–200) delivery attempts older than `after` (the previous page's last; None:
/// from the newest), of one subscription or of all, newest first; guarded like [`deliveries`].
pub async fn deliveries_page(
    authz: &Authz,
    scope: &mut Scope,
    subscription: Option<Uuid>,
    after: Option<DeliveryPosition>,
    limit: i64,
) -> Result<DeliveryPage, WebhookError> {
    allow(authz, scope, Act::Read).await?;
    let limit = limit.clamp(1, 200);
    let rows = sqlx::query(
        "SELECT d.id, d.at, d.subscription_id, s.url, d.event_id, e.event_type, d.attempt, d.outcome, \
                d.http_status, d.latency_ms, d.error, d.next_attempt_at \
           FROM webhook_deliveries d \
           JOIN webhook_subscriptions s ON s.tenant_id = d.tenant_id AND s.id = d.subscription_id \
           JOIN webhook_events e ON e.tenant_id = d.tenant_id AND e.id = d.event_id \
          WHERE ($1::uuid IS NULL OR d.subscription_id = $1) \
            AND ($2::timestamptz IS NULL OR (d.at, d.id) < ($2, $3)) \
          ORDER BY d.at DESC, d.id DESC LIMIT $4",
    )
    .bind(subscription)
    .bind(after.map(|p| p.at))
    .bind(after.map(|p| p.id))
    .bind(limit + 1)
    .fetch_all(&mut *scope.tx)
    .await?;
    let has_next = rows.len() as i64 > limit;
    let mut entries = Vec::with_capacity(rows.len());
    for r in rows.iter().take(limit as usize) {
        entries.push(DeliveryEntry {
            id: r.try_get("id")?,
            at: r.try_get("at")?,
            subscription_id: r.try_get("subscription_id")?,
            url: r.try_get("url")?,
            event_id: r.try_get("event_id")?,
            event_type: r.try_get("event_type")?,
            attempt: r.try_get("attempt")?,
            outcome: r.try_get("outcome")?,
            http_status: r.try_get("http_status")?,
            latency_ms: r.try_get("latency_ms")?,
            error: r.try_get("error")?,
            next_attempt_at: r.try_get("next_attempt_at")?,
        });
    }
    Ok(DeliveryPage { entries, has_next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_checked_and_event_types_come_back_in_order_once() {
        let dev = EndpointPolicy {
            allow_loopback_http: true,
        };
        let ok = validate(
            dev,
            &NewSubscription {
                url: " http://127.0.0.1:9000/hook ".into(),
                description: "  基幹システム ".into(),
                events: vec![
                    "booking.cancelled".into(),
                    "booking.created".into(),
                    "booking.cancelled".into(),
                ],
            },
        )
        .expect("valid");
        assert_eq!(ok.0, "http://127.0.0.1:9000/hook");
        assert_eq!(ok.1, "基幹システム");
        assert_eq!(ok.2, vec!["booking.created", "booking.cancelled"]);

        let field = |input: NewSubscription, policy| match validate(policy, &input) {
            Err(WebhookError::Invalid { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let base = NewSubscription {
            url: "https://hooks.example.jp/y".into(),
            description: String::new(),
            events: vec!["booking.created".into()],
        };
        assert_eq!(
            field(
                NewSubscription {
                    url: "http://127.0.0.1:9000/hook".into(),
                    ..base.clone()
                },
                EndpointPolicy::default()
            ),
            "url"
        );
        assert_eq!(
            field(
                NewSubscription {
                    events: vec![],
                    ..base.clone()
                },
                dev
            ),
            "events"
        );
        assert_eq!(
            field(
                NewSubscription {
                    events: vec!["booking.deleted".into()],
                    ..base.clone()
                },
                dev
            ),
            "events"
        );
        assert_eq!(
            field(
                NewSubscription {
                    description: "x".repeat(201),
                    ..base
                },
                dev
            ),
            "description"
        );
    }

    #[test]
    fn secrets_are_long_random_and_hinted_by_their_end() {
        let a = new_secret();
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 43);
        assert_ne!(a, new_secret());
        assert_eq!(hint("whsec_abcdWXYZ"), "••••WXYZ");
        assert_eq!(
            audit_url("https://h.example/p?token=abc#x"),
            "https://h.example/p"
        );
    }
}
