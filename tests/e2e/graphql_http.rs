//! GraphQL over HTTP (issue 17, acceptance 5): the standard introspection query is answered within
//! the limits, the answer's media type follows `Accept`, requests that cannot run answer 400 with
//! `application/graphql-response+json` (200 with `application/json`) and carry no `data`, GET runs
//! queries and never mutations, and graphql-http's audit finds no MUST or SHOULD failure.

use std::time::{Duration, Instant};

use platform::staff::authz::{Act, Actor, Object, Role};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};

use crate::support::{TestApp, demo_app, spawn_app};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
/// graphql-js 16.15 `getIntrospectionQuery()`, as written (the audit script checks the text).
const INTROSPECTION: &str = include_str!("../../graphql/fixtures/introspection.graphql");
/// The same with every option on (descriptions, specifiedByURL, isRepeatable, schema description,
/// deprecated input values, isOneOf), as newer GraphiQL versions send it.
const INTROSPECTION_ALL: &str =
    include_str!("../../graphql/fixtures/introspection-all-options.graphql");

/// POSTs a JSON body with this Accept (none if empty); returns status, content type and JSON.
async fn post(app: &TestApp, accept: &str, body: &Value) -> (u16, String, Value) {
    let mut req = app
        .client
        .post(app.url("/graphql"))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if !accept.is_empty() {
        req = req.header(ACCEPT, accept);
    }
    answer(req.send().await.expect("POST /graphql")).await
}

/// `/graphql` with these query-string parameters (URL-encoded).
fn get_url(app: &TestApp, params: &[(&str, &str)]) -> String {
    url::Url::parse_with_params(&app.url("/graphql"), params)
        .expect("url")
        .to_string()
}

async fn get(app: &TestApp, accept: &str, query: &[(&str, &str)]) -> (u16, String, Value) {
    let mut req = app.client.get(get_url(app, query));
    if !accept.is_empty() {
        req = req.header(ACCEPT, accept);
    }
    answer(req.send().await.expect("GET /graphql")).await
}

async fn answer(res: reqwest::Response) -> (u16, String, Value) {
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, ct, json)
}

fn code(answer: &Value) -> (&str, &str) {
    let ext = &answer["errors"][0]["extensions"];
    (
        ext["code"].as_str().unwrap_or("-"),
        ext["reason"].as_str().unwrap_or("-"),
    )
}

/// An API key of `city` with these scopes.
async fn api_key(app: &TestApp, city: tenants::TenantId, scopes: &[&str]) -> String {
    let staff = app
        .staff(
            &format!("keys-{}@http.example", uuid::Uuid::new_v4().simple()),
            Some((city, Role::CityAdmin, &[])),
        )
        .await;
    let actor = Actor::staff(staff.id, &staff.email, None);
    let mut scope = app
        .authz
        .enter(&actor, city, Object::ApiKeys, Act::Write)
        .await
        .expect("scope");
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    let (_, key) = platform::staff::api_keys::create(&mut scope, &app.authz, "http", &scopes)
        .await
        .expect("key");
    scope.commit().await.expect("commit");
    key
}

