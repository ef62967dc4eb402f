//! Eligible-resident import: all-or-nothing validation with a per-row report, Shift_JIS, idempotent
//! re-import, the CLI with its progress bar, and 100,000 rows well under a minute.

use std::time::{Duration, Instant};

use platform::residents::import::{self, ImportError};
use platform::staff::authz::{Act, Actor, Object, Role};

use crate::support::{TestApp, spawn_app, yoyaku_cli};

const HEADER: &str =
    "ticket_no,birth_date,kana_name,sex,phone,email,postal_code,preferred_language\n";
const KANA: [&str; 4] = [
    "ヤマダ タロウ",
    "スズキ ハナコ",
    "タナカ イチロウ",
    "サトウ ユミ",
];

fn csv(rows: u32, bad: &[u32]) -> String {
    let mut out = String::from(HEADER);
    for n in 1..=rows {
        let line = if bad.contains(&n) {
            // each bad row has exactly one problem, in a different column
            match n % 3 {
                0 => format!(
                    "{:010},1960-02-30,{},female,,,,ja\n",
                    2_000_000_000u64 + u64::from(n),
                    KANA[0]
                ),
                1 => format!(
                    "{:010},1960-01-01,yamada,male,,,,\n",
                    2_000_000_000u64 + u64::from(n)
                ),
                _ => format!("12345,1960-01-01,{},male,,,,\n", KANA[1]),
            }
        } else {
            format!(
                "{:010},{}-{:02}-{:02},{},{},090{:08},,231-0005,ja\n",
                2_000_000_000u64 + u64::from(n),
                1930 + n % 80,
                1 + n % 12,
                1 + n % 28,
                KANA[(n % 4) as usize],
                if n % 2 == 0 { "female" } else { "male" },
                n
            )
        };
        out.push_str(&line);
    }
    out
}

async fn city(app: &TestApp) -> (tenants::Tenant, Actor) {
    let tenant = app.seeded_tenant("yokohama", "141003").await;
    let admin = app
        .staff(
            "admin@yokohama.example",
            Some((tenant.id, Role::CityAdmin, &[])),
        )
        .await;
    (tenant, Actor::staff(admin.id, &admin.email, None))
}

async fn residents(app: &TestApp, tenant: &tenants::Tenant) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM residents WHERE tenant_id = $1")
        .bind(tenant.id.0)
        .fetch_one(&app.owner)
        .await
        .expect("count")
}

#[tokio::test]
async fn three_bad_rows_among_a_thousand_are_named_exactly_and_nothing_is_imported() {
    let app = spawn_app().await;
    let (tenant, actor) = city(&app).await;
    let before = residents(&app, &tenant).await;
    let bad = [18, 502, 998];
    let parsed = import::parse(csv(1000, &bad).as_bytes()).expect("parse");
    let lines: Vec<u64> = parsed.errors.iter().map(|e| e.line).collect();
    // data row n is on line n + 1 (the header is line 1)
    assert_eq!(lines, vec![19, 503, 999], "{:?}", parsed.errors);
    let columns: Vec<&str> = parsed.errors.iter().map(|e| e.column.as_str()).collect();
    assert_eq!(columns, vec!["birth_date", "kana_name", "ticket_no"]);

    let mut scope = app
        .authz
        .enter(&actor, tenant.id, Object::Imports, Act::Write)
        .await
        .expect("scope");
    let err = import::import(&mut scope, &parsed, false, "test.csv", |_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImportError::InvalidRows(ref e) if e.len() == 3),
        "{err}"
    );
    scope.commit().await.expect("commit");
    assert_eq!(residents(&app, &tenant).await, before, "nothing imported");

    // the explicit choice imports the 997 valid rows
    let mut scope = app
        .authz
        .enter(&actor, tenant.id, Object::Imports, Act::Write)
        .await
        .expect("scope");
    let outcome = import::import(&mut scope, &parsed, true, "test.csv", |_, _| {})
        .await
        .expect("import");
    scope.commit().await.expect("commit");
    assert_eq!((outcome.inserted, outcome.skipped_invalid), (997, 3));
    assert_eq!(residents(&app, &tenant).await, before + 997);
}

