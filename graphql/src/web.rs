//! HTTP endpoints of the API: POST for queries and mutations, GET for queries (mutations over GET
//! answer 405), and the GraphiQL console for a browser's GET without a query; its scripts are
//! vendored (graphql/assets, see LICENSES.md there) so it works without the internet. How requests
//! are read, which media type answers and with which status: [`crate::protocol`] (GraphQL over
//! HTTP).
//!
//! Hot public availability reads are answered from memory without running the query again: the
//! rendered response of a request made only of `availability` fields is kept, keyed by the
//! normalised query ([`crate::limits::normalise`]: padding does not make a new entry), the
//! operation name, the variables and the answer's language, for exactly as long as the venue slots
//! it was rendered from stay current in the desk's `AvailabilityCache` (a booking through this
//! process drops them at once; otherwise they live one
//! [`platform::booking::availability::CACHE_TTL`]). The [`AnswerCache`] is bounded by entries and
//! by bytes (oldest out first); a key above [`MAX_REMEMBERED_KEY`] bytes is never remembered. A
//! body of at most [`MAX_REMEMBERED_KEY`] bytes is also remembered as sent, so the same small body
//! again is answered before its JSON is even parsed (the common case of an opening rush).
//!
//! A request that authenticates with the staff session cookie (no `Authorization` header) must be
//! `Content-Type: application/json` and, when it has an `Origin`, come from this server's own
//! origin (its `Host`): a form or `text/plain` post from another site cannot ride the cookie
//! (403 FORBIDDEN, `extensions.reason = "CROSS_SITE"`). API keys and resident tokens are unaffected.
//! A GET never rides the cookie (a link on another site can make one): it is answered with the
//! `Authorization` header's credentials only.
//!
//! A request with an API key (`Authorization: Bearer yk_…`) is checked before anything else is done
//! with it ([`platform::staff::api_keys::check`]): an expired key answers 401 `UNAUTHENTICATED`
//! (`reason: KEY_EXPIRED`), and a key over its budget ([`platform::staff::api_keys::KeyLimits`])
//! answers 429 `RATE_LIMITED` with `Retry-After` — before the document is parsed or executed, and
//! never from the remembered answers before that check (every request of a key counts).
//!
//! Every execution has a deadline (`http.graphql_deadline_ms`, shorter than the whole request's
//! timeout): when it passes, the execution future is dropped — its database queries are cancelled
//! and its connections go back to the pool — and the answer is `extensions.code = "TIMEOUT"`.
//! Work that cannot be interrupted (parsing, validation) is kept linear by [`crate::limits`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{
    Extension, Router,
    body::Bytes,
    extract::{ConnectInfo, Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use platform::ResidentDesk;
use platform::i18n::Lang;
use platform::staff::api_keys::{KeyHolder, KeyLimits, KeyRefused};

use crate::AppSchema;
pub use crate::answers::{
    AnswerCache, AnswerCacheStats, AvailabilityDeps, MAX_REMEMBERED, MAX_REMEMBERED_BYTES,
    MAX_REMEMBERED_KEY,
};
use crate::answers::{Dep, Key};
use crate::documents::Documents;
use crate::protocol::{self, Media, Refusal};
/// `/graphql`'s state: one shared [`ApiParts`], so that handing it to a request (axum clones the
/// state for every request, more than once) is one reference count, not one per part.
#[derive(Clone)]
pub(crate) struct Api(Arc<ApiParts>);

impl std::ops::Deref for Api {
    type Target = ApiParts;
    fn deref(&self) -> &ApiParts {
        &self.0
    }
}

pub(crate) struct ApiParts {
    pub(crate) schema: AppSchema,
    desk: ResidentDesk,
    responses: AnswerCache,
    deadline: std::time::Duration,
    keys: KeyLimits,
    /// One wide execution at a time (see [`respond`]).
    wide_lane: Arc<tokio::sync::Semaphore>,
    /// Documents parsed before, by their text.
    documents: Documents,
}

/// An answer too large to send, or estimated so before it runs: `data` is null, `VALIDATION` with
/// `reason: "TOO_LARGE"` (status 200 under both media types).
fn too_large(media: Media, message: &str) -> Response {
    let body = serde_json::json!({
        "data": null,
        "errors": [{
            "message": message,
            "extensions": { "code": "VALIDATION", "reason": "TOO_LARGE" },
        }],
    });
    media.answer(Bytes::from(body.to_string()))
}

impl ApiParts {
    fn remembered(&self, key: &Key) -> Option<Bytes> {
        Self::current(&self.desk, self.responses.get(key)?)
    }

    fn remembered_as_sent(&self, raw: &Key) -> Option<Bytes> {
        Self::current(&self.desk, self.responses.get_alias(raw)?)
    }

    fn current(desk: &ResidentDesk, (deps, body): (Vec<Dep>, Bytes)) -> Option<Bytes> {
        deps.iter()
            .all(|(t, v, slots)| desk.availability_cache().is_current(*t, *v, slots))
            .then_some(body)
    }

    /// A remembered answer whose venue entries expired: re-read them (one query each), and when
    /// none changed serve the same bytes again — exact, and no GraphQL execution or rendering.
    async fn revalidated(&self, key: &Key) -> Option<Bytes> {
        let (deps, body) = self.responses.get(key)?;
        for (t, v, slots) in &deps {
            // the desk says whether the city is still open and the entry still the same
            if !self.desk.still_current(*t, *v, slots).await.ok()? {
                return None;
            }
        }
        Some(body)
    }
}

/// `/graphql` with each execution stopped after `deadline` and each API key held to its budget.
pub fn router<S>(
    schema: AppSchema,
    desk: ResidentDesk,
    deadline: std::time::Duration,
    keys: KeyLimits,
) -> Router<S> {
    router_with(schema, desk, AnswerCache::new(), deadline, keys)
}

/// [`router`] with the remembered-answer cache given (tests read its [`AnswerCache::stats`]) and
/// the default key budgets.
pub fn router_with_cache<S>(
    schema: AppSchema,
    desk: ResidentDesk,
    cache: AnswerCache,
    deadline: std::time::Duration,
) -> Router<S> {
    router_with(schema, desk, cache, deadline, KeyLimits::default())
}

fn router_with<S>(
    schema: AppSchema,
    desk: ResidentDesk,
    cache: AnswerCache,
    deadline: std::time::Duration,
    keys: KeyLimits,
) -> Router<S> {
    let api = Api(Arc::new(ApiParts {
        schema,
        desk,
        responses: cache,
        deadline,
        keys,
        wide_lane: Arc::new(tokio::sync::Semaphore::new(1)),
        documents: Documents::default(),
    }));
    Router::new()
        .route("/graphql", get(query_over_get).post(execute))
        .route("/graphql/assets/{file}", get(asset))
        .route(
            "/graphql/exports/{city}/{id}",
            get(crate::download::export_file),
        )
        .with_state(api)
}

/// Why a cookie-authenticated request may not run: not JSON, or from another origin.
fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Some(
            "A request signed in with the staff session cookie must be sent as \
             Content-Type: application/json.",
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, host)| host.trim_end_matches('/'));
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let same = matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h));
        if !same {
            return Some(
                "A request signed in with the staff session cookie must come from this \
                 server's own pages (Origin differs).",
            );
        }
    }
    None
}

