//! The request's edge, as a plain tower layer (like the panic catcher: `axum::middleware::from_fn`
//! costs a boxed future and a clone of the inner service per request, which the rush measured —
//! docs/benchmarks.md runs 13–14 and 23–26): a path or query string that is not clean is answered
//! 400 before any handler sees it, and every other request gets the client address every front end
//! reads (`platform::ClientIp`, resolved once by [`Forwarding`]).
//!
//! Requests with a large body (over [`LARGE_BODY`] bytes, or of unknown length) go through a lane
//! of [`LARGE_BODIES_AT_ONCE`]: reading, parsing and refusing megabytes is real work, and a flood of
//! padded requests must not take both cores from everything else (`/healthz`, the residents' small
//! requests). The ones waiting for the lane are not read at all, so TCP slows their senders down
//! (docs/benchmarks.md, "Attack"). Small requests never wait for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::Either;

use crate::forwarded::Forwarding;

/// A body over this many bytes (or of unknown length) is a large one.
pub const LARGE_BODY: u64 = 64 * 1024;
/// Large bodies handled at the same time; the others wait, unread.
pub const LARGE_BODIES_AT_ONCE: usize = 2;

#[derive(Clone)]
pub struct EdgeLayer {
    forwarding: Arc<Forwarding>,
    large: Arc<tokio::sync::Semaphore>,
}

impl EdgeLayer {
    pub fn new(forwarding: Forwarding) -> Self {
        Self {
            forwarding: Arc::new(forwarding),
            large: Arc::new(tokio::sync::Semaphore::new(LARGE_BODIES_AT_ONCE)),
        }
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Edge {
            inner,
            forwarding: self.forwarding.clone(),
            large: self.large.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    forwarding: Arc<Forwarding>,
    large: Arc<tokio::sync::Semaphore>,
}

type Refused<E> = std::future::Ready<Result<Response, E>>;
type Queued<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

/// Whether the request's body is large or of unknown length.
fn large_body(req: &Request<Body>) -> bool {
    let headers = req.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > LARGE_BODY)
}

impl<S> tower::Service<Request<Body>> for Edge<S>
where
    S: tower::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Future<Output = Result<Response, S::Error>> + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Refused<S::Error>, Either<S::Future, Queued<S::Error>>>;

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
        if large_body(&req) {
            // the service made ready is taken along; a fresh clone stays for the next request
            let ready = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, ready);
            let lane = self.large.clone();
            return Either::Right(Either::Right(Box::pin(async move {
                let _turn = lane.acquire_owned().await;
                inner.call(req).await
            })));
        }
        Either::Right(Either::Left(self.inner.call(req)))
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
/// `%` (nearly all) are checked without decoding. The one exception is the query string of
/// `/graphql`: a GraphQL document sent with GET (`?query=…`) is text whose lines are separated by
/// line breaks and indented with tabs, so tab, LF and CR are clean there (no header or redirect is
/// made from it); every other control character is still refused.
pub fn clean_address(uri: &axum::http::Uri) -> bool {
    let path_ok = clean(uri.path().as_bytes(), false, false);
    let lines = uri.path() == "/graphql";
    let query_ok = uri.query().is_none_or(|q| clean(q.as_bytes(), true, lines));
    path_ok && query_ok
}

fn clean(raw: &[u8], plus: bool, lines: bool) -> bool {
    let refused = |c: char| c.is_control() && !(lines && matches!(c, '\t' | '\n' | '\r'));
    if !raw.contains(&b'%') {
        // `+` decodes to a space, which is clean; the URI parser already refused raw controls,
        // but check anyway (a byte under 0x20 or 0x7f)
        return std::str::from_utf8(raw).is_ok_and(|s| !s.chars().any(refused));
    }
    String::from_utf8(percent_decode(raw, plus)).is_ok_and(|s| !s.chars().any(refused))
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{Layer, Service, ServiceExt};

    #[tokio::test]
    async fn large_bodies_take_turns_and_small_requests_never_wait_for_them() {
        let inside = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let (i, g) = (inside.clone(), gate.clone());
        let inner = tower::service_fn(move |req: Request<Body>| {
            let (i, g) = (i.clone(), g.clone());
            async move {
                if req.uri().path() == "/upload" {
                    i.fetch_add(1, Ordering::SeqCst);
                    g.notified().await;
                }
                Ok::<_, std::convert::Infallible>(StatusCode::OK.into_response())
            }
        });
        let svc = EdgeLayer::new(Forwarding::none()).layer(inner);
        let upload = || {
            Request::post("/upload")
                .header(header::CONTENT_LENGTH, (LARGE_BODY + 1).to_string())
                .body(Body::empty())
                .expect("request")
        };
        let mut waiting = Vec::new();
        for _ in 0..LARGE_BODIES_AT_ONCE + 2 {
            let svc = svc.clone();
            waiting.push(tokio::spawn(svc.oneshot(upload())));
        }
        // the lane lets exactly LARGE_BODIES_AT_ONCE in
        for _ in 0..100 {
            if inside.load(Ordering::SeqCst) == LARGE_BODIES_AT_ONCE {
                break;
            }
            tokio::task::yield_now().await;
        }
        tokio::task::yield_now().await;
        assert_eq!(inside.load(Ordering::SeqCst), LARGE_BODIES_AT_ONCE);
        // a small request goes straight through meanwhile
        let mut small = svc.clone();
        let res = small
            .ready()
            .await
            .expect("ready")
            .call(
                Request::get("/healthz")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("answer");
        assert_eq!(res.status(), StatusCode::OK);
        // and the waiting uploads get their turn as the lane frees
        let mut done = 0;
        while done < waiting.len() {
            gate.notify_waiters();
            tokio::task::yield_now().await;
            done = waiting.iter().filter(|w| w.is_finished()).count();
        }
        assert_eq!(inside.load(Ordering::SeqCst), LARGE_BODIES_AT_ONCE + 2);
    }

    #[test]
    fn addresses_with_controls_or_bad_utf8_are_not_clean() {
        let ok = |s: &str| clean_address(&s.parse().expect("uri"));
        assert!(ok("/t/demo/venues?back=bookings&x=a+b"));
        assert!(ok("/t/%E6%9D%B1%E4%BA%AC/"));
        assert!(!ok("/t/%01/"));
        assert!(!ok("/t/demo/lang/ja?back=%0D%0Ahttp://evil"));
        assert!(!ok("/t/%FF/"));
        // a GraphQL document over GET may have line breaks and tabs, nothing else
        assert!(ok("/graphql?query=%7B%0A%09__typename%0D%0A%7D"));
        assert!(!ok("/graphql?query=%7B__typename%7D%00"));
        assert!(!ok("/graphql%0A?query=%7B%7D"));
        assert!(!ok("/t/demo/login?query=%0A"));
    }
}
