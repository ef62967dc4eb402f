//! What every admin handler is given and reads off the request: the shared state
//! ([`AdminState`]), the cookies (names, reading, setting) and the client's address.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, header, request::Parts},
};
use platform::staff::authz::Authz;
use platform::staff::identity::AuthPolicy;
use sqlx::PgPool;

/// What every admin handler needs.
#[derive(Clone)]
pub struct AdminState {
    pub pool: PgPool,
    pub authz: Authz,
    pub policy: Arc<AuthPolicy>,
    /// Base of links handed to people (invitations, password resets).
    pub public_url: String,
    /// Seals and opens the cities' notification channel credentials (notifications page).
    pub sealing_key: platform::notifications::channels::SealingKey,
    /// Which endpoints a city may subscribe to event webhooks (https; loopback http outside
    /// production).
    pub webhook_endpoints: platform::webhooks::EndpointPolicy,
    /// The request budget of an API key without its own (`auth.api_key_requests_per_minute`).
    pub api_key_default_rate: u32,
}

pub const SESSION_COOKIE: &str = "yoyaku_staff";
/// Double-submit CSRF cookie for the forms shown before login.
pub const CSRF_COOKIE: &str = "yoyaku_csrf";

/// The client's address as the server resolved it ([`platform::ClientIp`], set by `src/http.rs`:
/// the TCP peer, or the forwarded address when the peer is a configured trusted proxy); the bare
/// peer when the router runs without that layer. Forwarding headers are never read here.
pub fn client_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<platform::ClientIp>()
        .map(|c| c.0)
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
        .map(|ip| ip.to_string())
}

/// The client's address as an extractor (None when the server was not started with connect info).
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(parts)))
    }
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Path=/ so that `/graphql` (GraphiQL) sees the staff session too; SameSite=Lax keeps it off
/// cross-site posts. `Secure` is added by the server to every cookie when `http.public_url` is https
/// (`src/http.rs`, `Settings::secure_cookies`), to the staff cookies as to the resident ones.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64) -> String {
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}")
}