#[tokio::test]
async fn graphql_http_the_standard_introspection_query_is_answered() {
    let app = spawn_app().await;
    for (what, query) in [
        ("getIntrospectionQuery()", INTROSPECTION),
        ("every option on", INTROSPECTION_ALL),
    ] {
        for accept in [GRAPHQL_RESPONSE, "application/json", ""] {
            let (status, _, answer) = post(
                &app,
                accept,
                &json!({ "query": query, "operationName": "IntrospectionQuery" }),
            )
            .await;
            assert_eq!(status, 200, "{what}, {accept}: {answer}");
            assert!(answer["errors"].is_null(), "{what}, {accept}: {answer}");
            let schema = &answer["data"]["__schema"];
            assert_eq!(schema["queryType"]["name"], "Query", "{what}");
            assert_eq!(schema["mutationType"]["name"], "Mutation", "{what}");
            let types = schema["types"].as_array().expect("types");
            let query_type = types
                .iter()
                .find(|t| t["name"] == "Query")
                .expect("the Query type");
            assert!(
                query_type["fields"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f["name"] == "availability")),
                "{what}"
            );
            // the TypeRef nesting is answered: `[X!]!` reaches its named type
            let list_field = types
                .iter()
                .flat_map(|t| t["fields"].as_array().into_iter().flatten())
                .find(|f| f["type"]["kind"] == "NON_NULL" && f["type"]["ofType"]["kind"] == "LIST")
                .expect("a non-null list field");
            assert!(
                list_field["type"]["ofType"]["ofType"]["ofType"]["name"].is_string(),
                "{list_field}"
            );
        }
    }
    // over GET too (what a CDN-cached codegen step may send)
    let (status, ct, answer) = get(&app, GRAPHQL_RESPONSE, &[("query", INTROSPECTION)]).await;
    assert_eq!(status, 200, "{answer}");
    assert!(ct.starts_with(GRAPHQL_RESPONSE), "{ct}");
    assert!(answer["data"]["__schema"]["types"].is_array(), "{answer}");

    // a fragment fan-out inside introspection is still refused, and fast
    let mut bomb = String::from(
        "query { __schema { ...F30 } }\nfragment F0 on __Schema { types { ...FullType } }\n",
    );
    for i in 1..=30 {
        bomb.push_str(&format!(
            "fragment F{i} on __Schema {{ ...F{p} ...F{p} }}\n",
            p = i - 1
        ));
    }
    bomb.push_str(&INTROSPECTION[INTROSPECTION.find("fragment FullType").expect("FullType")..]);
    // and so are lists of lists of lists, aliased
    let names: String = (0..60).map(|i| format!(" n{i}: name")).collect();
    let lists =
        format!("{{ __schema {{ types {{ fields {{ type {{ fields {{{names} }} }} }} }} }} }}");
    for (what, q) in [("fan-out", bomb), ("lists of lists", lists)] {
        let mut fastest = Duration::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            let (status, _, answer) = post(&app, GRAPHQL_RESPONSE, &json!({ "query": q })).await;
            fastest = fastest.min(started.elapsed());
            assert_eq!(status, 400, "{what}: {answer}");
            assert_eq!(
                code(&answer),
                ("VALIDATION", "TOO_COMPLEX"),
                "{what}: {answer}"
            );
            assert!(answer.get("data").is_none(), "{what}: {answer}");
        }
        assert!(
            fastest < Duration::from_millis(50),
            "{what} refused in {fastest:?}"
        );
    }
}

#[tokio::test]
async fn graphql_http_the_answer_media_type_follows_accept() {
    let app = spawn_app().await;
    let q = json!({ "query": "{ __typename }" });
    for (accept, expected) in [
        ("", "application/json; charset=utf-8"),
        ("application/json", "application/json; charset=utf-8"),
        ("*/*", "application/json; charset=utf-8"),
        (
            GRAPHQL_RESPONSE,
            "application/graphql-response+json; charset=utf-8",
        ),
        (
            "application/graphql-response+json, application/json;q=0.9",
            "application/graphql-response+json; charset=utf-8",
        ),
        (
            "application/graphql-response+json;q=0.5, application/json",
            "application/json; charset=utf-8",
        ),
    ] {
        let (status, ct, answer) = post(&app, accept, &q).await;
        assert_eq!(status, 200, "{accept}: {answer}");
        assert_eq!(ct, expected, "Accept: {accept}");
        assert_eq!(answer, json!({ "data": { "__typename": "Query" } }));
    }
    // nothing we can answer in: 406, and nothing runs
    for accept in ["text/html", "application/xml", "application/json;q=0"] {
        let (status, _, answer) = post(&app, accept, &q).await;
        assert_eq!(status, 406, "{accept}: {answer}");
        assert_eq!(code(&answer), ("BAD_REQUEST", "NOT_ACCEPTABLE"), "{answer}");
    }
}

