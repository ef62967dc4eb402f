//! The request's edge, as a plain tower layer (like the panic catcher: `axum::middleware::from_fn`
//! costs a boxed future and a clone of the inner service per request, which the rush measured —
//! docs/benchmarks.md runs 13–14 and 23–26): a path or query string that is not clean is answered
//! 400 before any handler sees it, and every other request gets the client address every front end
//! reads (`platform::ClientIp`, resolved once by [`Forwarding`]).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::Either;

use crate::forwarded::Forwarding;

#[derive(Clone)]
pub struct EdgeLayer {
    forwarding: Arc<Forwarding>,
}

impl EdgeLayer {
    pub fn new(forwarding: Forwarding) -> Self {
        Self {
            forwarding: Arc::new(forwarding),
        }
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Edge {
            inner,
            forwarding: self.forwarding.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    forwarding: Arc<Forwarding>,
}

type Refused<E> = std::future::Ready<Result<Response, E>>;

impl<S> tower::Service<Request<Body>> for Edge<S>
where
    S: tower::Service<Request<Body>, Response = Response>,
    S::Future: Future<Output = Result<Response, S::Error>>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Refused<S::Error>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        if !clean_address(req.uri()) {
            return Either::Left(std::future::ready(Ok(malformed())));
        }
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(peer) = peer {
            let ip = self.forwarding.client_ip(peer, req.headers());
            req.extensions_mut().insert(platform::ClientIp(ip));
        }
        Either::Right(self.inner.call(req))
    }
}

/// The 400 answer for a path or query string that is not clean.
fn malformed() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Bad request: the address contains a control character or is not valid UTF-8. \
         / アドレスに使用できない文字が含まれています。",
    )
        .into_response()
}

/// A path or query string whose percent-decoding is not UTF-8 or holds a control character (NUL,
/// CR, LF, …) is not clean: no page, slug or redirect target may contain one. Addresses without a
/// `%` (nearly all) are checked without decoding.
pub fn clean_address(uri: &axum::http::Uri) -> bool {
    let path_ok = clean(uri.path().as_bytes(), false);
    let query_ok = uri.query().is_none_or(|q| clean(q.as_bytes(), true));
    path_ok && query_ok
}

fn clean(raw: &[u8], plus: bool) -> bool {
    if !raw.contains(&b'%') {
        // `+` decodes to a space, which is clean; the URI parser already refused raw controls,
        // but check anyway (a byte under 0x20 or 0x7f)
        return std::str::from_utf8(raw).is_ok_and(|s| !s.chars().any(char::is_control));
    }
    String::from_utf8(percent_decode(raw, plus)).is_ok_and(|s| !s.chars().any(char::is_control))
}

/// Percent-decoding; `plus` also turns `+` into a space (query strings). A `%` not followed by two
/// hex digits stays as it is.
fn percent_decode(raw: &[u8], plus: bool) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let decoded = match raw[i] {
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(h), Some(l)) => Some(h * 16 + l),
                _ => None,
            },
            _ => None,
        };
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(if plus && raw[i] == b'+' { b' ' } else { raw[i] });
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_controls_or_bad_utf8_are_not_clean() {
        let ok = |s: &str| clean_address(&s.parse().expect("uri"));
        assert!(ok("/t/demo/venues?back=bookings&x=a+b"));
        assert!(ok("/t/%E6%9D%B1%E4%BA%AC/"));
        assert!(!ok("/t/%01/"));
        assert!(!ok("/t/demo/lang/ja?back=%0D%0Ahttp://evil"));
        assert!(!ok("/t/%FF/"));
    }
}
