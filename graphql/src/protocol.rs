//! GraphQL over HTTP: how a request is read from POST and GET, which media type answers it and
//! with which status. We follow the GraphQL-over-HTTP working draft as the `graphql-http` audit
//! checks it (`.ci/graphql-http-audit`, docs/api.md "GraphQL over HTTP"):
//!
//! * **Media type** ([`Media::negotiate`]): `Accept: application/graphql-response+json` answers in
//!   that type; `application/json`, `*/*` or no `Accept` answer `application/json` (legacy
//!   clients); an `Accept` that allows neither is refused with 406. Both are UTF-8, said in the
//!   `Content-Type` (`; charset=utf-8`).
//! * **Status**: a request that cannot be executed — a body that is not JSON, a missing or
//!   ill-typed parameter, a document that does not parse or validate, no operation to run,
//!   variables that do not fit, a document over the limits (`limits.rs`) — answers 400 with
//!   `application/graphql-response+json` and 200 with `application/json`, and its answer has no
//!   `data` entry ([`request_errors`]). Once execution started, the answer is 200 with `data`
//!   (field errors included). Our own refusals keep their status under both types: a cookie from
//!   another site 403, the deadline 503, a body over the limit 413, a body that is not
//!   `application/json` 415, a mutation over GET 405 (with `Allow: POST`).
//! * **GET** ([`from_query_string`]): `?query=…&operationName=…&variables=<JSON>&extensions=<JSON>`
//!   runs queries only; the empty string is the same as leaving a parameter out.
//!
//! Every refusal here carries `extensions.code = "BAD_REQUEST"` and a `reason`.

use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Request, ServerError, Variables};
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

/// The media type of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// `application/graphql-response+json`: a request that cannot run answers 4xx.
    GraphqlResponse,
    /// `application/json` (legacy clients, `*/*`, no `Accept`): every GraphQL answer is 200.
    Json,
}

/// How well an `Accept` header takes one media type: (quality, specificity, position).
/// Specificity: 3 the type itself, 2 `application/*`, 1 `*/*`; position: the range's index.
type Fit = (f32, u8, usize);

fn fit(accept: &str, media: &str) -> Option<Fit> {
    let mut best: Option<Fit> = None;
    for (position, range) in accept.split(',').enumerate() {
        let mut parts = range.split(';');
        let name = parts.next().unwrap_or("").trim();
        let specificity = if name.eq_ignore_ascii_case(media) {
            3
        } else if name.eq_ignore_ascii_case("application/*") {
            2
        } else if name == "*/*" {
            1
        } else {
            continue;
        };
        let mut q = 1.0;
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = v.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0);
            }
        }
        // the most specific range that names the type decides (RFC 9110, 12.5.1)
        if best.is_none_or(|(_, s, _)| specificity > s) {
            best = Some((q, specificity, position));
        }
    }
    best
}

impl Media {
    pub const GRAPHQL_RESPONSE_JSON: &'static str =
        "application/graphql-response+json; charset=utf-8";
    pub const JSON: &'static str = "application/json; charset=utf-8";

    /// The media type the request's `Accept` prefers; `None` when it allows neither (406).
    /// No `Accept`, or only wildcards, answer `application/json`; between the two types named
    /// with the same quality, the one listed first.
    pub fn negotiate(headers: &HeaderMap) -> Option<Media> {
        let accept = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        if accept.trim().is_empty() {
            return Some(Media::Json);
        }
        let gr = fit(&accept, "application/graphql-response+json").filter(|f| f.0 > 0.0);
        let json = fit(&accept, "application/json").filter(|f| f.0 > 0.0);
        match (gr, json) {
            (None, None) => None,
            (Some(_), None) => Some(Media::GraphqlResponse),
            (None, Some(_)) => Some(Media::Json),
            (Some(g), Some(j)) => {
                let gr_first = if g.0 != j.0 {
                    g.0 > j.0
                } else if g.1 != j.1 {
                    g.1 > j.1
                } else if g.1 == 3 {
                    g.2 < j.2
                } else {
                    false // the same wildcard: application/json
                };
                Some(if gr_first {
                    Media::GraphqlResponse
                } else {
                    Media::Json
                })
            }
        }
    }

