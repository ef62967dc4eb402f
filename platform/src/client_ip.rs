//! The client's address, as the HTTP server resolved it once per request (`src/forwarded.rs` in the
//! binary: the TCP peer, or — only when the peer is a configured trusted proxy — the address the
//! proxy forwarded). The front ends read it from the request's extensions and never look at
//! `Forwarded` / `X-Forwarded-For` themselves; platform takes it as a plain value (throttling per
//! address, the audit log's "from where").

use std::net::IpAddr;

/// The resolved client address of one request (an axum request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
