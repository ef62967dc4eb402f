//! A panic inside a request never closes the connection silently: the request is answered with a
//! generic 500 (an HTML page, or a GraphQL error with `extensions.code = "INTERNAL"` for `/graphql`
//! and JSON clients) that names the request id, the panic is logged with that request id, and the
//! server goes on serving. Nothing of the panic's message reaches the client (it may carry data).

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::{
    body::Body,
    http::{HeaderValue, Request, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::FutureExt;

/// The layer: wraps each route's service in [`CatchPanic`]. A plain tower layer rather than
/// `axum::middleware::from_fn`: measured, the `from_fn` version took ~17 % off the availability
/// answers per second (docs/benchmarks.md, run 13).
#[derive(Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> tower::Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

/// Runs the inner service and turns a panic (while building or polling its answer) into a 500.
#[derive(Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> tower::Service<Request<Body>> for CatchPanic<S>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // kept cheaply (reference-counted clones); only a panic looks at them
        let request_id = req.headers().get("x-request-id").cloned();
        let accept = req.headers().get(header::ACCEPT).cloned();
        let method = req.method().clone();
        let uri = req.uri().clone();
        let answer = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req)));
        Box::pin(async move {
            let outcome = match answer {
                Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                Err(panic) => Err(panic),
            };
            match outcome {
                Ok(response) => response,
                Err(panic) => {
                    let request_id = request_id
                        .as_ref()
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let wants_json = uri.path().starts_with("/graphql")
                        || accept
                            .as_ref()
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|a| a.contains("json") && !a.contains("text/html"));
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(not a string)".into());
                    tracing::error!(
                        request_id = %request_id,
                        method = %method,
                        path = %uri.path(),
                        panic = %what,
                        "a request handler panicked; answered 500"
                    );
                    Ok(internal_error(request_id, wants_json))
                }
            }
        })
    }
}

fn internal_error(request_id: &str, json: bool) -> Response {
    let mut response = if json {
        let body = serde_json::json!({
            "data": null,
            "errors": [{
                "message": format!(
                    "Internal error: something went wrong on our side. Quote request id {request_id} if you report it."
                ),
                "extensions": { "code": "INTERNAL", "requestId": request_id },
            }],
        });
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    } else {
        let page = maud::html! {
            (maud::DOCTYPE)
            html lang="ja" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "エラー / Error" }
                }
                body {
                    h1 { "システムエラー / Something went wrong" }
                    p { "申し訳ありません。時間をおいてもう一度お試しください。" }
                    p { "Sorry, something went wrong on our side. Please try again in a moment." }
                    p { "お問い合わせの際はこの番号をお伝えください / Request id: " code { (request_id) } }
                }
            }
        };
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::response::Html(page.into_string()),
        )
            .into_response()
    };
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
