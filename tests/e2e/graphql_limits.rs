//! What one GraphQL request may cost (issue 15, findings 1, 2, 3 and 8): fragment fan-out and alias
//! amplification are refused before anything runs, `availability` answers a window of days, the
//! remembered-answer cache is keyed by the normalised query and bounded, and the staff cookie cannot
//! be ridden by a cross-site `text/plain` post.

use std::sync::Arc;
use std::time::Duration;

use platform::staff::authz::Role;
use serde_json::{Value, json};

use crate::support::{demo_app, spawn_app};

fn code(answer: &Value) -> Option<&str> {
    answer["errors"][0]["extensions"]["code"].as_str()
}

fn reason(answer: &Value) -> Option<&str> {
    answer["errors"][0]["extensions"]["reason"].as_str()
}

fn message(answer: &Value) -> &str {
    answer["errors"][0]["message"].as_str().unwrap_or_default()
}

/// Fragments that each spread the previous one twice: 2^levels fields once expanded.
fn fan_out(levels: usize) -> String {
    let mut q = format!("query {{ ...F{levels} }}\nfragment F0 on Query {{ __typename }}\n");
    for i in 1..=levels {
        q.push_str(&format!(
            "fragment F{i} on Query {{ ...F{p} ...F{p} }}\n",
            p = i - 1
        ));
    }
    q
}

#[tokio::test]
async fn graphql_a_fragment_fan_out_of_30_levels_is_refused_before_it_is_expanded() {
    let app = spawn_app().await;
    let answer = app.graphql(&fan_out(30), json!({})).await;
    assert_eq!(code(&answer), Some("VALIDATION"), "{answer}");
    assert_eq!(reason(&answer), Some("TOO_COMPLEX"), "{answer}");
    assert!(message(&answer).contains("at most"), "{answer}");
    assert!(answer["data"].is_null(), "{answer}");
    // the same under one field: too many fields once expanded
    let nested = fan_out(30)
        .replace("query { ...F30 }", "query { __schema { ...F30 } }")
        .replace("on Query { __typename }", "on __Schema { description }")
        .replace(" on Query ", " on __Schema ");
    let answer = app.graphql(&nested, json!({})).await;
    assert_eq!(reason(&answer), Some("TOO_COMPLEX"), "{answer}");
    assert!(message(&answer).contains("too complex"), "{answer}");

    // a few levels stay within the limits and run
    let small = app.graphql(&fan_out(3), json!({})).await;
    assert!(small["errors"].is_null(), "{small}");
    assert_eq!(small["data"]["__typename"], "Query", "{small}");

    // too many fragments, too long a text
    let mut many = String::from("query { __typename }\n");
    for i in 0..40 {
        many.push_str(&format!("fragment G{i} on Query {{ __typename }}\n"));
    }
    let answer = app.graphql(&many, json!({})).await;
    assert_eq!(reason(&answer), Some("TOO_COMPLEX"), "{answer}");
    assert!(message(&answer).contains("too many fragments"), "{answer}");
    let long = format!("query {{ __typename {} }}", " ".repeat(40 * 1024));
    let answer = app.graphql(&long, json!({})).await;
    assert_eq!(reason(&answer), Some("TOO_COMPLEX"), "{answer}");
    assert!(message(&answer).contains("too large"), "{answer}");
}

