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
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    req: GraphQLRequest,
) -> GraphQLResponse {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_owned());
    let session = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == crate::auth::SESSION_COOKIE)
        .map(|(_, v)| v.to_owned());
    let ip = connect.map(|c| c.0.0.ip().to_string());
    let lang = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(platform::i18n::Lang::negotiate)
        .unwrap_or_default();
    // Staff and integrators (API key or session) and residents (resident token) share the bearer
    // header; each resolver reads the credentials of its audience.
    let info = crate::RequestInfo {
        bearer: bearer.clone(),
        lang,
        client_ip: ip.clone().unwrap_or_default(),
    };
    let credentials = crate::auth::Credentials::new(bearer, session, ip);
    schema
        .execute(req.into_inner().data(credentials).data(info))
        .await
        .into()
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
