//! Webhooks, both kinds, signed the same way (HMAC-SHA256 over `"{timestamp}.{body}"`):
//!
//! * [`WebhookChannel`], the notification channel for cities with their own gateway: the message as
//!   JSON, the signature in `X-Yoyaku-Signature: v1=<hex>`, the timestamp in `X-Yoyaku-Timestamp`
//!   (receivers reject old timestamps to stop replays) and the message's key in `Idempotency-Key`.
//! * [`EventSender`], event webhooks (docs/webhooks.md): an event's JSON to a city's subscribed
//!   endpoint, signed in one header, `Yoyaku-Signature: t=<unix seconds>,v1=<hex>`, with the event
//!   id in `Yoyaku-Event-Id` and `Idempotency-Key`. [`verify`] is the reference check for
//!   receivers: signature (constant time) and a replay window around the timestamp.
//!   [`check_event_url`] says which endpoints may be subscribed (https; plain http to the loopback
//!   interface only where the caller allows it, i.e. development and tests).

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::{ConfigError, FieldSpec, PluginInfo, require_non_empty, require_url};
use crate::{Channel, ChannelKind, DeliveryReceipt, Message, Recipient, SendError, sms_segments};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Shared secret for the signature; at least 16 characters.
    pub secret: SecretString,
}

pub fn info() -> PluginInfo {
    PluginInfo {
        name: "webhook",
        kind: "webhook",
        fields: vec![
            FieldSpec {
                name: "url",
                kind: "url",
                required: true,
                secret: false,
                help: "HTTPS endpoint that receives each message as JSON",
            },
            FieldSpec {
                name: "secret",
                kind: "string",
                required: true,
                secret: true,
                help: "shared secret for X-Yoyaku-Signature (16+ characters)",
            },
        ],
    }
}

pub struct WebhookChannel {
    client: reqwest::Client,
    config: WebhookConfig,
}

fn webhook_mac(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<sha2::Sha256> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

pub fn webhook_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = webhook_mac(secret, timestamp, body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// For receivers (and tests): constant-time check of a signature header.
pub fn verify_webhook_signature(secret: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(given) = header.strip_prefix("v1=").and_then(|h| hex::decode(h).ok()) else {
        return false;
    };
    webhook_mac(secret, timestamp, body)
        .verify_slice(&given)
        .is_ok()
}

/// The header of an event webhook's signature.
pub const SIGNATURE_HEADER: &str = "Yoyaku-Signature";
/// The header with the event's id (also sent as `Idempotency-Key`): receivers de-duplicate by it.
pub const EVENT_ID_HEADER: &str = "Yoyaku-Event-Id";
/// The header with the event's type (`booking.created`, …).
pub const EVENT_TYPE_HEADER: &str = "Yoyaku-Event-Type";
/// The header with the delivery attempt (1 for the first try).
pub const ATTEMPT_HEADER: &str = "Yoyaku-Delivery-Attempt";
/// The replay window [`verify`] is documented with: a signature older (or newer) than this is
/// refused.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The value of [`SIGNATURE_HEADER`] for `body` sent at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn event_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mac = webhook_mac(secret, &t, body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why [`verify`] refused a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No `t=` with a whole number, or no `v1=` signature.
    #[error("the signature header is malformed")]
    Malformed,
    /// No `v1=` value is the HMAC of this body at this timestamp with this secret.
    #[error("the signature does not match")]
    Mismatch,
    /// Signed properly, but outside the replay window (a replayed or badly delayed delivery).
    #[error("the signature is {age_secs} s away from now, outside the {window_secs} s window")]
    OutsideWindow { age_secs: i64, window_secs: u64 },
}

/// The reference check of an event webhook, for receivers (docs/webhooks.md): `header` is the
/// value of `Yoyaku-Signature`, `body` the raw request body (before any JSON parsing), `now` the
/// receiver's clock in unix seconds. Accepted when one `v1=` value is the HMAC-SHA256 of
/// `"<t>.<body>"` under `secret` (compared in constant time) and `t` is within `window` of `now`
/// (either side). Several `v1=` values may be present; any one matching is enough.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    window: Duration,
) -> Result<(), VerifyError> {
    let mut timestamp: Option<&str> = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = Some(v),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let t = timestamp.ok_or(VerifyError::Malformed)?;
    let at: i64 = t.parse().map_err(|_| VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    let mac = webhook_mac(secret, t, body);
    let matched = signatures.iter().any(|s| {
        hex::decode(s)
            .ok()
            .is_some_and(|given| mac.clone().verify_slice(&given).is_ok())
    });
    if !matched {
        return Err(VerifyError::Mismatch);
    }
    let age = now.saturating_sub(at);
    if age.unsigned_abs() > window.as_secs() {
        return Err(VerifyError::OutsideWindow {
            age_secs: age,
            window_secs: window.as_secs(),
        });
    }
    Ok(())
}

/// Checks an event endpoint: an absolute `https://` URL without credentials, at most 2,000
/// characters. `allow_loopback_http`: plain `http://` is accepted when the host is the loopback
/// interface (`localhost`, `127.0.0.0/8`, `[::1]`) — development and tests only; production never
/// allows it, and there an IP-literal host must not be a loopback, private, link-local or
/// unspecified address either (a city admin cannot aim deliveries at the servers' own network by
/// address).
pub fn check_event_url(value: &str, allow_loopback_http: bool) -> Result<url::Url, ConfigError> {
    let value = value.trim();
    if value.chars().count() > 2000 {
        return Err(ConfigError::new("url", "must be at most 2,000 characters"));
    }
    let parsed =
        url::Url::parse(value).map_err(|e| ConfigError::new("url", format!("not a URL ({e})")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ConfigError::new(
            "url",
            "must not carry a user name or password",
        ));
    }
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(ConfigError::new("url", "must name a host")),
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback && allow_loopback_http => {}
        _ if allow_loopback_http => {
            return Err(ConfigError::new(
                "url",
                "must start with https:// (http:// only to this machine, for testing)",
            ));
        }
        _ => return Err(ConfigError::new("url", "must start with https://")),
    }
    if !allow_loopback_http {
        let internal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => {
                ip.is_loopback()
                    || ip.is_private()
                    || ip.is_link_local()
                    || ip.is_unspecified()
                    || ip.is_broadcast()
            }
            Some(url::Host::Ipv6(ip)) => {
                ip.is_loopback()
                    || ip.is_unspecified()
                    || ip.is_unique_local()
                    || ip.is_unicast_link_local()
                    || ip.to_ipv4_mapped().is_some()
            }
            Some(url::Host::Domain(_)) => loopback,
            None => true,
        };
        if internal {
            return Err(ConfigError::new(
                "url",
                "must be an address on the internet, not a local or private one",
            ));
        }
    }
    Ok(parsed)
}

