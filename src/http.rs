//! The HTTP server: every router merged in one place, wrapped in the layers every request passes
//! (request id → in-flight count → trace span → timeout → body limit → compression → panic catcher).

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderName, Request, StatusCode},
    response::{Html, IntoResponse},
    routing::get,
};
use sqlx::PgPool;
use tower_http::{
    compression::CompressionLayer,
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use tracing::{Span, field::Empty};

use crate::config::Settings;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
struct Health {
    pool: PgPool,
}

/// The whole application as one router, ready for `axum::serve`.
pub fn router(
    settings: &Settings,
    pool: PgPool,
    authz: platform::staff::authz::Authz,
    secret: platform::residents::auth::CodeSecret,
    messages: plugins::LogChannel,
    sealing_key: platform::notifications::channels::SealingKey,
    in_flight: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Router {
    let policy = std::sync::Arc::new(settings.auth.policy());
    let residents = platform::ResidentDesk::new(pool.clone(), secret, authz.tenant_cache());
    let api = graphql::router(
        graphql::schema(
            pool.clone(),
            residents.clone(),
            authz.clone(),
            policy.clone(),
        ),
        residents.clone(),
    );
    let admin = admin_ui::router(admin_ui::AdminState {
        pool: pool.clone(),
        authz,
        policy,
        secure_cookies: settings.public_url().starts_with("https://"),
        public_url: settings.public_url(),
        sealing_key: sealing_key.clone(),
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
    // innermost: a panic is answered inside the request's span, with its request id
    app.layer(crate::panic::CatchPanicLayer)
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
                .on_response(log_response),
        )
        .layer(axum::middleware::from_fn_with_state(
            in_flight,
            count_in_flight,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Counts the request as in flight while it is handled (the notification worker gives way to
/// residents while many are: `platform::notifications::Pacing`).
async fn count_in_flight(
    axum::extract::State(in_flight): axum::extract::State<
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    >,
    req: Request<Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let _counted = platform::notifications::InFlightGuard::enter(&in_flight);
    next.run(req).await
}

/// One span per request; `tenant.id` is filled in by whoever resolves the tenant
/// (`tenants::record_in_span`). Query strings are left out: they can carry ticket numbers.
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
    )
}

fn log_response(res: &axum::http::Response<Body>, latency: Duration, _span: &Span) {
    tracing::info!(
        status = res.status().as_u16(),
        duration_ms = latency.as_millis() as u64,
        "served"
    );
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