    pub fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Media::GraphqlResponse => Self::GRAPHQL_RESPONSE_JSON,
            Media::Json => Self::JSON,
        })
    }

    /// The status of an answer made of request errors only (nothing was executed).
    pub fn request_error_status(self) -> StatusCode {
        match self {
            Media::GraphqlResponse => StatusCode::BAD_REQUEST,
            Media::Json => StatusCode::OK,
        }
    }

    /// A body in this media type, 200.
    pub fn answer(self, body: Bytes) -> Response {
        let mut resp = Response::new(body.into());
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, self.content_type());
        resp
    }

    /// A GraphQL answer of one error (no `data`) with this status, code and reason.
    pub fn error(self, status: StatusCode, code: &str, reason: &str, message: &str) -> Response {
        let body = serde_json::json!({
            "errors": [{ "message": message, "extensions": { "code": code, "reason": reason } }],
        });
        let mut resp = self.answer(Bytes::from(body.to_string()));
        *resp.status_mut() = status;
        resp
    }
}

/// Whether the client takes HTML (a browser opening `/graphql`: the GraphiQL console).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|a| fit(a, "text/html").is_some_and(|(q, s, _)| s == 3 && q > 0.0))
}

/// Whether a POST body is declared as JSON in UTF-8 (`application/json`, no charset or
/// `charset=utf-8`): the only request media type we read.
pub fn is_json_body(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = ct.split(';');
    if !parts
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    {
        return false;
    }
    parts.all(|p| match p.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            let v = v.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    })
}

/// Why an HTTP request is not a GraphQL request we can run: answered with
/// `extensions.code = "BAD_REQUEST"`, this `reason` and status.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    fn bad_parameter(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason: "BAD_PARAMETER",
            message: message.into(),
        }
    }

    /// A POST body that is not `application/json` (415).
    pub fn unsupported_media_type() -> Self {
        Self {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            reason: "UNSUPPORTED_MEDIA_TYPE",
            message: "Send the request as Content-Type: application/json (UTF-8), a JSON object \
                      {\"query\": \"…\", \"variables\": {…}}."
                .into(),
        }
    }

    /// An `Accept` that allows neither of our media types (406).
    pub fn not_acceptable() -> Self {
        Self {
            status: StatusCode::NOT_ACCEPTABLE,
            reason: "NOT_ACCEPTABLE",
            message: "The answer is application/graphql-response+json or application/json; \
                      accept one of them."
                .into(),
        }
    }

    /// A mutation sent with GET (405, `Allow: POST`).
    pub fn mutation_over_get() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            reason: "METHOD_NOT_ALLOWED",
            message: "Mutations are sent with POST; GET runs queries only.".into(),
        }
    }

    /// The answer, in `media`.
    pub fn into_response(self, media: Media) -> Response {
        let mut resp = media.error(self.status, "BAD_REQUEST", self.reason, &self.message);
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        resp
    }
}

/// A request's parameters as sent: `null` is the same as leaving one out; others are checked.
#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    query: Option<serde_json::Value>,
    #[serde(default, rename = "operationName")]
    operation_name: Option<serde_json::Value>,
    #[serde(default)]
    variables: Option<serde_json::Value>,
    #[serde(default)]
    extensions: Option<serde_json::Value>,
}

fn request(w: Wire) -> Result<Request, Refusal> {
    let query = match w.query {
        Some(serde_json::Value::String(q)) => q,
        None => {
            return Err(Refusal::bad_parameter(
                "The request has no query: send {\"query\": \"{ … }\"}.",
            ));
        }
        Some(_) => return Err(Refusal::bad_parameter("query must be a string.")),
    };
    let mut req = Request::new(query);
    match w.operation_name {
        None => {}
        Some(serde_json::Value::String(name)) if name.is_empty() => {}
        Some(serde_json::Value::String(name)) => req = req.operation_name(name),
        Some(_) => return Err(Refusal::bad_parameter("operationName must be a string.")),
    }
    match w.variables {
        None => {}
        Some(v @ serde_json::Value::Object(_)) => req = req.variables(Variables::from_json(v)),
        Some(_) => {
            return Err(Refusal::bad_parameter(
                "variables must be an object (a map from names to values).",
            ));
        }
    }
    match w.extensions {
        None => {}
        Some(serde_json::Value::Object(map)) => {
            for (k, v) in map {
                if let Ok(v) = async_graphql::Value::from_json(v) {
                    req.extensions.0.insert(k, v);
                }
            }
        }
        Some(_) => return Err(Refusal::bad_parameter("extensions must be an object.")),
    }
    Ok(req)
}

