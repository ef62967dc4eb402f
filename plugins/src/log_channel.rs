//! The development channel: instead of sending, it keeps the last messages in memory where a
//! developer can read them (the server shows them at `/dev/messages` outside production), so the demo's
//! SMS login code is visible without a gateway. It never writes message bodies to the log: codes are
//! secrets even in development. Refused in production configuration by the caller.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::{Channel, ChannelKind, DeliveryReceipt, Message, SendError, sms_segments};

const KEEP: usize = 500;

#[derive(Debug, Clone)]
pub struct RecordedMessage {
    pub at: DateTime<Utc>,
    pub id: String,
    pub message: Message,
}

/// Cheap to clone; clones share the same record.
#[derive(Debug, Clone, Default)]
pub struct LogChannel {
    records: Arc<Mutex<VecDeque<RecordedMessage>>>,
}

impl LogChannel {
    pub fn new() -> Self {
        Self::default()
    }

    /// The recorded messages, newest first.
    pub fn recent(&self) -> Vec<RecordedMessage> {
        self.records
            .lock()
            .map(|r| r.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Channel for LogChannel {
    /// Yes: records are keyed by the message key.
    fn dedupes_resends(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "log"
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    async fn send(&self, message: &Message) -> Result<DeliveryReceipt, SendError> {
        let id = format!("log-{}", message.idempotency_key);
        let mut records = self.records.lock().map_err(|_| SendError::Transient {
            reason: "log channel lock poisoned".into(),
            retry_after: None,
        })?;
        // Same key, same message: providers deduplicate, so does this one.
        if !records.iter().any(|r| r.id == id) {
            if records.len() == KEEP {
                records.pop_front();
            }
            records.push_back(RecordedMessage {
                at: Utc::now(),
                id: id.clone(),
                message: message.clone(),
            });
        }
        tracing::info!(channel = "log", message_id = %id, "message recorded for developers");
        let units = match message.to {
            crate::Recipient::Phone(_) => sms_segments(&message.text),
            crate::Recipient::Email(_) => 1,
        };
        Ok(DeliveryReceipt {
            provider_message_id: id,
            units,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Recipient;

    #[tokio::test]
    async fn records_each_key_once_newest_first() {
        let ch = LogChannel::new();
        let msg = |key: &str| Message {
            to: Recipient::Phone("09012345678".into()),
            subject: None,
            text: format!("認証コード {key}"),
            html: None,
            idempotency_key: key.into(),
        };
        ch.send(&msg("a")).await.unwrap();
        ch.send(&msg("b")).await.unwrap();
        let again = ch.send(&msg("a")).await.unwrap();
        assert_eq!(again.provider_message_id, "log-a");
        let recent = ch.recent();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].message.idempotency_key, "b");
    }
}
