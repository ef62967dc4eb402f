//! Issue 19: a city exported, deleted (offboarding) and re-imported into an empty database through
//! `yoyaku tenant export | delete | import` (platform/src/operator/, docs/operations.md).

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tenants::TenantId;

use crate::support::{fresh_database, pg_base};

/// Rows of `tenant` in every table with a `tenant_id` column (as the superuser, bypassing RLS), plus
/// its registry row and authorization rules.
pub(crate) async fn rows_of(owner: &PgPool, tenant: TenantId) -> BTreeMap<String, i64> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.columns c \
           JOIN information_schema.tables t USING (table_schema, table_name) \
          WHERE c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE' \
            AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .fetch_all(owner)
    .await
    .expect("tenant tables");
    let mut out = BTreeMap::new();
    for table in tables {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = $1"
        )))
        .bind(tenant.0)
        .fetch_one(owner)
        .await
        .expect("count");
        out.insert(table, n);
    }
    let registry: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE id = $1")
        .bind(tenant.0)
        .fetch_one(owner)
        .await
        .expect("registry");
    out.insert("tenants".into(), registry);
    let rules: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM authz_rules WHERE (ptype LIKE 'g%' AND v2 = $1) OR (ptype LIKE 'p%' AND v1 = $1)",
    )
    .bind(tenant.0.to_string())
    .fetch_one(owner)
    .await
    .expect("rules");
    out.insert("authz_rules".into(), rules);
    out
}

/// Runs the `yoyaku` binary against `database` on the test server.
async fn cli(database: &str, args: &[&str]) -> (bool, String, String) {
    let url = format!("{}/{database}", pg_base());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_yoyaku"))
            .args(&args)
            .env_remove("RUST_LOG")
            .env("YOYAKU_LOG__LEVEL", "warn")
            .env("YOYAKU_DATABASE__URL", url)
            .env("YOYAKU_DEMO__SEED", "false")
            .output()
            .expect("run yoyaku")
    })
    .await
    .expect("join");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn database_of(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(pool)
        .await
        .expect("database name")
}

async fn superuser_pool(database: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(&format!("{}/{database}", pg_base()))
        .await
        .expect("pool")
}