async fn demo_venue(app: &crate::support::TestApp) -> String {
    let venues = app
        .graphql(r#"{ venues(city: "demo") { id name } }"#, json!({}))
        .await;
    venues["data"]["venues"]
        .as_array()
        .expect("venues")
        .iter()
        .find(|v| v["name"] == "市民ホール集団接種会場")
        .expect("the demo's mass venue")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

fn aliases(n: usize, fields: &str, args: &str) -> String {
    let body: String = (0..n)
        .map(|i| format!(r#" a{i}: availability(city: "demo", venueId: $v{args}) {{ {fields} }}"#))
        .collect();
    format!("query($v: UUID!) {{{body} }}")
}

#[tokio::test]
async fn graphql_two_hundred_aliases_of_availability_are_refused_before_anything_runs() {
    let app = demo_app().await;
    let venue = demo_venue(&app).await;
    let answer = app
        .graphql(&aliases(200, "id free mark", ""), json!({ "v": venue }))
        .await;
    assert_eq!(code(&answer), Some("VALIDATION"), "{answer}");
    assert_eq!(reason(&answer), Some("TOO_COMPLEX"), "{answer}");
    assert!(
        message(&answer).contains("too many top-level fields"),
        "{answer}"
    );
    assert!(answer["data"].is_null(), "nothing ran: {answer}");
    assert!(answer.to_string().len() < 1_000, "a short answer");

    // aliases hidden in a fragment count the same
    let in_fragment = format!(
        "query($v: UUID!) {{ ...A ...A }} fragment A on Query {{{} }}",
        (0..15)
            .map(|i| format!(r#" a{i}: availability(city: "demo", venueId: $v) {{ id }}"#))
            .collect::<String>()
    );
    let answer = app.graphql(&in_fragment, json!({ "v": venue })).await;
    assert_eq!(reason(&answer), Some("TOO_COMPLEX"), "{answer}");

    // twenty are fine
    let answer = app
        .graphql(&aliases(20, "id free mark", ""), json!({ "v": venue }))
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    assert!(!answer["data"]["a19"].as_array().expect("slots").is_empty());

    // list sizes count: twenty long windows of every field would be ~330,000 values, refused
    // before anything runs (graphql::limits::MAX_VALUES)
    let all = "id startsAt endsAt capacity free freeForSecondDose mark markText";
    let answer = app
        .graphql(&aliases(20, all, ", days: 62"), json!({ "v": venue }))
        .await;
    assert_eq!(code(&answer), Some("VALIDATION"), "{answer}");
    assert_eq!(reason(&answer), Some("TOO_LARGE"), "{answer}");
    assert!(message(&answer).contains("too large"), "{answer}");
    assert!(answer["data"].is_null(), "nothing ran: {answer}");
}

#[tokio::test]
async fn graphql_availability_answers_a_window_of_days() {
    let app = demo_app().await;
    let venue = demo_venue(&app).await;
    let q = "query($v: UUID!, $from: Date, $days: Int) { availability(city: \"demo\", venueId: $v, from: $from, days: $days) { id startsAt } }";
    let count = |a: &Value| a["data"]["availability"].as_array().map_or(0, Vec::len);
    // the demo's three weeks fit the default window: the same as today's answer
    let default = app.graphql(q, json!({ "v": venue })).await;
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM slots s JOIN venues v ON v.id = s.venue_id \
         WHERE v.name = '市民ホール集団接種会場' AND s.starts_at > now()",
    )
    .fetch_one(&app.owner)
    .await
    .expect("count");
    assert_eq!(count(&default) as i64, stored, "{default}");
    let week = app.graphql(q, json!({ "v": venue, "days": 7 })).await;
    assert!(count(&week) > 0 && count(&week) < count(&default), "{week}");
    let later = app
        .graphql(q, json!({ "v": venue, "from": "2099-01-01" }))
        .await;
    assert_eq!(count(&later), 0, "{later}");
    let too_long = app.graphql(q, json!({ "v": venue, "days": 63 })).await;
    assert_eq!(code(&too_long), Some("VALIDATION"), "{too_long}");
    assert!(message(&too_long).contains("days"), "{too_long}");
}

/// `/graphql` on its own over the test app's database, with the answer cache and deadline given.
fn api_alone(
    app: &crate::support::TestApp,
    cache: graphql::AnswerCache,
    deadline: Duration,
) -> axum::Router {
    let desk = platform::ResidentDesk::new(
        app.pool.clone(),
        platform::residents::auth::CodeSecret::random(),
        app.authz.tenant_cache(),
    );
    let schema = graphql::schema(
        app.pool.clone(),
        desk.clone(),
        app.authz.clone(),
        Arc::new(app.auth_policy.clone()),
    );
    graphql::router_with_cache(schema, desk, cache, deadline)
}

#[tokio::test]
async fn graphql_padded_variants_of_one_query_share_one_bounded_cache_entry() {
    let app = demo_app().await;
    let venue = demo_venue(&app).await;
    // the API on its own, with a cache the test can look into
    let cache = graphql::AnswerCache::new();
    let api = api_alone(&app, cache.clone(), Duration::from_secs(10));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, api).await });
    let client = reqwest::Client::new();
    let base = "query($v: UUID!) { availability(city: \"demo\", venueId: $v) { id free mark } }";
    let mut first: Option<Value> = None;
    for i in 0..60 {
        let pad = " \n,".repeat(i * 30);
        let query = base.replacen("{ id", &format!("{pad}{{{pad} id,{pad}"), 1);
        let answer: Value = client
            .post(format!("http://{addr}/graphql"))
            .json(&json!({ "query": query, "variables": { "v": venue } }))
            .send()
            .await
            .expect("POST")
            .json()
            .await
            .expect("JSON");
        assert!(answer["errors"].is_null(), "{answer}");
        match &first {
            None => first = Some(answer),
            Some(f) => assert_eq!(f, &answer),
        }
    }
    let stats = cache.stats();
    assert_eq!(stats.entries, 1, "{stats:?}");
    // each small spelling leads to that one answer as sent (found before its JSON is parsed); the
    // larger ones (over the remembered key's limit) only through the normalised query
    assert!(stats.aliases >= 1 && stats.aliases < 60, "{stats:?}");
    assert!(stats.bytes < 256 * 1024, "{stats:?}");
    assert!(stats.bytes <= graphql::MAX_REMEMBERED_BYTES);

    // padding beyond the query limit is refused and remembers nothing
    let padded = base.replacen("{ id", &format!("{}{{ id", " ".repeat(1_900_000)), 1);
    let answer: Value = client
        .post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": padded, "variables": { "v": venue } }))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(reason(&answer), Some("TOO_COMPLEX"), "{answer}");
    assert_eq!(cache.stats().entries, 1);
}

#[tokio::test]
async fn graphql_the_staff_cookie_needs_json_from_the_same_origin() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let admin = app
        .staff_client("admin@yokohama.example", Some((a.id, Role::CityAdmin, &[])))
        .await;
    let cookie = admin.cookie_header();
    let vaccines = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM vaccines WHERE name LIKE 'CSRF%'")
            .fetch_one(&app.owner)
            .await
            .expect("count")
    };
    let mutation = |name: &str| {
        json!({ "query": format!("mutation {{ createVaccine(city: \"yokohama\", input: {{ name: \"{name}\", maker: \"M\", doses: 2, minIntervalDays: 21, boosterIntervalMonths: 6, daysUntilEffective: 7, validityDays: 180 }}) {{ vaccine {{ id }} errors {{ code }} }} }}") }).to_string()
    };

    // a cross-site form post: text/plain, another origin
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("cookie", &cookie)
        .header("content-type", "text/plain")
        .header("origin", "https://evil.example")
        .body(mutation("CSRF text"))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 403);
    let answer: Value = res.json().await.expect("JSON");
    assert_eq!(code(&answer), Some("FORBIDDEN"), "{answer}");
    assert!(message(&answer).contains("application/json"), "{answer}");
    // text/plain without an Origin, too
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("cookie", &cookie)
        .header("content-type", "text/plain")
        .body(mutation("CSRF plain"))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 403);
    // JSON from another origin
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("cookie", &cookie)
        .header("content-type", "application/json")
        .header("origin", "https://evil.example")
        .body(mutation("CSRF origin"))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 403);
    let answer: Value = res.json().await.expect("JSON");
    assert!(message(&answer).contains("Origin"), "{answer}");
    assert_eq!(vaccines().await, 0, "nothing was created");

    // JSON without an Origin (scripts, GraphiQL in older browsers) and from the same origin work
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("cookie", &cookie)
        .header("content-type", "application/json")
        .body(mutation("CSRF ok 1"))
        .send()
        .await
        .expect("POST");
    let answer: Value = res.json().await.expect("JSON");
    assert!(answer["errors"].is_null(), "{answer}");
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("cookie", &cookie)
        .header("content-type", "application/json; charset=utf-8")
        .header("origin", format!("http://{}", app.addr))
        .body(mutation("CSRF ok 2"))
        .send()
        .await
        .expect("POST");
    let answer: Value = res.json().await.expect("JSON");
    assert!(answer["errors"].is_null(), "{answer}");
    assert_eq!(vaccines().await, 2);

    // an API key is no cookie: JSON from any origin is fine (a text/plain body is refused with
    // 415 whoever sends it: GraphQL over HTTP reads application/json; graphql_http.rs)
    let staff = app
        .staff("keys@yokohama.example", Some((a.id, Role::CityAdmin, &[])))
        .await;
    let actor = platform::staff::authz::Actor::staff(staff.id, &staff.email, None);
    let mut scope = app
        .authz
        .enter(
            &actor,
            a.id,
            platform::staff::authz::Object::ApiKeys,
            platform::staff::authz::Act::Write,
        )
        .await
        .expect("scope");
    let (_, key) =
        platform::staff::api_keys::create(&mut scope, &app.authz, "w", &["config:write".into()])
            .await
            .expect("key");
    scope.commit().await.expect("commit");
    let res = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&key)
        .header("content-type", "text/plain")
        .header("origin", "https://integrator.example")
        .body(mutation("CSRF key"))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 415);
    assert_eq!(vaccines().await, 2);
    let res = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .header("origin", "https://integrator.example")
        .body(mutation("CSRF key"))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.expect("JSON");
    assert!(answer["errors"].is_null(), "{answer}");
    assert_eq!(vaccines().await, 3);
}