/// The request's language and `Authorization: Bearer` credentials.
pub(crate) fn lang_and_bearer(headers: &HeaderMap) -> (Lang, Option<String>) {
    let lang = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::negotiate)
        .unwrap_or_default();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_owned());
    (lang, bearer)
}

/// `GET /graphql`: a query from the query string (never a mutation: 405), or the GraphiQL console
/// for a browser (`Accept: text/html`) that sends no query. The session cookie does not count.
async fn query_over_get(
    State(api): State<Api>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    client: Option<Extension<platform::ClientIp>>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    let raw = raw.unwrap_or_default();
    let has_query = raw
        .split('&')
        .any(|p| p.starts_with("query=") && p.len() > "query=".len());
    if !has_query && protocol::wants_html(&headers) {
        return Html(include_str!("../assets/graphiql.html")).into_response();
    }
    let Some(media) = Media::negotiate(&headers) else {
        return Refusal::not_acceptable().into_response(Media::Json);
    };
    let mut req = match protocol::from_query_string(&raw) {
        Ok(req) => req,
        Err(refusal) => return refusal.into_response(media),
    };
    if protocol::operation_type(&mut req)
        .is_some_and(|ty| ty != async_graphql::parser::types::OperationType::Query)
    {
        return Refusal::mutation_over_get().into_response(media);
    }
    let (lang, bearer) = lang_and_bearer(&headers);
    let call = Call {
        lang,
        bearer,
        session: None,
        raw_key: None,
        client,
        connect,
        media,
    };
    respond(api, call, req).await
}