/// What an endpoint answered to an event delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventResponse {
    /// The HTTP status, when an answer came at all.
    pub status: Option<u16>,
    /// How long the request took.
    pub latency: Duration,
    /// `None` when accepted (2xx); otherwise why not, for the delivery log.
    pub error: Option<String>,
    /// The endpoint's `Retry-After` (seconds), if it sent one with a refusal.
    pub retry_after: Option<Duration>,
}

impl EventResponse {
    pub fn accepted(&self) -> bool {
        self.error.is_none()
    }
}

/// One event delivery: where to, signed with what, and the exact body.
#[derive(Debug, Clone)]
pub struct EventDelivery<'a> {
    pub url: &'a str,
    pub secret: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub attempt: u32,
    pub body: &'a [u8],
}

/// Sends event webhooks (one per process: it pools connections). Redirects are not followed (a 3xx
/// is a failed delivery), each request may take 10 s, and the endpoint's answer body is not read
/// beyond its status.
#[derive(Clone, Debug)]
pub struct EventSender {
    client: reqwest::Client,
}

impl EventSender {
    pub fn new() -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Yoyaku-Webhooks/1")
            .build()
            .map_err(|e| ConfigError::new("client", e.to_string()))?;
        Ok(Self { client })
    }

    /// Posts the event, signed now. Never an error: whatever happened is in the answer.
    pub async fn send(&self, d: &EventDelivery<'_>) -> EventResponse {
        let now = chrono::Utc::now().timestamp();
        let signature = event_signature(d.secret, now, d.body);
        let started = std::time::Instant::now();
        let sent = self
            .client
            .post(d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_ID_HEADER, d.event_id)
            .header(EVENT_TYPE_HEADER, d.event_type)
            .header(ATTEMPT_HEADER, d.attempt.to_string())
            .header("Idempotency-Key", d.event_id)
            .body(d.body.to_vec())
            .send()
            .await;
        let latency = started.elapsed();
        match sent {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                EventResponse {
                    status: Some(status.as_u16()),
                    latency,
                    error: (!status.is_success())
                        .then(|| format!("the endpoint answered {status}")),
                    retry_after: (!status.is_success()).then_some(retry_after).flatten(),
                }
            }
            Err(e) => EventResponse {
                status: None,
                latency,
                error: Some(if e.is_timeout() {
                    "the endpoint did not answer within 10 s".to_owned()
                } else {
                    format!("the endpoint could not be reached: {}", e.without_url())
                }),
                retry_after: None,
            },
        }
    }
}

impl WebhookChannel {
    pub fn new(config: WebhookConfig) -> Result<Self, ConfigError> {
        require_url("url", &config.url)?;
        require_non_empty("secret", config.secret.expose_secret())?;
        if config.secret.expose_secret().chars().count() < 16 {
            return Err(ConfigError::new("secret", "must be at least 16 characters"));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| ConfigError::new("url", e.to_string()))?;
        Ok(Self { client, config })
    }

    pub fn from_json(value: serde_json::Value) -> Result<Self, ConfigError> {
        Self::new(crate::config::parse(value)?)
    }
}

#[derive(Deserialize)]
struct Accepted {
    #[serde(default)]
    id: Option<String>,
}

