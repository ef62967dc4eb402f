//! The HTTP server: every router merged in one place, wrapped in the layers every request passes
//! (security headers → request id → in-flight count → metrics → trace span → timeout → body limit →
//! compression → Secure cookies → panic catcher → malformed address check → client address).

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderName, HeaderValue, Request, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use sqlx::PgPool;
use tower_http::{
    compression::CompressionLayer,
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use tracing::{Span, field::Empty};

use crate::config::Settings;
use crate::forwarded::Forwarding;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
struct Health {
    pool: PgPool,
}

/// What the router shares with the rest of the process: the in-flight request count (pacing) and the
/// per-key request budgets of `/graphql`.
pub struct Shared {
    pub in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub key_limits: platform::staff::api_keys::KeyLimits,
}

/// The whole application as one router, ready for `axum::serve`.
pub fn router(
    settings: &Settings,
    pool: PgPool,
    authz: platform::staff::authz::Authz,
    residents: platform::ResidentDesk,
    messages: plugins::LogChannel,
    sealing_key: platform::notifications::channels::SealingKey,
    shared: Shared,
) -> Router {
    let Shared {
        in_flight,
        key_limits,
    } = shared;
    let policy = std::sync::Arc::new(settings.auth.policy());
    // plain http to this machine for a test receiver, never in production
    let webhook_endpoints = platform::webhooks::EndpointPolicy {
        allow_loopback_http: settings.environment != crate::config::Environment::Production,
    };
    let api = graphql::router(
        graphql::schema_with_webhooks(
            pool.clone(),
            residents.clone(),
            authz.clone(),
            policy.clone(),
            graphql::WebhookSettings {
                sealing_key: sealing_key.clone(),
                endpoints: webhook_endpoints,
            },
        ),
        residents.clone(),
        settings.graphql_deadline(),
        key_limits.clone(),
    );
    let admin = admin_ui::router(admin_ui::AdminState {
        pool: pool.clone(),
        authz,
        policy,
        public_url: settings.public_url(),
        sealing_key: sealing_key.clone(),
        webhook_endpoints,
        api_key_default_rate: key_limits.default_per_minute(),
    });
    let mut app = Router::new()
        .route("/", get(home))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Health { pool: pool.clone() })
        .merge(api)
        .merge(admin)
        .merge(resident_ui::router(residents.clone()))
        .merge(crate::callbacks::router(pool.clone(), sealing_key));
    if settings.environment != crate::config::Environment::Production {
        app = app.merge(crate::dev::router(messages));
    }
    // a bad http.trusted_proxies is refused by Settings::validate before we get here
    let forwarding = settings.forwarding().unwrap_or_else(|e| {
        tracing::error!(error = %e, "trusted proxies ignored");
        Forwarding::none()
    });
    // innermost: the address check and the client address every front end reads (src/edge.rs)
    app = app
        .layer(crate::edge::EdgeLayer::new(forwarding))
        // a panic is answered inside the request's span, with its request id
        .layer(crate::panic::CatchPanicLayer);
    if settings.secure_cookies() {
        app = app.layer(axum::middleware::map_response(secure_cookies));
    }
    let app = app
        .layer(CompressionLayer::new())
        .layer(RequestBodyLimitLayer::new(settings.http.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout(),
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(crate::access_log::AccessLog::new(
                    settings.log.served_lines_per_second,
                )),
        )
        // every route's count and latency by its template, and the requests in flight
        // (src/metrics.rs)
        .layer(crate::metrics::RequestMetricsLayer::new(in_flight))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid));
    security_headers(app, settings.secure_cookies())
}

/// The Content-Security-Policy of every response. The pages load only their own scripts
/// (`/admin/static/intake.js`, GraphiQL's vendored files under `/graphql/assets`), so scripts are
/// `'self'` with no inline script and no eval. Styles allow `'unsafe-inline'`: the maud pages carry
/// their CSS in a `<style>` element and a few `style=` attributes (charts, the heat map), and
/// GraphiQL injects its styles at run time; inline styles cannot run code. Images and fonts also
/// allow `data:` (GraphiQL's icons and fonts). Nothing may frame a page (`frame-ancestors`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The security headers every response carries unless its handler set its own: the CSP above,
/// `X-Frame-Options: DENY` (for browsers without frame-ancestors), `X-Content-Type-Options:
/// nosniff`, `Referrer-Policy: same-origin` (ticket numbers in query strings never leave the site).
fn security_headers(app: Router, https: bool) -> Router {
    let mut headers = vec![
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        // pages and answers carry personal data: no browser or proxy keeps them (a shared
        // computer at a venue's desk); static assets set their own max-age
        (header::CACHE_CONTROL, "no-store"),
    ];
    if https {
        // the public URL is https: browsers never try plain http for this host again for a year
        headers.push((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"));
    }
    headers.into_iter().fold(app, |app, (name, value)| {
        app.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ))
    })
}

/// Marks every cookie Secure (installed when the public URL is https: `Settings::secure_cookies`):
/// the staff session, the resident session and form cookies, the language and CSRF cookies — every
/// `Set-Cookie` of every front end, so none can be forgotten.
async fn secure_cookies(mut res: Response) -> Response {
    if let axum::http::header::Entry::Occupied(mut cookies) =
        res.headers_mut().entry(header::SET_COOKIE)
    {
        for value in cookies.iter_mut() {
            let secure = value.to_str().is_ok_and(|v| {
                v.split(';')
                    .skip(1)
                    .any(|attr| attr.trim().eq_ignore_ascii_case("secure"))
            });
            if !secure {
                let mut bytes = value.as_bytes().to_vec();
                bytes.extend_from_slice(b"; Secure");
                if let Ok(marked) = HeaderValue::from_bytes(&bytes) {
                    *value = marked;
                }
            }
        }
    }
    res
}

/// One span per request; `tenant.id` is filled in by whoever resolves the tenant
/// (`tenants::record_in_span`), `user` by whoever identifies the caller (`tenants::record_user_in_span`:
/// the guard for staff and API keys, the resident desk for residents). Query strings are left out: they can carry ticket numbers.
fn request_span(req: &Request<Body>) -> Span {
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        request_id,
        method = %req.method(),
        path = req.uri().path(),
        tenant.id = Empty,
        user = Empty,
    )
}

/// Liveness: the process answers. Never touches the database, so a database outage does not get
/// healthy processes restarted.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers and its schema is current; 503 otherwise, so a load balancer
/// stops sending traffic until it recovers (no restart needed).
async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    match tokio::time::timeout(Duration::from_secs(3), crate::db::check_ready(&h.pool)).await {
        Ok(Ok(())) => (StatusCode::OK, "ready".to_owned()),
        Ok(Err(why)) => {
            tracing::warn!(reason = %why, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}"))
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: database did not answer within 3 s".to_owned(),
        ),
    }
}

async fn home() -> Html<&'static str> {
    Html(include_str!("home.html"))
}
