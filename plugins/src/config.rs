//! Each plugin's configuration: a typed struct (unknown keys refused), a validation that names the
//! field at fault, and a schema the admin UI renders as a form. Secret fields are `SecretString`, are
//! marked `secret` in the schema, and are never shown again once saved.

use serde::Serialize;

/// One field of a plugin's configuration form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldSpec {
    pub name: &'static str,
    /// `string`, `integer`, `url`, `email`, `enum:a|b|c`
    pub kind: &'static str,
    pub required: bool,
    pub secret: bool,
    pub help: &'static str,
}

/// What the admin UI needs to offer a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    pub name: &'static str,
    pub kind: &'static str,
    pub fields: Vec<FieldSpec>,
}

/// A configuration that cannot be used, worded for the city admin who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Reads a plugin's configuration; a wrong, missing or unknown key becomes an error naming it.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let reason = e.inner().to_string();
        // unknown and missing keys are reported on the parent; the key is in the message
        let field = if path.is_empty() || path == "." {
            reason.split('`').nth(1).unwrap_or("config").to_owned()
        } else {
            path
        };
        ConfigError { field, reason }
    })
}

pub(crate) fn require_url(field: &str, value: &str) -> Result<url::Url, ConfigError> {
    let parsed =
        url::Url::parse(value).map_err(|e| ConfigError::new(field, format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::new(
            field,
            "must start with https:// (or http:// for a local test server)",
        ));
    }
    Ok(parsed)
}

pub(crate) fn require_non_empty(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        Err(ConfigError::new(field, "must not be empty"))
    } else {
        Ok(())
    }
}
