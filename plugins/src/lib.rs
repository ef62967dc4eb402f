//! Notification channels behind one trait. A channel takes a rendered [`Message`] and hands it to a
//! provider, answering with a [`DeliveryReceipt`] or a [`SendError`] that says whether retrying can
//! help. Knows nothing of vaccines, tenants or jobs: the caller (a job in `platform`) decides when to
//! retry, records delivery, and meters usage.
//!
//! Built-in plugins: [`SmtpChannel`] (e-mail), [`TwilioChannel`] (SMS over a Twilio-compatible API),
//! [`WebhookChannel`] (signed JSON to a city's own gateway) and the development [`LogChannel`].
//! [`build`] makes a channel from a plugin name and its JSON configuration; [`catalogue`] lists the
//! plugins with the fields their configuration forms need.

pub mod config;
mod log_channel;
mod segments;
pub mod smtp;
#[cfg(feature = "testing")]
pub mod testing;
pub mod twilio;
pub mod webhook;

use std::time::Duration;

pub use config::{ConfigError, FieldSpec, PluginInfo};
pub use log_channel::{LogChannel, RecordedMessage};
pub use segments::sms_segments;
pub use smtp::SmtpChannel;
pub use twilio::TwilioChannel;
pub use webhook::WebhookChannel;

/// The plugins a tenant can configure (the development log channel is not offered to tenants).
pub fn catalogue() -> Vec<PluginInfo> {
    vec![smtp::info(), twilio::info(), webhook::info()]
}

/// A channel from a plugin name and its configuration; the error names the field at fault.
pub fn build(
    name: &str,
    config: serde_json::Value,
) -> Result<std::sync::Arc<dyn Channel>, ConfigError> {
    Ok(match name {
        "smtp" => std::sync::Arc::new(SmtpChannel::from_json(config)?),
        "twilio" => std::sync::Arc::new(TwilioChannel::from_json(config)?),
        "webhook" => std::sync::Arc::new(WebhookChannel::from_json(config)?),
        other => {
            return Err(ConfigError::new(
                "plugin",
                format!("unknown plugin {other:?}; choose smtp, twilio or webhook"),
            ));
        }
    })
}

/// Where a message stands, as providers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Queued,
    Sent,
    Delivered,
    Failed,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "address", rename_all = "snake_case")]
pub enum Recipient {
    /// E.164 or domestic mobile number, e.g. 09012345678.
    Phone(String),
    Email(String),
}

/// A rendered message, ready for a provider.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub to: Recipient,
    /// E-mail subject; ignored by SMS.
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
    /// Stable per logical message: providers that support it deduplicate on it, and the caller
    /// never sends two messages with one key.
    pub idempotency_key: String,
}

/// What the provider said when it accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReceipt {
    pub provider_message_id: String,
    /// Billable units: SMS segments, 1 per e-mail.
    pub units: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later (timeouts, 5xx, 429); `retry_after` when the provider said how long.
    #[error("temporary failure: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (bad number, rejected credentials, refused content).
    #[error("permanent failure: {reason}")]
    Permanent { reason: String },
}

/// Which kind of recipient a channel serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Sms,
    Email,
    Webhook,
}

/// One way to reach residents. Implementations hold their own (validated) configuration.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// Stable identifier, e.g. `log`, `smtp`, `twilio`, `webhook`.
    fn name(&self) -> &'static str;
    fn kind(&self) -> ChannelKind;
    /// Whether the provider recognises a resend of the same message (same
    /// `Message::idempotency_key`) and delivers it once: then a send interrupted by a crash may be
    /// repeated safely. SMTP cannot; the Twilio-compatible gateway (`I-Twilio-Idempotency-Token`)
    /// and the webhook (`Idempotency-Key`) can.
    fn dedupes_resends(&self) -> bool {
        false
    }
    async fn send(&self, message: &Message) -> Result<DeliveryReceipt, SendError>;
}