#[tokio::test]
async fn graphql_execution_past_its_deadline_is_stopped_and_answers_timeout() {
    let app = demo_app().await;
    let venue = demo_venue(&app).await;
    // The execution has to wait for the database past its deadline, whatever the machine's speed:
    // the slots are locked until the answer has come (a deadline of zero alone is not enough: the
    // timer fires at the next millisecond, and a quick database can answer before it).
    let mut blocker = app.owner.begin().await.expect("begin");
    sqlx::query("LOCK TABLE slots IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .expect("lock the slots");
    let api = api_alone(&app, graphql::AnswerCache::new(), Duration::from_millis(50));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, api).await });
    let res = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        // (without a deadline the answer would wait for the lock: fail instead of hanging)
        .timeout(Duration::from_secs(10))
        .json(&json!({
            "query": "query($v: UUID!) { availability(city: \"demo\", venueId: $v) { id free } }",
            "variables": { "v": venue }
        }))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let answer: Value = res.json().await.expect("JSON");
    assert_eq!(code(&answer), Some("TIMEOUT"), "{answer}");
    assert_eq!(reason(&answer), Some("DEADLINE"), "{answer}");
    assert!(message(&answer).contains("try again"), "{answer}");
    blocker.rollback().await.expect("unlock");
    // the stopped work left nothing behind: the same read answers through the app's own deadline
    let later = app
        .graphql(
            "query($v: UUID!) { availability(city: \"demo\", venueId: $v) { id free } }",
            json!({ "v": venue }),
        )
        .await;
    assert!(later["errors"].is_null(), "{later}");
    assert!(
        later["data"]["availability"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{later}"
    );
}
