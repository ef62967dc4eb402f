//! Logging (to stderr; stdout carries only the start-up banner): JSON lines in production and
//! human-readable lines elsewhere by default (`log.format = "auto"`; `"json"` or `"text"` to choose).
//! `RUST_LOG`, when set, overrides `log.level`. Each request's lines carry its span: `request_id`,
//! `method`, `path`, `tenant.id` and `user` (an id such as `staff:<uuid>`). Log once at the boundary
//! with structured fields; never tokens, codes, passwords or personal data.
//!
//! OpenTelemetry (OTLP) export is not built in: ship the JSON lines with the collector's file or
//! journald receiver (docs/operations.md, "Logs and traces").

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{Environment, LogFormat, LogSettings};

/// The format `log.format` means in `environment`.
pub fn format_for(log: &LogSettings, environment: Environment) -> LogFormat {
    match (log.format, environment) {
        (LogFormat::Auto, Environment::Production) => LogFormat::Json,
        (LogFormat::Auto, Environment::Development) => LogFormat::Text,
        (chosen, _) => chosen,
    }
}

pub fn init(log: &LogSettings, environment: Environment) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    // try_init: tests start several apps in one process; the first subscriber wins.
    let _ = match format_for(log, environment) {
        LogFormat::Text | LogFormat::Auto => registry
            .with(fmt::layer().with_target(false).with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}
