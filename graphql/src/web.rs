//! HTTP endpoints of the API: POST for queries, GET for the GraphiQL console, whose scripts are
//! vendored (graphql/assets, see LICENSES.md there) so it works without the internet.

use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use std::net::SocketAddr;

use axum::{
    Extension, Router,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};

use crate::AppSchema;

pub fn router<S>(schema: AppSchema) -> Router<S> {
    Router::new()
        .route("/graphql", get(graphiql).post(execute))
        .route("/graphql/assets/{file}", get(asset))
        .with_state(schema)
}

async fn execute(
    State(schema): State<AppSchema>,
    headers: HeaderMap,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    req: GraphQLRequest,
) -> GraphQLResponse {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    let lang = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(platform::i18n::Lang::negotiate)
        .unwrap_or_default();
    let info = crate::RequestInfo {
        bearer,
        lang,
        client_ip: client.map(|c| c.0.0.ip().to_string()).unwrap_or_default(),
    };
    schema.execute(req.into_inner().data(info)).await.into()
}

async fn graphiql() -> Html<&'static str> {
    Html(include_str!("../assets/graphiql.html"))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, mime): (&'static [u8], &str) = match file.as_str() {
        "graphiql.min.js" => (
            include_bytes!("../assets/graphiql.min.js"),
            "text/javascript",
        ),
        "graphiql.min.css" => (include_bytes!("../assets/graphiql.min.css"), "text/css"),
        "react.production.min.js" => (
            include_bytes!("../assets/react.production.min.js"),
            "text/javascript",
        ),
        "react-dom.production.min.js" => (
            include_bytes!("../assets/react-dom.production.min.js"),
            "text/javascript",
        ),
        "graphiql-init.js" => (
            include_bytes!("../assets/graphiql-init.js"),
            "text/javascript",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}
