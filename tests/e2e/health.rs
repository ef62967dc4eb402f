use std::time::Duration;

use reqwest::StatusCode;

use crate::support::{Options, spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_and_readyz_answer_ok_with_a_request_id() {
    let app = spawn_app().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), StatusCode::OK);
    let id = res
        .headers()
        .get("x-request-id")
        .expect("every response carries x-request-id");
    assert_eq!(id.to_str().expect("ascii").len(), 36, "a UUID");
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_follows_the_database_down_and_back_up_without_a_restart() {
    let app = spawn_app_with(Options {
        via_proxy: true,
        ..Options::default()
    })
    .await;
    let proxy = app.proxy.as_ref().expect("proxy");
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);

    proxy.down();
    assert_eq!(
        app.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        app.get("/healthz").await.status(),
        StatusCode::OK,
        "liveness ignores the database"
    );

    proxy.up();
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = app.get("/readyz").await.status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "ready again once PostgreSQL is back"
    );
}

#[tokio::test]
async fn readyz_reports_missing_migrations() {
    let app = spawn_app().await;
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&app.owner)
    .await
    .expect("forget a migration");
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("migrations not applied")
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(vec![b' '; 3 * 1024 * 1024])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn the_server_refuses_to_start_on_a_schema_newer_than_it_knows() {
    let database = crate::support::fresh_database().await;
    let settings = crate::support::settings_for(&database);
    let owner = sqlx::PgPool::connect(&format!("{}/{database}", crate::support::pg_base()))
        .await
        .expect("owner pool");
    // what a newer release's migration leaves in the ledger
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (20991231000001, 'from the future', true, '\\x00', 1)",
    )
    .execute(&owner)
    .await
    .expect("a newer migration");
    let refused = match yoyaku::App::build(settings.clone()).await {
        Ok(_) => panic!("the server started on a newer schema"),
        Err(e) => e.to_string(),
    };
    assert!(
        refused.contains("20991231000001 (from the future)") && refused.contains("newer release"),
        "{refused}"
    );
    // and starts again once the ledger holds only what it knows
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 20991231000001")
        .execute(&owner)
        .await
        .expect("forget it");
    let app = yoyaku::App::build(settings).await.expect("starts");
    app.pool.close().await;
}