/// Who asks, how to answer, and the body as sent (for the remembered answers), for [`respond`].
struct Call {
    lang: Lang,
    bearer: Option<String>,
    session: Option<String>,
    raw_key: Option<Key>,
    client: Option<Extension<platform::ClientIp>>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    media: Media,
}

/// `POST /graphql`: a JSON body (`{"query", "operationName", "variables", "extensions"}`).
async fn execute(
    State(api): State<Api>,
    headers: HeaderMap,
    client: Option<Extension<platform::ClientIp>>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> Response {
    let Some(media) = Media::negotiate(&headers) else {
        return Refusal::not_acceptable().into_response(Media::Json);
    };
    let (lang, bearer) = lang_and_bearer(&headers);
    let session = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == crate::auth::SESSION_COOKIE)
        .map(|(_, v)| v.to_owned());
    // The cookie counts only without a bearer (see auth.rs): only then can another site ride it.
    if bearer.is_none()
        && session.is_some()
        && let Some(why) = cross_site(&headers)
    {
        return media.error(StatusCode::FORBIDDEN, "FORBIDDEN", "CROSS_SITE", why);
    }
    if !protocol::is_json_body(&headers) {
        return Refusal::unsupported_media_type().into_response(media);
    }
    // The hot path of an opening: the same small public body again. Its remembered answer is found
    // by the body as sent, before any JSON is parsed (a second entry for the same answer, kept only
    // for bodies up to MAX_REMEMBERED_KEY bytes, so padding cannot grow the cache).
    // (an API key's request is never answered from memory: every one counts against its budget)
    let raw_key = (body.len() <= MAX_REMEMBERED_KEY && !is_api_key(bearer.as_deref()))
        .then(|| std::str::from_utf8(&body).ok())
        .flatten()
        .map(|b| (lang, format!("\0{b}")));
    if let Some(raw) = &raw_key
        && let Some(hit) = api.remembered_as_sent(raw)
    {
        return media.answer(hit);
    }
    let req = match protocol::from_json_body(&body) {
        Ok(r) => r,
        Err(refusal) => return refusal.into_response(media),
    };
    drop(body);
    let call = Call {
        lang,
        bearer,
        session,
        raw_key,
        client,
        connect,
        media,
    };
    respond(api, call, req).await
}

/// Whether the bearer is an integrator's API key (`yk_…`) rather than a resident token.
pub(crate) fn is_api_key(bearer: Option<&str>) -> bool {
    bearer.is_some_and(|b| b.starts_with("yk_"))
}

