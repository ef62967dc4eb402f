//! Prometheus metrics (docs/operations.md, "Metrics"). The recorder is process-wide (the `metrics`
//! facade's global): [`install`] runs once from [`crate::init_process`], the start-up path of the
//! binary, `App::build` and therefore of the tests. `/metrics` is served only on the admin listener
//! (`metrics.listen`), never on the public port.
//!
//! What is recorded, and where (labels are bounded: route templates, not paths):
//! * `yoyaku_http_requests_total` and `yoyaku_http_request_duration_seconds` (histogram) by
//!   `route` (the matched route template, `unmatched` for 404s), `method` and `status` — here,
//!   [`RequestMetricsLayer`], a layer on every route;
//! * `yoyaku_bookings_total` by `outcome`, `door` and `tenant` — `platform::booking::record_decision`;
//! * `yoyaku_availability_cache_total` by `result` (hit, miss) — `platform::booking::availability`;
//! * `yoyaku_db_pool_connections` by `state` (idle, in_use) and `yoyaku_db_pool_max_connections` —
//!   read from the runtime pool at each scrape.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::{
    Router,
    body::Body,
    extract::{MatchedPath, State},
    http::{Method, Request, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

/// Latency buckets (seconds): a booking answers in milliseconds, a timeout is 30 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder, once. If an embedding
/// program installed another recorder first, metrics go there and `/metrics` answers 503.
pub(crate) fn install() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
            .ok()?;
        match builder.install_recorder() {
            Ok(handle) => {
                upkeep(handle.clone());
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "another metrics recorder is installed; /metrics is off");
                None
            }
        }
    });
}

/// How often the recorder's upkeep runs without a scrape.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The recorder keeps every latency sample until its upkeep folds them into the buckets; a scrape
/// runs it, but a server nobody scrapes (no `metrics.listen`, or a scraper that stopped) would keep
/// ~8 bytes per request for ever. A thread of its own (the recorder is installed before any
/// runtime, and outlives them) folds them every [`UPKEEP_EVERY`].
fn upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "the metrics upkeep thread did not start; only scrapes fold samples");
    }
}

/// The admin router: `GET /metrics` in Prometheus's text format.
pub fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(pool)
}

async fn scrape(State(pool): State<PgPool>) -> Response {
    let Some(handle) = HANDLE.get().and_then(Option::as_ref) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not recorded in this process",
        )
            .into_response();
    };
    let idle = pool.num_idle() as f64;
    let size = f64::from(pool.size());
    metrics::gauge!("yoyaku_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("yoyaku_db_pool_connections", "state" => "in_use").set((size - idle).max(0.0));
    metrics::gauge!("yoyaku_db_pool_max_connections")
        .set(f64::from(pool.options().get_max_connections()));
    handle.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// The request layer: counts and times every request by its route template (bounded: the routes
/// the code defines), and counts it in flight for as long as it lives (the notification worker
/// gives way to a rush by this count, docs/notifications.md). A plain tower layer rather than two
/// `axum::middleware::from_fn`s: `from_fn` clones the boxed inner service on every request
/// (the panic catcher's measurement, docs/benchmarks.md run 13).
#[derive(Clone)]
pub struct RequestMetricsLayer {
    in_flight: Arc<AtomicUsize>,
}

impl RequestMetricsLayer {
    pub fn new(in_flight: Arc<AtomicUsize>) -> Self {
        Self { in_flight }
    }
}

impl<S> tower::Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics {
            inner,
            in_flight: self.in_flight.clone(),
        }
    }
}

/// See [`RequestMetricsLayer`].
#[derive(Clone)]
pub struct RequestMetrics<S> {
    inner: S,
    in_flight: Arc<AtomicUsize>,
}

type Answer<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl<S> tower::Service<Request<Body>> for RequestMetrics<S>
where
    S: tower::Service<Request<Body>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Answer<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let counted = platform::notifications::InFlightGuard::enter(&self.in_flight);
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
        let method = match *req.method() {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::HEAD => "HEAD",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::PATCH => "PATCH",
            Method::OPTIONS => "OPTIONS",
            // anything a client invents would make a new series
            _ => "other",
        };
        let started = Instant::now();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let _counted = counted;
            let res = answer.await?;
            let labels = [
                ("route", route),
                ("method", method.to_owned()),
                ("status", res.status().as_u16().to_string()),
            ];
            metrics::counter!("yoyaku_http_requests_total", &labels).increment(1);
            metrics::histogram!("yoyaku_http_request_duration_seconds", &labels)
                .record(started.elapsed().as_secs_f64());
            Ok(res)
        })
    }
}