/// The data lines of an archive (without the header, whose export time differs), sorted.
fn data_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read archive");
    let mut lines: Vec<String> = text.lines().skip(1).map(str::to_owned).collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn export_then_delete_leaves_no_row_of_the_city_and_the_archive_imports_into_an_empty_database()
 {
    let (app, a, b) = crate::isolation::two_tenants().await;
    // A's invoice final and corrected by a credit note: immutable for the application, and an
    // invoice that refers to another invoice of the same table
    let mut tx = tenants::begin(&app.pool, a).await.expect("scope");
    let draft: uuid::Uuid = sqlx::query_scalar("SELECT id FROM invoices LIMIT 1")
        .fetch_one(&mut *tx)
        .await
        .expect("draft invoice");
    let at = crate::support::jst(2026, 12, 8, 9, 0);
    tenants::billing::finalize(&mut tx, draft, at, true)
        .await
        .expect("finalize");
    tenants::billing::credit_note(
        &mut tx,
        draft,
        &[tenants::billing::pricing::Line {
            description: "訂正".into(),
            quantity: 1,
            unit_price_yen: 10,
            amount_yen: 10,
        }],
        at,
    )
    .await
    .expect("credit note");
    tx.commit().await.expect("commit");

    let before_a = rows_of(&app.owner, a).await;
    let before_b = rows_of(&app.owner, b).await;
    let empty: Vec<&String> = before_a
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(t, _)| t)
        .collect();
    assert!(empty.is_empty(), "A has no rows in {empty:?}");
    let db = database_of(&app.owner).await;
    let dir = std::env::temp_dir().join(format!("yoyaku-archive-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let archive = dir.join("yokohama.tsv");
    let path = archive.to_str().expect("utf-8 path");

    let (ok, stdout, stderr) = cli(
        &db,
        &["tenant", "export", "--slug", "yokohama", "--out", path],
    )
    .await;
    assert!(ok, "export failed: {stderr}");
    assert!(stdout.contains("exported yokohama"), "{stdout}");
    let (ok, _, stderr) = cli(
        &db,
        &["tenant", "export", "--slug", "yokohama", "--out", path],
    )
    .await;
    assert!(!ok && stderr.contains("could not create"), "{stderr}");

    // deletion: the slug must be typed again; an active city with future bookings is kept, and
    // both reasons are named
    let (ok, _, stderr) = cli(
        &db,
        &[
            "tenant",
            "delete",
            "--slug",
            "yokohama",
            "--confirm",
            "kawasaki",
        ],
    )
    .await;
    assert!(!ok && stderr.contains("--confirm yokohama"), "{stderr}");
    sqlx::query("UPDATE tenants SET status = 'active' WHERE id = $1")
        .bind(a.0)
        .execute(&app.owner)
        .await
        .expect("activate");
    let (ok, _, stderr) = cli(
        &db,
        &[
            "tenant",
            "delete",
            "--slug",
            "yokohama",
            "--confirm",
            "yokohama",
        ],
    )
    .await;
    assert!(!ok, "an active city was deleted");
    assert!(
        stderr.contains("it is active") && stderr.contains("live booking"),
        "{stderr}"
    );
    assert_eq!(
        rows_of(&app.owner, a).await,
        before_a,
        "a refused deletion changed rows"
    );

    // suspended, and once its last slot has started: every row goes, the other city keeps its own
    sqlx::query("UPDATE tenants SET status = 'suspended' WHERE id = $1")
        .bind(a.0)
        .execute(&app.owner)
        .await
        .expect("suspend");
    let last_slot: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(starts_at) FROM slots WHERE tenant_id = $1")
            .bind(a.0)
            .fetch_one(&app.owner)
            .await
            .expect("last slot");
    let deleted = platform::operator::offboard::delete(
        &app.owner,
        "yokohama",
        "yokohama",
        last_slot + chrono::Duration::minutes(1),
        &platform::operator::cli_actor("test"),
    )
    .await
    .expect("delete");
    assert!(deleted.total() > 0);
    let after_a = rows_of(&app.owner, a).await;
    let left: Vec<_> = after_a.iter().filter(|(_, n)| **n > 0).collect();
    assert!(left.is_empty(), "rows of the deleted city remain: {left:?}");
    assert_eq!(
        rows_of(&app.owner, b).await,
        before_b,
        "the other city changed"
    );
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM platform_audit_log WHERE object = 'yokohama' AND action LIKE 'tenant.%' ORDER BY at",
    )
    .fetch_all(&app.owner)
    .await
    .expect("audit");
    assert_eq!(audited, ["tenant.export", "tenant.delete"]);

    // the archive into an empty database (no price list either: the archive brings the plan its
    // contract names)
    let target = fresh_database().await;
    let target_pool = superuser_pool(&target).await;
    // a truncated file imports nothing
    let truncated = dir.join("truncated.tsv");
    let text = std::fs::read_to_string(&archive).expect("read");
    let cut: Vec<&str> = text.lines().collect();
    std::fs::write(&truncated, cut[..cut.len() - 1].join("\n")).expect("write");
    let (ok, _, stderr) = cli(
        &target,
        &[
            "tenant",
            "import",
            "--in",
            truncated.to_str().expect("path"),
        ],
    )
    .await;
    assert!(!ok && stderr.contains("truncated"), "{stderr}");
    assert_eq!(rows_of(&target_pool, a).await.values().sum::<i64>(), 0);

    let (ok, stdout, stderr) = cli(&target, &["tenant", "import", "--in", path]).await;
    assert!(ok, "import failed: {stderr}");
    assert!(stdout.contains("imported yokohama"), "{stdout}");
    assert_eq!(rows_of(&target_pool, a).await, before_a);
    let plans: Vec<String> = sqlx::query_scalar("SELECT code FROM plans")
        .fetch_all(&target_pool)
        .await
        .expect("plans");
    assert_eq!(plans, ["basic"], "the contract's plan came with the city");
    // round trip: the city exported again from the new database is the same archive
    let again = dir.join("again.tsv");
    let (ok, _, stderr) = cli(
        &target,
        &[
            "tenant",
            "export",
            "--slug",
            "yokohama",
            "--out",
            again.to_str().expect("path"),
        ],
    )
    .await;
    assert!(ok, "second export failed: {stderr}");
    assert_eq!(data_lines(&archive), data_lines(&again));
    // and a second import is refused, naming the city
    let (ok, _, stderr) = cli(&target, &["tenant", "import", "--in", path]).await;
    assert!(!ok && stderr.contains("already has"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
