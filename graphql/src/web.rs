//! HTTP endpoints of the API: POST for queries, GET for the GraphiQL console, whose scripts are
//! vendored (graphql/assets, see LICENSES.md there) so it works without the internet.
//!
//! Hot public availability reads are answered from memory without running the query again: the
//! rendered response of a request made only of `availability` fields is kept, keyed by the exact
//! request body and the answer's language, for exactly as long as the venue slots it was rendered
//! from stay current in the desk's `AvailabilityCache` (a booking through this process drops them at once;
//! otherwise they live one [`platform::booking::availability::CACHE_TTL`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use async_graphql::parser::types::{DocumentOperations, OperationType, Selection};
use axum::{
    Extension, Router,
    body::Bytes,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use platform::ResidentDesk;
use platform::booking::availability::SlotAvailability;
use platform::i18n::Lang;
use tenants::TenantId;
use uuid::Uuid;

use crate::AppSchema;

const GRAPHQL_JSON: &str = "application/graphql-response+json";
/// Bound on remembered responses (distinct request bodies × languages); cleared when exceeded.
const MAX_RESPONSES: usize = 20_000;

type Dep = (TenantId, Uuid, Arc<Vec<SlotAvailability>>);

/// The venue slots a request's answer was rendered from (filled by the `availability` resolver).
#[derive(Default)]
pub struct AvailabilityDeps(Mutex<Vec<Dep>>);

impl AvailabilityDeps {
    pub fn record(&self, tenant: TenantId, venue: Uuid, slots: Arc<Vec<SlotAvailability>>) {
        if let Ok(mut d) = self.0.lock() {
            d.push((tenant, venue, slots));
        }
    }
}

struct Rendered {
    deps: Vec<Dep>,
    body: Bytes,
}

#[derive(Clone)]
struct Api {
    schema: AppSchema,
    desk: ResidentDesk,
    responses: Arc<RwLock<HashMap<(Lang, Bytes), Rendered>>>,
}

impl Api {
    fn remembered(&self, key: &(Lang, Bytes)) -> Option<Bytes> {
        let r = self.responses.read().ok()?;
        let hit = r.get(key)?;
        hit.deps
            .iter()
            .all(|(t, v, slots)| self.desk.availability_cache().is_current(*t, *v, slots))
            .then(|| hit.body.clone())
    }

    /// A remembered answer whose venue entries expired: re-read them (one query each), and when
    /// none changed serve the same bytes again — exact, and no GraphQL execution or rendering.
    async fn revalidated(&self, key: &(Lang, Bytes)) -> Option<Bytes> {
        let (deps, body) = {
            let r = self.responses.read().ok()?;
            let hit = r.get(key)?;
            (hit.deps.clone(), hit.body.clone())
        };
        for (t, v, slots) in &deps {
            // the desk says whether the city is still open and the entry still the same
            if !self.desk.still_current(*t, *v, slots).await.ok()? {
                return None;
            }
        }
        Some(body)
    }

    fn remember(&self, key: (Lang, Bytes), deps: Vec<Dep>, body: Bytes) {
        if let Ok(mut r) = self.responses.write() {
            if r.len() >= MAX_RESPONSES {
                r.clear();
            }
            r.insert(key, Rendered { deps, body });
        }
    }
}

pub fn router<S>(schema: AppSchema, desk: ResidentDesk) -> Router<S> {
    let api = Api {
        schema,
        desk,
        responses: Arc::default(),
    };
    Router::new()
        .route("/graphql", get(graphiql).post(execute))
        .route("/graphql/assets/{file}", get(asset))
        .with_state(api)
}

/// A query made only of public `availability` fields: its answer depends on nothing but the
/// request body, the language and the venue slots it reads.
fn only_public_availability(query: &str) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    let op = match &doc.operations {
        DocumentOperations::Single(op) => op,
        DocumentOperations::Multiple(ops) if ops.len() == 1 => match ops.values().next() {
            Some(op) => op,
            None => return false,
        },
        DocumentOperations::Multiple(_) => return false,
    };
    op.node.ty == OperationType::Query
        && !op.node.selection_set.node.items.is_empty()
        && op.node.selection_set.node.items.iter().all(
            |item| matches!(&item.node, Selection::Field(f) if f.node.name.node == "availability"),
        )
}

fn json_response(body: Bytes) -> Response {
    let mut resp = Response::new(body.into());
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(GRAPHQL_JSON));
    resp
}

async fn execute(
    State(api): State<Api>,
    headers: HeaderMap,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> Response {
    let lang = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::negotiate)
        .unwrap_or_default();
    let key = (lang, body);
    if let Some(hit) = api.remembered(&key) {
        return json_response(hit);
    }
    if let Some(hit) = api.revalidated(&key).await {
        return json_response(hit);
    }
    let req: async_graphql::Request = match serde_json::from_slice(&key.1) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("The body must be a GraphQL request as JSON ({{\"query\": \"…\"}}): {e}"),
            )
                .into_response();
        }
    };
    let cacheable = only_public_availability(&req.query);
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
    // Staff and integrators (API key or session) and residents (resident token) share the bearer
    // header; each resolver reads the credentials of its audience.
    let info = crate::RequestInfo {
        bearer: bearer.clone(),
        lang,
        client_ip: ip.clone().unwrap_or_default(),
    };
    let credentials = crate::auth::Credentials::new(bearer, session, ip);
    let deps = Arc::new(AvailabilityDeps::default());
    let resp = api
        .schema
        .execute(req.data(credentials).data(info).data(deps.clone()))
        .await;
    let rendered = match serde_json::to_vec(&resp) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a GraphQL response");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if cacheable && resp.is_ok() {
        let deps = deps.0.lock().map(|d| d.clone()).unwrap_or_default();
        if !deps.is_empty() {
            api.remember(key, deps, rendered.clone());
        }
    }
    let mut out = json_response(rendered);
    if resp.is_ok()
        && let Some(cc) = resp.cache_control.value()
        && let Ok(v) = HeaderValue::from_str(&cc)
    {
        out.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    out.headers_mut().extend(resp.http_headers);
    out
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