#[tokio::test]
async fn graphql_http_requests_that_cannot_run_answer_400_without_data() {
    let app = demo_app().await;
    // (what, body, code and reason, status with graphql-response+json, status with json)
    type Case = (&'static str, String, (&'static str, &'static str), u16, u16);
    let cases: Vec<Case> = vec![
        (
            "a document that does not parse",
            json!({ "query": "{" }).to_string(),
            ("VALIDATION", "SYNTAX"),
            400,
            200,
        ),
        (
            "an unknown field",
            json!({ "query": "{ nope }" }).to_string(),
            ("VALIDATION", "INVALID"),
            400,
            200,
        ),
        (
            "an argument of the wrong type",
            json!({ "query": "query($s: Int!) { tenant(city: $s) { name } }", "variables": { "s": 1 } })
                .to_string(),
            ("VALIDATION", "INVALID"),
            400,
            200,
        ),
        (
            "a required variable left out",
            json!({ "query": "query($s: String!) { tenant(city: $s) { name } }" }).to_string(),
            ("VALIDATION", "INVALID"),
            400,
            200,
        ),
        (
            "a required variable null",
            json!({ "query": "query($s: String!) { tenant(city: $s) { name } }", "variables": { "s": null } })
                .to_string(),
            ("VALIDATION", "INVALID"),
            400,
            200,
        ),
        (
            "no operation named so",
            json!({ "query": "query A { __typename }", "operationName": "B" }).to_string(),
            ("VALIDATION", "INVALID"),
            400,
            200,
        ),
        (
            "two operations and no name",
            json!({ "query": "query A { __typename } query B { __typename }" }).to_string(),
            ("VALIDATION", "INVALID"),
            400,
            200,
        ),
        (
            "a document over the limits",
            json!({ "query": format!("{{ {} }}", (0..30).map(|i| format!("a{i}: __typename")).collect::<Vec<_>>().join(" ")) })
                .to_string(),
            ("VALIDATION", "TOO_COMPLEX"),
            400,
            200,
        ),
        (
            "too deep",
            json!({ "query": format!("{{ {}x{} }}", "a { ".repeat(12), " }".repeat(12)) })
                .to_string(),
            ("VALIDATION", "TOO_COMPLEX"),
            400,
            200,
        ),
        // not a GraphQL request at all: 400 under both
        (
            "a body that is not JSON",
            "{ \"not a JSON".to_owned(),
            ("BAD_REQUEST", "NOT_JSON"),
            400,
            400,
        ),
        (
            "no query",
            json!({ "qeury": "{ __typename }" }).to_string(),
            ("BAD_REQUEST", "BAD_PARAMETER"),
            400,
            400,
        ),
        (
            "variables that are not a map",
            json!({ "query": "{ __typename }", "variables": [7] }).to_string(),
            ("BAD_REQUEST", "BAD_PARAMETER"),
            400,
            400,
        ),
    ];
    for (what, body, expected, status_gr, status_json) in cases {
        for (accept, status) in [
            (GRAPHQL_RESPONSE, status_gr),
            ("application/json", status_json),
        ] {
            let res = app
                .client
                .post(app.url("/graphql"))
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, accept)
                .body(body.clone())
                .send()
                .await
                .expect("POST");
            let (got, ct, answer) = self::answer(res).await;
            assert_eq!(got, status, "{what}, {accept}: {answer}");
            assert!(ct.starts_with(accept), "{what}: {ct}");
            assert_eq!(code(&answer), expected, "{what}, {accept}: {answer}");
            assert!(
                answer.get("data").is_none(),
                "{what}: a request error has no data entry: {answer}"
            );
            assert!(
                answer["errors"][0]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{what}: {answer}"
            );
        }
    }

    // executed, with a field error: 200 and data under both media types
    for accept in [GRAPHQL_RESPONSE, "application/json"] {
        let (status, _, answer) = post(
            &app,
            accept,
            &json!({ "query": "{ city(city: \"demo\") { slug } }" }),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert!(answer.get("data").is_some(), "{answer}");
        assert_eq!(code(&answer).0, "FORBIDDEN", "{answer}");
    }

    // a body that is not application/json: 415, even with an API key (the cookie's own refusal,
    // 403 CROSS_SITE, is in graphql_limits.rs)
    let city = app.demo_tenant().await;
    let key = api_key(&app, city.id, &["config:write"]).await;
    for ct in [
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&key)
            .header(ACCEPT, GRAPHQL_RESPONSE)
            .body(json!({ "query": "{ __typename }" }).to_string());
        if let Some(ct) = ct {
            req = req.header(CONTENT_TYPE, ct);
        }
        let (status, _, answer) = self::answer(req.send().await.expect("POST")).await;
        assert_eq!(status, 415, "{ct:?}: {answer}");
        assert_eq!(
            code(&answer),
            ("BAD_REQUEST", "UNSUPPORTED_MEDIA_TYPE"),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn graphql_http_get_runs_queries_and_never_mutations() {
    let app = demo_app().await;
    let (status, ct, answer) = get(
        &app,
        "",
        &[
            (
                "query",
                "query T($s: String!) { tenant(city: $s) { name } }",
            ),
            ("variables", r#"{"s":"demo"}"#),
            ("operationName", "T"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(ct, "application/json; charset=utf-8");
    assert_eq!(
        answer,
        json!({ "data": { "tenant": { "name": "デモ市" } } })
    );
    // a browser's Accept with a query: the answer, not the console
    let (status, ct, answer) = get(
        &app,
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        &[("query", "{ tenant(city: \"demo\") { slug } }")],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(answer["data"]["tenant"]["slug"], "demo");
    // a document that does not validate: 400 with graphql-response+json
    let (status, _, answer) = get(&app, GRAPHQL_RESPONSE, &[("query", "{ nope }")]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.get("data").is_none(), "{answer}");

    // mutations: 405 with Allow: POST, and nothing is written — with an API key that may write
    let city = app.demo_tenant().await;
    let key = api_key(&app, city.id, &["config:write"]).await;
    let vaccines = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM vaccines WHERE name = 'GET vaccine'")
            .fetch_one(&app.owner)
            .await
            .expect("count")
    };
    let create = "mutation M { createVaccine(city: \"demo\", input: { name: \"GET vaccine\", maker: \"M\", doses: 2, minIntervalDays: 21, boosterIntervalMonths: 6, daysUntilEffective: 7, validityDays: 180 }) { vaccine { id } errors { code } } }";
    for (query, operation) in [
        (create.to_owned(), None),
        (format!("query Q {{ __typename }} {create}"), Some("M")),
    ] {
        let mut params = vec![("query", query.as_str())];
        if let Some(op) = operation {
            params.push(("operationName", op));
        }
        for accept in [GRAPHQL_RESPONSE, "application/json", ""] {
            let mut req = app.client.get(get_url(&app, &params)).bearer_auth(&key);
            if !accept.is_empty() {
                req = req.header(ACCEPT, accept);
            }
            let res = req.send().await.expect("GET");
            assert_eq!(res.status(), 405, "{accept}");
            assert_eq!(res.headers()["allow"], "POST");
            let (_, _, answer) = self::answer(res).await;
            assert_eq!(
                code(&answer),
                ("BAD_REQUEST", "METHOD_NOT_ALLOWED"),
                "{answer}"
            );
        }
    }
    assert_eq!(vaccines().await, 0, "nothing was created over GET");
    // the same key over POST may (the mutation is fine, only the method was wrong)
    let created = app.graphql_with_key(&key, create, json!({})).await;
    assert!(created["errors"].is_null(), "{created}");
    assert_eq!(
        created["data"]["createVaccine"]["errors"],
        json!([]),
        "{created}"
    );
    assert_eq!(vaccines().await, 1);

    // a GET never rides the staff cookie: staff fields answer as for a stranger
    let admin = app
        .staff_client("admin@get.example", Some((city.id, Role::CityAdmin, &[])))
        .await;
    let res = app
        .client
        .get(get_url(
            &app,
            &[("query", "{ city(city: \"demo\") { slug } }")],
        ))
        .header("cookie", admin.cookie_header())
        .send()
        .await
        .expect("GET");
    let (status, _, answer) = self::answer(res).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(code(&answer).0, "FORBIDDEN", "{answer}");
    assert!(answer["data"]["city"].is_null(), "{answer}");

    // GraphiQL only for a browser that sends no query; anyone else is told what is missing
    let res = app
        .client
        .get(app.url("/graphql"))
        .header(ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()[CONTENT_TYPE]
            .to_str()
            .is_ok_and(|c| c.starts_with("text/html"))
    );
    assert!(res.text().await.expect("page").contains("graphiql"));
    for accept in ["*/*", "application/json", GRAPHQL_RESPONSE] {
        let (status, _, answer) = get(&app, accept, &[]).await;
        assert_eq!(status, 400, "{accept}: {answer}");
        assert_eq!(code(&answer), ("BAD_REQUEST", "BAD_PARAMETER"), "{answer}");
    }
}

#[tokio::test]
async fn graphql_http_the_graphql_http_audit_finds_no_must_or_should_failure() {
    let app = spawn_app().await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/graphql-http-audit");
    assert!(
        std::path::Path::new(dir)
            .join("node_modules/graphql-http/package.json")
            .exists(),
        "the audit's modules are missing: run `npm ci` in .ci/graphql-http-audit (.ci/run does)"
    );
    let out = tokio::process::Command::new("node")
        .arg("audit.mjs")
        .arg(app.url("/graphql"))
        .current_dir(dir)
        .output()
        .await
        .unwrap_or_else(|e| panic!("node (20 or later) is needed for the audit: {e}"));
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the audit failed:\n{report}");
    assert!(
        report.contains("0 warnings (SHOULD), 0 errors (MUST)"),
        "{report}"
    );
    assert!(report.contains("buildClientSchema read"), "{report}");
}

#[tokio::test]
async fn graphql_http_graphiql_reads_the_schema_in_a_browser() {
    // GraphiQL introspects the schema as it opens (graphql-js's query, deprecated input values
    // included); with the depth limit of old it showed "nested too deep" and no documentation
    let app = spawn_app().await;
    let browser = crate::browser::launch(crate::browser::DESKTOP).await;
    let page = browser.open(&app.url("/graphql")).await;
    let script = r#"(() => {
        const show = [...document.querySelectorAll('button')]
            .find(b => (b.getAttribute('aria-label') || '').startsWith('Show Documentation'));
        if (show) show.click();
        const docs = document.querySelector('.graphiql-doc-explorer');
        return docs ? docs.innerText : '';
    })()"#;
    let mut docs = String::new();
    for _ in 0..150 {
        docs = page
            .evaluate(script)
            .await
            .ok()
            .and_then(|v| v.into_value::<String>().ok())
            .unwrap_or_default();
        if docs.contains("Query") && docs.contains("Mutation") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await;
    assert!(
        docs.contains("Query") && docs.contains("Mutation"),
        "GraphiQL's documentation explorer shows no schema: {docs:?}"
    );
}
