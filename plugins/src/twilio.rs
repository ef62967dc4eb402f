//! SMS over a Twilio-compatible HTTP API: `POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json`
//! as a form with basic auth. The base URL is configurable (other gateways speak the same API; tests
//! point it at a local fake). Status callbacks are verified by Twilio's signature scheme before they
//! are believed.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::{ConfigError, FieldSpec, PluginInfo, require_non_empty, require_url};
use crate::{
    Channel, ChannelKind, DeliveryReceipt, DeliveryState, Message, Recipient, SendError,
    sms_segments,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    #[serde(default = "default_base_url")]
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: SecretString,
    /// The sending number (E.164) or alphanumeric sender id.
    pub from: String,
    /// Where the gateway reports delivery; our `/callbacks/sms/{tenant}` URL.
    #[serde(default)]
    pub status_callback_url: Option<String>,
    /// Country calling code for numbers written domestically (090… → +8190…).
    #[serde(default = "default_country_code")]
    pub country_code: String,
}

fn default_base_url() -> String {
    "https://api.twilio.com".into()
}

fn default_country_code() -> String {
    "81".into()
}

pub fn info() -> PluginInfo {
    let f = |name, kind, required, secret, help| FieldSpec {
        name,
        kind,
        required,
        secret,
        help,
    };
    PluginInfo {
        name: "twilio",
        kind: "sms",
        fields: vec![
            f(
                "base_url",
                "url",
                false,
                false,
                "API address; default https://api.twilio.com",
            ),
            f("account_sid", "string", true, false, "account SID (AC…)"),
            f("auth_token", "string", true, true, "auth token"),
            f(
                "from",
                "string",
                true,
                false,
                "sending number in E.164, e.g. +815012345678",
            ),
            f(
                "status_callback_url",
                "url",
                false,
                false,
                "delivery reports are posted here",
            ),
            f(
                "country_code",
                "string",
                false,
                false,
                "for domestic numbers; default 81",
            ),
        ],
    }
}

pub struct TwilioChannel {
    client: reqwest::Client,
    endpoint: String,
    config: TwilioConfig,
}

impl TwilioChannel {
    pub fn new(config: TwilioConfig) -> Result<Self, ConfigError> {
        let base = require_url("base_url", &config.base_url)?;
        require_non_empty("account_sid", &config.account_sid)?;
        if !config
            .account_sid
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
        {
            return Err(ConfigError::new("account_sid", "letters and digits only"));
        }
        require_non_empty("auth_token", config.auth_token.expose_secret())?;
        require_non_empty("from", &config.from)?;
        if let Some(url) = &config.status_callback_url {
            require_url("status_callback_url", url)?;
        }
        if config.country_code.is_empty()
            || !config.country_code.chars().all(|c| c.is_ascii_digit())
        {
            return Err(ConfigError::new("country_code", "digits only, e.g. 81"));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| ConfigError::new("base_url", e.to_string()))?;
        let endpoint = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            base.as_str().trim_end_matches('/'),
            config.account_sid
        );
        Ok(Self {
            client,
            endpoint,
            config,
        })
    }

    pub fn from_json(value: serde_json::Value) -> Result<Self, ConfigError> {
        Self::new(crate::config::parse(value)?)
    }

    /// 090-1234-5678 → +819012345678; numbers already in E.164 pass unchanged.
    pub fn e164(&self, number: &str) -> Option<String> {
        let digits: String = number.chars().filter(|c| c.is_ascii_digit()).collect();
        if number.trim_start().starts_with('+') {
            return (digits.len() >= 8).then(|| format!("+{digits}"));
        }
        let national = digits.strip_prefix('0')?;
        (national.len() >= 9).then(|| format!("+{}{national}", self.config.country_code))
    }

    /// Checks `X-Twilio-Signature` of a status callback: base64(HMAC-SHA1(auth token, full URL +
    /// every POST parameter's name and value, sorted by name)).
    pub fn verify_callback(&self, url: &str, params: &[(String, String)], signature: &str) -> bool {
        verify_twilio_signature(
            self.config.auth_token.expose_secret(),
            url,
            params,
            signature,
        )
    }
}

/// HMAC-SHA1 over the URL followed by every parameter's name and value, sorted by name.
fn twilio_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<sha1::Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

/// The `X-Twilio-Signature` a gateway sends with a callback (for gateway fakes and tests).
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mac = twilio_mac(auth_token, url, params);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Constant-time check of `X-Twilio-Signature`.
pub fn verify_twilio_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    twilio_mac(auth_token, url, params)
        .verify_slice(&given)
        .is_ok()
}

/// Twilio's `MessageStatus` as our delivery state.
pub fn map_status(status: &str) -> Option<DeliveryState> {
    match status {
        "accepted" | "queued" | "scheduled" | "sending" => Some(DeliveryState::Queued),
        "sent" => Some(DeliveryState::Sent),
        "delivered" | "read" => Some(DeliveryState::Delivered),
        "undelivered" | "failed" | "canceled" => Some(DeliveryState::Failed),
        _ => None,
    }
}

#[derive(Deserialize)]
struct Created {
    sid: String,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

#[async_trait::async_trait]
impl Channel for TwilioChannel {
    /// Yes: the gateway dedupes by `I-Twilio-Idempotency-Token` (the message key).
    fn dedupes_resends(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "twilio"
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    async fn send(&self, message: &Message) -> Result<DeliveryReceipt, SendError> {
        let Recipient::Phone(number) = &message.to else {
            return Err(SendError::Permanent {
                reason: "the SMS channel needs a phone number".into(),
            });
        };
        let to = self.e164(number).ok_or_else(|| SendError::Permanent {
            reason: format!("{number:?} is not a phone number"),
        })?;
        let mut form = vec![
            ("To", to),
            ("From", self.config.from.clone()),
            ("Body", message.text.clone()),
        ];
        if let Some(cb) = &self.config.status_callback_url {
            form.push(("StatusCallback", cb.clone()));
        }
        let response = self
            .client
            .post(&self.endpoint)
            .basic_auth(
                &self.config.account_sid,
                Some(self.config.auth_token.expose_secret()),
            )
            .header("I-Twilio-Idempotency-Token", &message.idempotency_key)
            .form(&form)
            .send()
            .await
            .map_err(|e| SendError::Transient {
                reason: format!("SMS gateway unreachable: {}", e.without_url()),
                retry_after: None,
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if status.is_success() {
            let created: Created = response.json().await.map_err(|e| SendError::Transient {
                reason: format!("SMS gateway answered {status} with an unreadable body: {e}"),
                retry_after: None,
            })?;
            return Ok(DeliveryReceipt {
                provider_message_id: created.sid,
                units: sms_segments(&message.text),
            });
        }
        let detail = response
            .json::<ApiError>()
            .await
            .ok()
            .map(|e| {
                format!(
                    " (code {}: {})",
                    e.code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                    e.message.unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let reason = format!("SMS gateway answered {status}{detail}");
        if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
            Err(SendError::Transient {
                reason,
                retry_after,
            })
        } else {
            Err(SendError::Permanent { reason })
        }
    }
}
