//! Generic HTTPS webhook, for cities with their own gateway: the message as JSON, signed with
//! HMAC-SHA256 over `"{timestamp}.{body}"` in `X-Yoyaku-Signature: v1=<hex>`, with the timestamp in
//! `X-Yoyaku-Timestamp` (receivers reject old timestamps to stop replays) and the message's key in
//! `Idempotency-Key`.

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