/// A POST body (JSON) as a GraphQL request: not JSON at all is `NOT_JSON`, JSON of the wrong
/// shape (not an object, no `query`, a parameter of the wrong type) `BAD_PARAMETER`, both 400.
/// Properties we do not know are ignored.
pub fn from_json_body(body: &[u8]) -> Result<Request, Refusal> {
    let wire: Wire = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            Refusal::bad_parameter(format!(
                "The body must be a JSON object {{\"query\": \"…\"}}: {e}"
            ))
        } else {
            Refusal {
                status: StatusCode::BAD_REQUEST,
                reason: "NOT_JSON",
                message: format!("The body is not JSON ({{\"query\": \"…\"}}): {e}"),
            }
        }
    })?;
    request(wire)
}

/// The query string of a GET as a GraphQL request: `variables` and `extensions` are JSON; an
/// empty parameter is a missing one.
pub fn from_query_string(query: &str) -> Result<Request, Refusal> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded_pairs(query).map_err(Refusal::bad_parameter)?;
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let json = |name: &str| -> Result<Option<serde_json::Value>, Refusal> {
        param(name)
            .map(|v| {
                serde_json::from_str(v).map_err(|e| {
                    Refusal::bad_parameter(format!("{name} must be JSON in the URL: {e}"))
                })
            })
            .transpose()
    };
    request(Wire {
        query: param("query").map(|q| serde_json::Value::String(q.to_owned())),
        operation_name: param("operationName").map(|n| serde_json::Value::String(n.to_owned())),
        variables: json("variables")?,
        extensions: json("extensions")?,
    })
}

fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, String> {
    let uri: axum::http::Uri = format!("/?{query}")
        .parse()
        .map_err(|e| format!("The query string is malformed: {e}"))?;
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .map_err(|e| format!("The query string is malformed: {e}"))
}

/// The type of the operation a request would run, when it can be told (the document parses and
/// the operation is determined); the parsed document is kept in the request. A document over
/// [`crate::limits::MAX_QUERY_BYTES`] is not parsed here (the limits refuse it).
pub fn operation_type(req: &mut Request) -> Option<OperationType> {
    if req.query.len() > crate::limits::MAX_QUERY_BYTES {
        return None;
    }
    let name = req.operation_name.clone();
    let doc = req.parsed_query().ok()?;
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), None) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        (DocumentOperations::Multiple(ops), Some(name)) => {
            ops.get(name.as_str()).map(|op| op.node.ty)
        }
        _ => None,
    }
}

/// Set once execution starts (by `input::InputErrorsAreValidation`): an answer without it is made
/// of request errors only.
#[derive(Default)]
pub struct Executed(AtomicBool);

