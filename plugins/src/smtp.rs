//! E-mail over SMTP with lettre: one pooled transport per configuration (build the channel once per
//! tenant configuration and keep it), STARTTLS, implicit TLS or plain (local servers only),
//! optional authentication, multipart text + HTML, and RFC 2047-encoded Japanese headers.

use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::config::{ConfigError, FieldSpec, PluginInfo, require_non_empty};
use crate::{Channel, ChannelKind, DeliveryReceipt, Message, Recipient, SendError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// STARTTLS on the submission port (587).
    Starttls,
    /// TLS from the first byte (465).
    Tls,
    /// No encryption: only for a server on the same host or a test.
    Plain,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    /// Sender address, e.g. noreply@city.example.jp
    pub from_address: String,
    /// Sender display name, e.g. ○○市ワクチン接種予約
    #[serde(default)]
    pub from_name: Option<String>,
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
        name: "smtp",
        kind: "email",
        fields: vec![
            f("host", "string", true, false, "SMTP server host name"),
            f(
                "port",
                "integer",
                true,
                false,
                "587 for STARTTLS, 465 for TLS",
            ),
            f(
                "security",
                "enum:starttls|tls|plain",
                true,
                false,
                "plain only for local servers",
            ),
            f(
                "username",
                "string",
                false,
                false,
                "login, if the server requires one",
            ),
            f("password", "string", false, true, "password for the login"),
            f("from_address", "email", true, false, "sender address"),
            f("from_name", "string", false, false, "sender display name"),
        ],
    }
}

pub struct SmtpChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
}

impl SmtpChannel {
    pub fn new(config: SmtpConfig) -> Result<Self, ConfigError> {
        require_non_empty("host", &config.host)?;
        if config.port == 0 {
            return Err(ConfigError::new("port", "must be between 1 and 65535"));
        }
        let address: lettre::Address = config
            .from_address
            .parse()
            .map_err(|_| ConfigError::new("from_address", "is not an e-mail address"))?;
        let domain = address.domain().to_owned();
        let from = Mailbox::new(config.from_name.clone(), address);
        let builder = match config.security {
            Security::Plain => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
            Security::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                    .map_err(|e| ConfigError::new("host", e.to_string()))?
            }
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| ConfigError::new("host", e.to_string()))?,
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(Duration::from_secs(20)));
        match (&config.username, &config.password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(
                    user.clone(),
                    password.expose_secret().to_owned(),
                ));
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(ConfigError::new("password", "is required with a username"));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new("username", "is required with a password"));
            }
        }
        Ok(Self {
            transport: builder.build(),
            from,
            domain,
        })
    }

    pub fn from_json(value: serde_json::Value) -> Result<Self, ConfigError> {
        Self::new(crate::config::parse(value)?)
    }

    fn build(&self, message: &Message) -> Result<lettre::Message, SendError> {
        let permanent = |reason: String| SendError::Permanent { reason };
        let Recipient::Email(to) = &message.to else {
            return Err(permanent(
                "the e-mail channel needs an e-mail recipient".into(),
            ));
        };
        let to: Mailbox = to
            .parse()
            .map_err(|_| permanent(format!("{to:?} is not an e-mail address")))?;
        // Base64 bodies survive every relay whatever the line lengths of Japanese text.
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .header(ContentTransferEncoding::Base64)
            .body(message.text.clone());
        let body = match &message.html {
            Some(html) => MultiPart::alternative().singlepart(text).singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .header(ContentTransferEncoding::Base64)
                    .body(html.clone()),
            ),
            None => MultiPart::mixed().singlepart(text),
        };
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone().unwrap_or_default())
            .message_id(Some(self.message_id(message)))
            .multipart(body)
            .map_err(|e| permanent(format!("could not build the e-mail: {e}")))
    }

    /// Derived from the idempotency key, so a resend of the same message carries the same id.
    fn message_id(&self, message: &Message) -> String {
        let safe: String = message
            .idempotency_key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!("<{safe}@{}>", self.domain)
    }
}

#[async_trait::async_trait]
impl Channel for SmtpChannel {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    async fn send(&self, message: &Message) -> Result<DeliveryReceipt, SendError> {
        let email = self.build(message)?;
        match self.transport.send(email).await {
            Ok(_) => Ok(DeliveryReceipt {
                provider_message_id: self.message_id(message),
                units: 1,
            }),
            Err(e) if e.is_permanent() => Err(SendError::Permanent {
                reason: format!("the mail server refused the message: {e}"),
            }),
            Err(e) => Err(SendError::Transient {
                reason: format!("the mail server could not take the message now: {e}"),
                retry_after: None,
            }),
        }
    }
}
