//! Notification channels behind one trait. A channel takes a rendered [`Message`] and hands it to a
//! provider, answering with a [`DeliveryReceipt`] or a [`SendError`] that says whether retrying can
//! help. Knows nothing of vaccines, tenants or jobs: the caller (a job in `platform`) decides when to
//! retry, records delivery, and meters usage.
//!
//! Built today: the trait, SMS segment counting, and the development [`LogChannel`]. SMTP e-mail,
//! Twilio-compatible SMS and the webhook channel arrive with the notifications issue.

mod log_channel;
mod segments;

use std::time::Duration;

pub use log_channel::{LogChannel, RecordedMessage};
pub use segments::sms_segments;

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
    async fn send(&self, message: &Message) -> Result<DeliveryReceipt, SendError>;
}
