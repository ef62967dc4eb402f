//! Issue 19: the backup drill of docs/operations.md ("Backup and restore"): `pg_dump` a populated
//! database, `pg_restore` it into a new one, start the server on it the way `yoyaku serve` does, and
//! check that every invariant survived and that it serves and books.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::json;
use sqlx::PgPool;

use crate::support::{Options, demo_app, pg_base, spawn_app_on};

/// What must be equal before the dump and after the restore, and true in both.
async fn invariants(pool: &PgPool) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    // never overbooked, and booked = the live booking rows of the slot (dose 2 seats likewise)
    let miscounted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM slots s WHERE s.booked <> (SELECT count(*) FROM bookings b \
           WHERE b.tenant_id = s.tenant_id AND b.slot_id = s.id AND b.status = 'booked') \
           OR s.booked_dose2 <> (SELECT count(*) FROM bookings b WHERE b.tenant_id = s.tenant_id \
           AND b.slot_id = s.id AND b.status = 'booked' AND b.dose = 2) OR s.booked > s.capacity",
    )
    .fetch_one(pool)
    .await
    .expect("slot counts");
    assert_eq!(miscounted, 0, "slots whose booked count is not their rows");
    // every booking has its notification job (the outbox)
    let without_job: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bookings b WHERE NOT EXISTS (SELECT 1 FROM apalis.jobs j \
           WHERE j.job_type = 'notify' AND j.idempotency_key = b.tenant_id || '/booking-confirmed:' || b.id)",
    )
    .fetch_one(pool)
    .await
    .expect("jobs");
    assert_eq!(without_job, 0, "bookings without their notification job");
    // the audit trails, entry by entry in order (a digest of every column of every entry)
    for (name, sql) in [
        (
            "audit_log",
            "SELECT count(*)::text || ':' || COALESCE(md5(string_agg(to_jsonb(a)::text, '|' ORDER BY a.tenant_id, a.at, a.id)), '') FROM audit_log a",
        ),
        (
            "platform_audit_log",
            "SELECT count(*)::text || ':' || COALESCE(md5(string_agg(to_jsonb(a)::text, '|' ORDER BY a.at, a.id)), '') FROM platform_audit_log a",
        ),
        (
            "bookings",
            "SELECT count(*)::text || ':' || COALESCE(md5(string_agg(to_jsonb(b)::text, '|' ORDER BY b.tenant_id, b.id)), '') FROM bookings b",
        ),
        (
            "slots",
            "SELECT count(*)::text || ':' || COALESCE(sum(booked), 0)::text FROM slots",
        ),
        (
            // the outbox: one confirmation task per booking, written with it (the delivery log
            // rows and reminder tasks are the workers' and may grow while either server runs)
            "confirmation_tasks",
            "SELECT count(*)::text FROM apalis.jobs WHERE job_type = 'notify' \
               AND idempotency_key LIKE '%/booking-confirmed:%'",
        ),
        (
            "migrations",
            "SELECT string_agg(version::text || encode(checksum, 'hex'), ',' ORDER BY version) FROM _sqlx_migrations",
        ),
    ] {
        let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .expect("digest");
        out.insert(name, value);
    }
    out
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a PostgreSQL client tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_dump_restored_into_a_new_database_serves_with_every_invariant_intact() {
    let app = demo_app().await;
    // more than the demo seed: a resident books over the API, a city admin signs in (audit entries)
    let token = app.resident_token(3).await;
    let slot = app.demo_slot(0).await;
    let booked = app
        .graphql_as(
            &token,
            "en",
            "mutation($input: BookInput!) { book(input: $input) { bookings { id } errors { code message } } }",
            json!({ "input": { "slotId": slot, "dose": "FIRST", "idempotencyKey": "backup-drill-1" } }),
        )
        .await;
    assert!(booked["errors"].is_null(), "{booked}");
    assert_eq!(booked["data"]["book"]["errors"], json!([]), "{booked}");
    app.login("admin@demo.example", platform::demo::DEMO_STAFF_PASSWORD)
        .await;
    let before = invariants(&app.owner).await;
    assert!(
        before["audit_log"] != "0:" && before["bookings"] != "0:",
        "{before:?}"
    );

    // the procedure of docs/operations.md, "Backup and restore (small installs)"
    let source: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&app.owner)
        .await
        .expect("database");
    let dump = std::env::temp_dir().join(format!("yoyaku-{}.dump", uuid::Uuid::new_v4()));
    let base = url::Url::parse(&pg_base()).expect("pg url");
    let host = base.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = base.port().unwrap_or(5432).to_string();
    let user = if base.username().is_empty() {
        "postgres".to_owned()
    } else {
        base.username().to_owned()
    };
    run(Command::new("pg_dump")
        .args([
            "-h",
            &host,
            "-p",
            &port,
            "-U",
            &user,
            "--format=custom",
            "--file",
        ])
        .arg(&dump)
        .arg(&source));
    // a new database, named like the harness's so old ones are cleaned up by age
    let target = format!(
        "yoyaku_test_{}_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        uuid::Uuid::new_v4().simple()
    );
    run(Command::new("createdb").args(["-h", &host, "-p", &port, "-U", &user, &target]));
    run(Command::new("pg_restore")
        .args([
            "-h",
            &host,
            "-p",
            &port,
            "-U",
            &user,
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--dbname",
            &target,
        ])
        .arg(&dump));
    let _ = std::fs::remove_file(&dump);

    // served by the same start-up path as `yoyaku serve` (which re-grants the runtime role)
    let restored = spawn_app_on(&target, Options::default()).await;
    assert_eq!(invariants(&restored.owner).await, before);
    assert_eq!(restored.get("/readyz").await.status(), 200);
    // it serves: a resident's session from before the backup still works, its idempotency key
    // still replays the same booking, and a new booking keeps every invariant
    let replay = restored
        .graphql_as(
            &token,
            "en",
            "mutation($input: BookInput!) { book(input: $input) { bookings { id } errors { code message } } }",
            json!({ "input": { "slotId": slot, "dose": "FIRST", "idempotencyKey": "backup-drill-1" } }),
        )
        .await;
    assert_eq!(
        replay["data"]["book"], booked["data"]["book"],
        "the idempotency key survived the restore: {replay}"
    );
    let other = restored.resident_token(6).await;
    let slot2 = restored.demo_slot(1).await;
    let again = restored
        .graphql_as(
            &other,
            "en",
            "mutation($input: BookInput!) { book(input: $input) { bookings { id } errors { code message } } }",
            json!({ "input": { "slotId": slot2, "dose": "FIRST", "idempotencyKey": "backup-drill-2" } }),
        )
        .await;
    assert!(again["errors"].is_null(), "{again}");
    assert_eq!(again["data"]["book"]["errors"], json!([]), "{again}");
    let after = invariants(&restored.owner).await;
    let count = |v: &str| {
        v.split(':')
            .next()
            .unwrap_or("")
            .parse::<i64>()
            .unwrap_or(-1)
    };
    assert_eq!(count(&after["bookings"]), count(&before["bookings"]) + 1);
}