impl Executed {
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The answer to a request that was refused before execution (parse, validation, operation,
/// variables, limits): its errors and no `data` entry, every error with an `extensions.code`
/// (`VALIDATION` unless it has one), 400 or 200 by the media type.
pub fn request_errors(mut errors: Vec<ServerError>, media: Media) -> Response {
    for e in &mut errors {
        let ext = e.extensions.get_or_insert_with(Default::default);
        if ext.get("code").is_none() {
            ext.set("code", "VALIDATION");
        }
        if ext.get("reason").is_none() {
            ext.set("reason", "INVALID");
        }
    }
    let body = serde_json::to_vec(&serde_json::json!({ "errors": errors }))
        .unwrap_or_else(|_| b"{\"errors\":[{\"message\":\"invalid request\"}]}".to_vec());
    let mut resp = media.answer(Bytes::from(body));
    *resp.status_mut() = media.request_error_status();
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn the_media_type_follows_accept() {
        use Media::*;
        assert_eq!(Media::negotiate(&HeaderMap::new()), Some(Json));
        for (a, m) in [
            ("application/graphql-response+json", Some(GraphqlResponse)),
            ("application/json", Some(Json)),
            ("*/*", Some(Json)),
            ("application/*", Some(Json)),
            (
                "application/graphql-response+json, application/json",
                Some(GraphqlResponse),
            ),
            (
                "application/json, application/graphql-response+json",
                Some(Json),
            ),
            (
                "application/graphql-response+json, application/json;q=0.9",
                Some(GraphqlResponse),
            ),
            (
                "application/graphql-response+json;q=0.5, application/json",
                Some(Json),
            ),
            (
                "application/graphql-response+json, */*;q=0.1",
                Some(GraphqlResponse),
            ),
            ("text/html,application/xhtml+xml,*/*;q=0.8", Some(Json)),
            ("Application/JSON; charset=utf-8", Some(Json)),
            ("application/json;q=0", None),
            ("text/html", None),
            ("application/xml, text/plain", None),
            ("*/*, application/json;q=0", Some(GraphqlResponse)),
        ] {
            assert_eq!(Media::negotiate(&accept(a)), m, "{a}");
        }
    }

    #[test]
    fn only_json_in_utf8_is_read() {
        let ct = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).expect("h"));
            is_json_body(&h)
        };
        assert!(ct("application/json"));
        assert!(ct("application/json; charset=utf-8"));
        assert!(ct("Application/Json;charset=\"UTF-8\""));
        assert!(!ct("application/json; charset=iso-8859-1"));
        assert!(!ct("text/plain;charset=UTF-8"));
        assert!(!ct("application/x-www-form-urlencoded"));
        assert!(!is_json_body(&HeaderMap::new()));
    }

    #[test]
    fn parameters_are_checked() {
        let ok = from_json_body(
            br#"{"query":"{ a }","operationName":null,"variables":null,"extensions":null,"other":1}"#,
        )
        .expect("ok");
        assert_eq!(ok.query, "{ a }");
        assert!(ok.operation_name.is_none());
        let ok = from_json_body(br#"{"query":"q","variables":{"a":1},"extensions":{"b":2}}"#)
            .expect("ok");
        assert!(ok.variables.contains_key(&async_graphql::Name::new("a")));
        assert!(ok.extensions.0.contains_key("b"));
        for (body, reason) in [
            (&br#"{ "not a JSON"#[..], "NOT_JSON"),
            (b"", "NOT_JSON"),
            (br#"{"qeury":"{ a }"}"#, "BAD_PARAMETER"),
            (br#"{"query":{"obj":"ect"}}"#, "BAD_PARAMETER"),
            (br#"{"query":0}"#, "BAD_PARAMETER"),
            (br#"{"query":false}"#, "BAD_PARAMETER"),
            (br#"{"query":["array"]}"#, "BAD_PARAMETER"),
            (br#"{"query":"q","operationName":0}"#, "BAD_PARAMETER"),
            (br#"{"query":"q","variables":"string"}"#, "BAD_PARAMETER"),
            (br#"{"query":"q","variables":["array"]}"#, "BAD_PARAMETER"),
            (br#"{"query":"q","extensions":false}"#, "BAD_PARAMETER"),
            (br#"[{"query":"q"}]"#, "BAD_PARAMETER"),
        ] {
            let e = from_json_body(body).expect_err("refused");
            assert_eq!(e.reason, reason, "{}", String::from_utf8_lossy(body));
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn a_get_reads_the_query_string() {
        let r = from_query_string(
            "query=query%20T(%24n%3A%20String!)%20%7B%20__type(name%3A%20%24n)%20%7B%20name%20%7D%20%7D&variables=%7B%22n%22%3A%22Query%22%7D&operationName=&extensions=",
        )
        .expect("ok");
        assert!(r.query.starts_with("query T($n: String!)"));
        assert!(r.operation_name.is_none());
        assert!(r.variables.contains_key(&async_graphql::Name::new("n")));
        assert_eq!(
            from_query_string("variables=%7B%7D")
                .expect_err("no query")
                .reason,
            "BAD_PARAMETER"
        );
        assert_eq!(
            from_query_string("query=%7Ba%7D&variables=%7Bnot")
                .expect_err("bad")
                .reason,
            "BAD_PARAMETER"
        );
        assert_eq!(
            from_query_string("query=%7Ba%7D&variables=%5B1%5D")
                .expect_err("an array")
                .reason,
            "BAD_PARAMETER"
        );
    }

    #[test]
    fn the_operation_type_is_told_before_running() {
        let ty = |q: &str, name: Option<&str>| {
            let mut r = Request::new(q);
            if let Some(n) = name {
                r = r.operation_name(n);
            }
            operation_type(&mut r)
        };
        assert_eq!(ty("{ a }", None), Some(OperationType::Query));
        assert_eq!(ty("mutation { a }", None), Some(OperationType::Mutation));
        assert_eq!(
            ty("query Q { a } mutation M { b }", Some("M")),
            Some(OperationType::Mutation)
        );
        assert_eq!(
            ty("query Q { a } mutation M { b }", Some("Q")),
            Some(OperationType::Query)
        );
        assert_eq!(ty("query Q { a } mutation M { b }", None), None);
        assert_eq!(ty("{", None), None);
    }
}