/// The API key behind the request, checked and charged one request of its budget; or the answer
/// that refuses it (expired: 401; over budget: 429 with `Retry-After`). An unknown key is left to
/// the resolvers (UNAUTHENTICATED where a field needs a caller), as before.
pub(crate) async fn admit_key(
    api: &Api,
    key: &str,
    ip: Option<String>,
    media: Media,
) -> Result<Option<KeyHolder>, Response> {
    let (Some(pool), Some(authz)) = (
        api.schema.data::<sqlx::PgPool>(),
        api.schema.data::<platform::staff::authz::Authz>(),
    ) else {
        return Ok(None);
    };
    let holder = match platform::staff::api_keys::check(pool, authz, key, ip, Some(&api.keys)).await
    {
        Ok(h) => h,
        Err(KeyRefused::Unknown) => return Ok(None),
        Err(
            refused @ (KeyRefused::Expired(_)
            | KeyRefused::PlanLimit(_)
            | KeyRefused::OverBudget { .. }),
        ) => {
            if matches!(refused, KeyRefused::OverBudget { .. }) {
                metrics::counter!("yoyaku_graphql_rate_limited_total").increment(1);
            }
            let Some(r) = crate::auth::key_refusal(&refused) else {
                return Ok(None);
            };
            let mut resp = media.error(r.status, r.code, r.reason, &r.message);
            if let Some(secs) = r.retry_after_secs {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return Err(resp);
        }
        // the resolvers give the guard's answer (a suspended city) the same way as before
        Err(KeyRefused::Denied(platform::staff::authz::Denied::Suspended)) => return Ok(None),
        Err(KeyRefused::Denied(e)) => {
            tracing::error!(error = %e, "checking an API key failed");
            return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
    };
    Ok(Some(holder))
}

/// Runs a GraphQL request (from POST or GET) and answers it in the negotiated media type.
async fn respond(api: Api, call: Call, req: async_graphql::Request) -> Response {
    let Call {
        lang,
        bearer,
        session,
        raw_key,
        client,
        connect,
        media,
    } = call;
    // The client as the server's edge resolved it (a configured trusted proxy's forwarded address),
    // else the TCP peer.
    let ip = client
        .map(|c| c.0.to_string())
        .or_else(|| connect.map(|c| c.0.0.ip().to_string()));
    // An API key is checked and charged before anything else (nothing remembered answers it).
    let holder = match bearer.as_deref() {
        Some(key) if is_api_key(Some(key)) => match admit_key(&api, key, ip.clone(), media).await {
            Ok(h) => h,
            Err(refused) => return refused,
        },
        _ => None,
    };
    // A document parsed before says what it is without parsing: only one made of public
    // `availability` fields can have a remembered answer (a booking's mutation never looks).
    let known = api.documents.get(&req.query);
    // A query above the limit is refused by the schema (limits.rs); no key, nothing remembered.
    // (past the key's budget check: a remembered public answer may serve a key's request too)
    let key = (req.query.len() <= crate::limits::MAX_QUERY_BYTES
        && known.as_ref().is_none_or(|p| p.public_availability()))
    .then(|| {
        let vars = serde_json::to_string(&req.variables).unwrap_or_default();
        let key = format!(
            "{}\n{}\n{vars}",
            crate::limits::normalise(&req.query),
            req.operation_name.as_deref().unwrap_or("")
        );
        (lang, key)
    });
    if let Some(key) = &key {
        let hit = match api.remembered(key) {
            Some(hit) => Some(hit),
            None => api.revalidated(key).await,
        };
        if let Some(hit) = hit {
            // a new spelling of a remembered request: next time it is found as sent
            if let Some(raw) = raw_key {
                api.responses.alias(raw, key.clone());
            }
            return media.answer(hit);
        }
    }
    // parsed once here (or cloned from before) for the limits, the estimate and the execution
    let mut req = req;
    let public =
        req.query.len() <= crate::limits::MAX_QUERY_BYTES && api.documents.prepare(&mut req, known);
    let cacheable = key.is_some() && public;
    // Staff and integrators (API key or session) and residents (resident token) share the bearer
    // header; each resolver reads the credentials of its audience.
    let info = crate::RequestInfo {
        bearer: bearer.clone(),
        lang,
        client_ip: ip.clone().unwrap_or_default(),
    };
    let credentials = match holder {
        Some(h) => crate::auth::Credentials::key_holder(h, ip),
        None => crate::auth::Credentials::new(bearer, session, ip),
    };
    let deps = Arc::new(AvailabilityDeps::default());
    // A document whose answer is estimated wide (limits::estimated_values) resolves off the
    // runtime's workers, so that the requests queued behind it there (a `/healthz` probe) do not
    // wait for it: ~36,000 slot objects take hundreds of milliseconds and never wait on anything.
    let variables = std::mem::take(&mut req.variables);
    // (a query over the size limit is refused unparsed by limits.rs)
    // (only for a document within limits.rs's caps: one over them is refused as TOO_COMPLEX by
    // the schema, as before)
    let estimated = if req.query.len() <= crate::limits::MAX_QUERY_BYTES {
        req.parsed_query().map_or(0, |doc| {
            if crate::limits::check(doc).is_ok() {
                crate::limits::estimated_values(doc, &variables)
            } else {
                0
            }
        })
    } else {
        0
    };
    req.variables = variables;
    if estimated > crate::limits::MAX_VALUES {
        metrics::counter!("yoyaku_graphql_refused_total", "reason" => "too_large").increment(1);
        return too_large(
            media,
            &format!(
                "The answer would be too large (estimated at {estimated} values from the list \
                 sizes asked for; at most {}): ask for fewer fields, fewer aliases or a shorter \
                 window, or send several requests.",
                crate::limits::MAX_VALUES
            ),
        );
    }
    let wide = estimated >= crate::limits::WIDE_VALUES;
    let executed = Arc::new(protocol::Executed::default());
    let execution = api.schema.execute(
        req.data(credentials)
            .data(info)
            .data(deps.clone())
            .data(executed.clone()),
    );
    // wide documents take turns (one at a time, waiting within the deadline): what one holds in
    // memory while it resolves is the most that wide answers hold at once
    let lane = wide.then(|| api.wide_lane.clone());
    let execution = tokio::time::timeout(api.deadline, async move {
        let _turn = match lane {
            Some(lane) => lane.acquire_owned().await.ok(),
            None => None,
        };
        execution.await
    });
    let outcome = if wide {
        metrics::counter!("yoyaku_graphql_wide_executions_total").increment(1);
        crate::wide::off_the_workers(execution).await
    } else {
        execution.await
    };
    let Ok(mut resp) = outcome else {
        tracing::warn!(
            deadline_ms = api.deadline.as_millis() as u64,
            "GraphQL execution stopped at its deadline"
        );
        return media.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "TIMEOUT",
            "DEADLINE",
            &format!(
                "The request took longer than {} ms and was stopped: ask for fewer fields or a \
                 shorter window, or try again in a moment.",
                api.deadline.as_millis()
            ),
        );
    };
    // refused before execution (parse, validation, variables, limits): no `data`, 400 or 200
    if !executed.happened() && resp.is_err() {
        return protocol::request_errors(resp.errors, media);
    }
    let resp_ok = resp.is_ok();
    let cache_control = resp.cache_control.value();
    let http_headers = std::mem::take(&mut resp.http_headers);
    let rendered = match crate::wide::render(resp) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a GraphQL response");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if rendered.len() > crate::limits::MAX_RESPONSE_BYTES {
        tracing::warn!(bytes = rendered.len(), "GraphQL answer over the size limit");
        // executed, but the answer is not sent
        return too_large(
            media,
            &format!(
                "The answer is too large ({} bytes; at most {}): ask for fewer fields, fewer \
                 aliases or a shorter window.",
                rendered.len(),
                crate::limits::MAX_RESPONSE_BYTES
            ),
        );
    }
    if let Some(key) = key
        && cacheable
        && resp_ok
    {
        let deps = deps.0.lock().map(|d| d.clone()).unwrap_or_default();
        if !deps.is_empty() {
            api.responses.insert(key.clone(), deps, rendered.clone());
            if let Some(raw) = raw_key {
                api.responses.alias(raw, key);
            }
        }
    }
    let mut out = media.answer(rendered);
    if resp_ok
        && let Some(cc) = cache_control
        && let Ok(v) = HeaderValue::from_str(&cc)
    {
        out.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    out.headers_mut().extend(http_headers);
    out
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
