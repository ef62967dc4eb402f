use serde_json::json;

use crate::support::{demo_app, spawn_app};

#[tokio::test]
async fn the_demo_municipality_is_created_on_an_empty_database_and_answers_graphql() {
    let app = demo_app().await;
    let answer = app
        .graphql(
            r#"{ tenant(city: "demo") { name slug locales defaultLocale timeZone status } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        answer,
        json!({ "data": { "tenant": {
            "name": "デモ市", "slug": "demo", "locales": ["ja", "en", "zh-Hans", "pt"],
            "defaultLocale": "ja", "timeZone": "Asia/Tokyo", "status": "ACTIVE"
        } } })
    );
    // the demo city has something to book: venues, slots in the coming weeks, residents
    let tenant_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = 'demo'")
        .fetch_one(&app.owner)
        .await
        .expect("demo tenant");
    let (venues, future_slots, residents): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM venues WHERE tenant_id = $1), \
                (SELECT count(*) FROM slots WHERE tenant_id = $1 AND starts_at > now()), \
                (SELECT count(*) FROM residents WHERE tenant_id = $1)",
    )
    .bind(tenant_id)
    .fetch_one(&app.owner)
    .await
    .expect("counts");
    assert_eq!(venues, 3);
    assert!(future_slots > 100, "{future_slots} future slots");
    assert_eq!(residents, i64::from(platform::demo::DEMO_RESIDENTS));
}

#[tokio::test]
async fn an_unknown_slug_is_null_not_an_error() {
    let app = spawn_app().await;
    let answer = app
        .graphql(
            "query($s: String!) { tenant(city: $s) { name } }",
            json!({ "s": "nowhere" }),
        )
        .await;
    assert_eq!(answer, json!({ "data": { "tenant": null } }));
}

#[tokio::test]
async fn graphiql_is_served_with_local_assets_only() {
    let app = spawn_app().await;
    // a browser asks for HTML (a GET with another Accept is a GraphQL request: graphql_http.rs)
    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .expect("GET /graphql")
        .text()
        .await
        .expect("page");
    assert!(page.contains("/graphql/assets/graphiql.min.js"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no CDN: {page}"
    );
    for asset in [
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql-init.js",
    ] {
        let res = app.get(&format!("/graphql/assets/{asset}")).await;
        assert_eq!(res.status(), 200, "{asset}");
        assert!(res.bytes().await.expect("body").len() > 100, "{asset}");
    }
    assert_eq!(app.get("/graphql/assets/nope.js").await.status(), 404);
}

#[tokio::test]
async fn queries_deeper_than_the_limit_are_refused() {
    let app = spawn_app().await;
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(12),
        " }".repeat(12)
    );
    let answer = app.graphql(&deep, json!({})).await;
    let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nested too deep"), "{answer}");
}

#[tokio::test]
async fn graphiql_renders_in_a_browser_without_the_internet() {
    let app = spawn_app().await;
    let browser = crate::browser::launch(crate::browser::DESKTOP).await;
    let page = browser.open(&app.url("/graphql")).await;
    let mut rendered = false;
    for _ in 0..100 {
        let found = page
            .evaluate("document.querySelector('.graphiql-container') !== null")
            .await
            .ok()
            .and_then(|v| v.into_value::<bool>().ok())
            .unwrap_or(false);
        if found {
            rendered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    browser.close().await;
    assert!(
        rendered,
        "GraphiQL did not render from the vendored scripts"
    );
}
