//! A panic inside a request never closes the connection silently: the request is answered with a
//! generic 500 (an HTML page, or a GraphQL error with `extensions.code = "INTERNAL"` for `/graphql`
//! and JSON clients) that names the request id, the panic is logged with that request id, and the
//! server goes on serving. Nothing of the panic's message reaches the client (it may carry data).

use std::panic::AssertUnwindSafe;

use axum::{
    body::Body,
    http::{HeaderValue, Request, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures::FutureExt;

/// Middleware: runs the rest of the stack and turns a panic into a 500 answer.
pub async fn catch_panic(req: Request<Body>, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let wants_json = req.uri().path().starts_with("/graphql")
        || req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("json") && !a.contains("text/html"));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(not a string)".into());
            tracing::error!(
                request_id = %request_id,
                method = %method,
                path = %path,
                panic = %what,
                "a request handler panicked; answered 500"
            );
            internal_error(&request_id, wants_json)
        }
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