#[tokio::test]
async fn the_cli_imports_shift_jis_kana_names_and_a_second_run_changes_nothing() {
    let app = spawn_app().await;
    let (tenant, _) = city(&app).await;
    let utf8 = csv(50, &[]);
    let (sjis, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&utf8);
    assert!(!unmappable);
    let path = std::env::temp_dir().join(format!("residents-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&path, &sjis).expect("write");
    let file = path.to_string_lossy().into_owned();

    let out = yoyaku_cli(
        &app,
        &["import", "residents", "--tenant", "yokohama", &file],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("50 new, 0 updated, 0 unchanged"),
        "{stdout}"
    );
    assert!(
        stderr.contains("Shift_JIS") && stderr.contains("50/50 rows"),
        "progress: {stderr}"
    );

    let (name, updated): (String, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "SELECT kana_name, updated_at FROM residents WHERE tenant_id = $1 AND ticket_no = '2000000003'",
    )
    .bind(tenant.id.0)
    .fetch_one(&app.owner)
    .await
    .expect("resident");
    assert_eq!(name, KANA[3], "kana survive Shift_JIS → UTF-8");

    let again = yoyaku_cli(
        &app,
        &["import", "residents", "--tenant", "yokohama", &file],
    )
    .await;
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("0 new, 0 updated, 50 unchanged"),
        "{stdout}"
    );
    let (count, updated_again): (i64, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM residents WHERE tenant_id = $1), \
                (SELECT updated_at FROM residents WHERE tenant_id = $1 AND ticket_no = '2000000003')",
    )
    .bind(tenant.id.0)
    .fetch_one(&app.owner)
    .await
    .expect("after");
    assert_eq!(
        count,
        50 + i64::from(platform::demo::DEMO_RESIDENTS),
        "no duplicates"
    );
    assert_eq!(updated, updated_again, "unchanged rows are not touched");

    // a changed row is updated by ticket number, not duplicated
    let changed = csv(50, &[]).replace("スズキ ハナコ", "スズキ ハナ");
    std::fs::write(&path, changed).expect("write");
    let third = yoyaku_cli(
        &app,
        &["import", "residents", "--tenant", "yokohama", &file],
    )
    .await;
    assert!(String::from_utf8_lossy(&third.stdout).contains("0 new, 13 updated, 37 unchanged"));

    // a file with a bad row fails without importing, and says which row
    std::fs::write(&path, csv(5, &[4])).expect("write");
    let bad = yoyaku_cli(
        &app,
        &["import", "residents", "--tenant", "yokohama", &file],
    )
    .await;
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        stderr.contains("line 5, column kana_name") && stderr.contains("nothing was imported"),
        "{stderr}"
    );
    // every CLI run is in the city's import history, as an upload is (import_runs::run_file)
    let runs: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT status, source, inserted, created_by FROM resident_imports \
          WHERE tenant_id = $1 ORDER BY created_at, id",
    )
    .bind(tenant.id.0)
    .fetch_all(&app.owner)
    .await
    .expect("import runs");
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert_eq!((runs[0].0.as_str(), runs[0].2), ("completed", 50));
    assert_eq!(runs[3].0, "rejected");
    assert!(
        runs.iter().all(|r| r.1 == name && r.3.starts_with("cli (")),
        "{runs:?}"
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_hundred_thousand_residents_import_well_under_a_minute() {
    let app = spawn_app().await;
    let (tenant, actor) = city(&app).await;
    let file = csv(100_000, &[]);
    let started = Instant::now();
    let parsed = import::parse(file.as_bytes()).expect("parse");
    let mut scope = app
        .authz
        .enter(&actor, tenant.id, Object::Imports, Act::Write)
        .await
        .expect("scope");
    let mut progress = Vec::new();
    let outcome = import::import(&mut scope, &parsed, false, "big.csv", |done, total| {
        progress.push((done, total))
    })
    .await
    .expect("import");
    scope.commit().await.expect("commit");
    let took = started.elapsed();
    assert_eq!(outcome.inserted, 100_000);
    assert_eq!(progress.last(), Some(&(100_000, 100_000)));
    assert!(progress.len() >= 10, "progress is reported per batch");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(
        residents(&app, &tenant).await,
        100_000 + i64::from(platform::demo::DEMO_RESIDENTS)
    );
}
