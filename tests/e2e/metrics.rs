//! Issue 19: Prometheus metrics on the admin listener (docs/operations.md, "Metrics").

use serde_json::json;

use crate::support::{Options, spawn_app_with};

const BOOK: &str =
    "mutation($input: BookInput!) { book(input: $input) { bookings { id } errors { code } } }";

/// The value of the sample `name{…}` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (inside, value) = rest.rsplit_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| inside.split(',').any(|l| l == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

#[tokio::test]
async fn metrics_count_a_booking_and_time_requests_on_the_admin_listener_only() {
    let app = spawn_app_with(Options {
        demo: true,
        metrics: true,
        ..Options::default()
    })
    .await;
    let admin = app.admin.expect("the admin listener is open");
    assert_ne!(admin.port(), app.addr.port());
    // not on the public port, whoever asks
    assert_eq!(app.get("/metrics").await.status(), 404);

    let tenant = app.demo_tenant().await.id.to_string();
    let token = app.resident_token(3).await;
    let slot = app.demo_slot(0).await;
    let booked = app
        .graphql_as(
            &token,
            "en",
            BOOK,
            json!({ "input": { "slotId": slot, "dose": "FIRST", "idempotencyKey": "metrics-book-1" } }),
        )
        .await;
    assert!(booked["errors"].is_null(), "{booked}");
    assert_eq!(booked["data"]["book"]["errors"], json!([]), "{booked}");
    // the same dose again under another key: refused, and counted as such
    let again = app
        .graphql_as(
            &token,
            "en",
            BOOK,
            json!({ "input": { "slotId": slot, "dose": "FIRST", "idempotencyKey": "metrics-book-2" } }),
        )
        .await;
    assert_eq!(
        again["data"]["book"]["errors"][0]["code"], "CONFLICT",
        "{again}"
    );
    // a page under two path parameters (a redirect to the login for a stranger)
    let venue = app.venue_of(slot).await;
    app.get(&format!("/t/demo/venues/{venue}")).await;
    // availability read twice: from PostgreSQL, then (within a second) from memory
    for _ in 0..2 {
        let read = app
            .graphql(
                "query($v: UUID!) { availability(city: \"demo\", venueId: $v) { id free } }",
                json!({ "v": venue }),
            )
            .await;
        assert!(read["errors"].is_null(), "{read}");
    }

    let res = app
        .client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain"))
    );
    let text = res.text().await.expect("body");
    let of_this_city = |outcome| {
        sample(
            &text,
            "yoyaku_bookings_total",
            &[
                ("tenant", &tenant),
                ("door", "resident"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(of_this_city("booked"), Some(1.0), "{text}");
    assert_eq!(of_this_city("already_booked"), Some(1.0), "{text}");
    // the latency histogram of the GraphQL route, by template, with buckets
    let graphql = [("route", "/graphql"), ("method", "POST"), ("status", "200")];
    assert!(
        sample(
            &text,
            "yoyaku_http_request_duration_seconds_count",
            &graphql
        )
        .is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "yoyaku_http_request_duration_seconds_bucket",
            &[("route", "/graphql"), ("le", "+Inf")]
        )
        .is_some(),
        "{text}"
    );
    // a page under a path parameter is counted by its template, not its path
    assert!(
        sample(
            &text,
            "yoyaku_http_requests_total",
            &[("route", "/t/{tenant}/venues/{venue}"), ("method", "GET")]
        )
        .is_some(),
        "{text}"
    );
    assert!(
        !text.contains("route=\"/t/demo/"),
        "raw paths leaked: {text}"
    );
    // GraphQL by operation: its type and first root field, never the client's operation name
    assert!(
        sample(
            &text,
            "yoyaku_graphql_operations_total",
            &[("operation", "mutation.book"), ("outcome", "ok")]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "yoyaku_graphql_operation_duration_seconds_count",
            &[("operation", "query.availability")]
        )
        .is_some(),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "yoyaku_availability_cache_total",
            &[("result", "miss")]
        )
        .is_some()
    );
    assert!(text.contains("yoyaku_db_pool_max_connections 20"), "{text}");
}

/// Issue 15 (`/healthz` within 50 ms during the attacks): a document whose answer is estimated
/// wide (`graphql::limits::estimated_values`) resolves off the runtime's workers — on a
/// multi-thread runtime, as the binary's — answers in full, and is counted; one estimated above
/// `graphql::limits::MAX_VALUES` is refused before it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_graphql_answer_runs_off_the_workers_answers_in_full_and_is_counted_and_a_wider_one_is_refused()
 {
    let app = spawn_app_with(Options {
        demo: true,
        metrics: true,
        ..Options::default()
    })
    .await;
    let admin = app.admin.expect("the admin listener is open");
    let venue = app.venue_of(app.demo_slot(0).await).await;
    let one = app
        .graphql(
            "query($v: UUID!) { availability(city: \"demo\", venueId: $v, days: 62) { id } }",
            json!({ "v": venue }),
        )
        .await;
    let slots = one["data"]["availability"].as_array().map_or(0, Vec::len);
    assert!(slots > 0, "{one}");
    let aliases = |n: usize| {
        format!(
            "query($v: UUID!) {{ {} }}",
            (0..n)
                .map(|i| format!(
                    "a{i}: availability(city: \"demo\", venueId: $v, days: 62) {{ id startsAt free mark }}"
                ))
                .collect::<String>()
        )
    };
    // estimated above graphql::limits::MAX_VALUES (20 × 62 days × 30 slots × 5 values): refused
    // before it runs (the message gives the estimate, not the bytes of an executed answer) with a
    // message that says what to do
    let refused = app.graphql(&aliases(20), json!({ "v": venue })).await;
    assert!(refused["data"].is_null(), "{refused}");
    assert_eq!(
        refused["errors"][0]["extensions"]["reason"], "TOO_LARGE",
        "{refused}"
    );
    let message = refused["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("estimated at 186000 values") && message.contains("fewer aliases"),
        "{message}"
    );
    let scrape = || async {
        app.client
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("body")
    };
    let wide_runs = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("yoyaku_graphql_wide_executions_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // the widest allowed (10 aliases: 93,000 values estimated) is answered in full, off the workers
    let answer = app.graphql(&aliases(10), json!({ "v": venue })).await;
    assert!(answer["errors"].is_null(), "{answer}");
    for i in 0..10 {
        assert_eq!(
            answer["data"][format!("a{i}")].as_array().map(Vec::len),
            Some(slots),
            "alias a{i}"
        );
    }
    let text = scrape().await;
    assert!(wide_runs(&text) >= 1.0, "{text}");
}