#[async_trait::async_trait]
impl Channel for WebhookChannel {
    /// Yes: the receiver is handed the message key as `Idempotency-Key`.
    fn dedupes_resends(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "webhook"
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    async fn send(&self, message: &Message) -> Result<DeliveryReceipt, SendError> {
        let body = serde_json::to_vec(message).map_err(|e| SendError::Permanent {
            reason: format!("could not encode the message: {e}"),
        })?;
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = webhook_signature(self.config.secret.expose_secret(), &timestamp, &body);
        let response = self
            .client
            .post(&self.config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Yoyaku-Timestamp", &timestamp)
            .header("X-Yoyaku-Signature", signature)
            .header("Idempotency-Key", &message.idempotency_key)
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Transient {
                reason: format!("webhook unreachable: {}", e.without_url()),
                retry_after: None,
            })?;
        let status = response.status();
        if status.is_success() {
            let id = response
                .json::<Accepted>()
                .await
                .ok()
                .and_then(|a| a.id)
                .unwrap_or_else(|| message.idempotency_key.clone());
            let units = match message.to {
                Recipient::Phone(_) => sms_segments(&message.text),
                Recipient::Email(_) => 1,
            };
            return Ok(DeliveryReceipt {
                provider_message_id: id,
                units,
            });
        }
        let reason = format!("webhook answered {status}");
        if status.as_u16() == 429 || status.is_server_error() {
            Err(SendError::Transient {
                reason,
                retry_after: None,
            })
        } else {
            Err(SendError::Permanent { reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_event_verifies_and_a_changed_one_does_not() {
        let body = br#"{"id":"e1","type":"booking.created"}"#;
        let header = event_signature(SECRET, 1_800_000_000, body);
        assert!(header.starts_with("t=1800000000,v1="));
        assert_eq!(
            verify(SECRET, &header, body, 1_800_000_010, DEFAULT_TOLERANCE),
            Ok(())
        );
        // the same signature over another body, or with another secret
        assert_eq!(
            verify(SECRET, &header, b"{}", 1_800_000_010, DEFAULT_TOLERANCE),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                "whsec_other",
                &header,
                body,
                1_800_000_010,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::Mismatch)
        );
        // the timestamp is signed: moving it breaks the signature
        let moved = header.replace("t=1800000000", "t=1800000005");
        assert_eq!(
            verify(SECRET, &moved, body, 1_800_000_010, DEFAULT_TOLERANCE),
            Err(VerifyError::Mismatch)
        );
        // one of several v1 values is enough (a receiver may be sent more during a rotation)
        let v1 = header
            .split_once(",v1=")
            .map(|(_, v)| v)
            .unwrap_or_default();
        let several = format!("t=1800000000,v1={},v1={v1}", "00".repeat(32));
        assert_eq!(
            verify(SECRET, &several, body, 1_800_000_000, DEFAULT_TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn a_replay_outside_the_window_is_refused_either_side() {
        let body = b"{}";
        let header = event_signature(SECRET, 1_800_000_000, body);
        assert_eq!(
            verify(SECRET, &header, body, 1_800_000_300, DEFAULT_TOLERANCE),
            Ok(()),
            "exactly five minutes later is still inside"
        );
        assert_eq!(
            verify(SECRET, &header, body, 1_800_000_301, DEFAULT_TOLERANCE),
            Err(VerifyError::OutsideWindow {
                age_secs: 301,
                window_secs: 300
            })
        );
        assert!(matches!(
            verify(SECRET, &header, body, 1_799_999_000, DEFAULT_TOLERANCE),
            Err(VerifyError::OutsideWindow {
                age_secs: -1000,
                ..
            })
        ));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in [
            "",
            "v1=00",
            "t=abc,v1=00",
            "t=1800000000",
            "t=1800000000,v0=00",
        ] {
            assert_eq!(
                verify(SECRET, header, b"{}", 1_800_000_000, DEFAULT_TOLERANCE),
                Err(VerifyError::Malformed),
                "{header:?}"
            );
        }
        assert_eq!(
            verify(
                SECRET,
                "t=1800000000,v1=zz",
                b"{}",
                1_800_000_000,
                DEFAULT_TOLERANCE
            ),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn event_endpoints_are_https_with_loopback_http_only_where_allowed() {
        assert!(check_event_url("https://hooks.city.example.jp/yoyaku", false).is_ok());
        assert!(check_event_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_event_url("http://localhost:9000/hook", true).is_ok());
        assert!(check_event_url("http://[::1]:9000/hook", true).is_ok());
        // plain http elsewhere, or at all in production
        assert!(check_event_url("http://hooks.city.example.jp/", true).is_err());
        assert!(check_event_url("http://127.0.0.1:9000/hook", false).is_err());
        // production: no loopback, private or link-local addresses, even over https
        for internal in [
            "https://127.0.0.1/",
            "https://localhost/",
            "https://10.1.2.3/",
            "https://192.168.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:10.0.0.1]/",
        ] {
            assert!(check_event_url(internal, false).is_err(), "{internal}");
        }
        for bad in [
            "ftp://hooks.example/",
            "hooks.example/path",
            "https://user:pw@hooks.example/",
        ] {
            assert_eq!(
                check_event_url(bad, true).map_err(|e| e.field),
                Err("url".to_owned()),
                "{bad}"
            );
        }
    }
}
