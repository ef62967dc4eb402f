//! The `yoyaku` binary as an operator runs it: help on every command, clear configuration errors
//! that never print the database password, a clear message when PostgreSQL is unreachable, tenant
//! creation, and `serve` answering then shutting down gracefully on SIGTERM.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::{fresh_database, pg_base};

const SECRET: &str = "s3cr3t-hunter2";

fn yoyaku(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yoyaku"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env("YOYAKU_LOG__LEVEL", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run yoyaku")
}

fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["worker", "--help"],
        vec!["tenant", "--help"],
        vec!["tenant", "create", "--help"],
        vec!["tenant", "list", "--help"],
        vec!["graphql-schema", "--help"],
        vec!["import", "residents", "--help"],
        vec!["staff", "create-operator", "--help"],
    ] {
        let out = yoyaku(&args, &[]);
        assert!(out.status.success(), "{args:?}");
        assert!(all_output(&out).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn bad_configuration_names_the_key_exits_non_zero_and_hides_the_password() {
    let url_with_secret = format!("postgres://postgres:{SECRET}@127.0.0.1:5432/yoyaku");
    let dir = std::env::temp_dir().join(format!("yoyaku-cfg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let unknown_key = dir.join("unknown.toml");
    std::fs::write(&unknown_key, "[http]\nprot = 9000\n").expect("write");
    let unknown_key = unknown_key.to_string_lossy().into_owned();

    // (arguments, environment, what the message must say)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["serve"],
            vec![
                ("YOYAKU_HTTP__PORT", "abc"),
                ("YOYAKU_DATABASE__URL", &url_with_secret),
            ],
            "http.port",
        ),
        (
            vec!["serve"],
            vec![(
                "YOYAKU_DATABASE__URL",
                "postgres//postgres:s3cr3t-hunter2@localhost",
            )],
            "database.url",
        ),
        (
            vec!["serve"],
            vec![(
                "YOYAKU_DATABASE__URL",
                "postgres://postgres:s3cr3t-hunter2@localhost:5432/",
            )],
            "database.url must name a database",
        ),
        (
            vec!["--config", &unknown_key, "serve"],
            vec![("YOYAKU_DATABASE__URL", &url_with_secret)],
            "unknown key \"http.prot\"",
        ),
        (
            vec!["serve"],
            vec![
                ("YOYAKU_DATABASE__URL", &url_with_secret),
                ("YOYAKU_LOG__FORMAT", "xml"),
            ],
            "log.format",
        ),
        (
            vec!["--config", "/nonexistent/yoyaku.toml", "migrate"],
            vec![],
            "does not exist",
        ),
    ];
    for (args, env, expected) in cases {
        let out = yoyaku(&args, &env);
        let text = all_output(&out);
        assert!(
            !out.status.success(),
            "{args:?} {env:?} should fail:\n{text}"
        );
        assert!(text.contains(expected), "expected {expected:?} in:\n{text}");
        assert!(!text.contains(SECRET), "the password leaked:\n{text}");
    }
}

#[test]
fn unreachable_postgres_names_the_address_and_how_to_start_it() {
    let url = format!("postgres://postgres:{SECRET}@127.0.0.1:1/yoyaku");
    let out = yoyaku(&["serve"], &[("YOYAKU_DATABASE__URL", &url)]);
    let text = all_output(&out);
    assert!(!out.status.success());
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(text.contains("pg_ctlcluster"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}

#[tokio::test]
async fn tenant_create_validates_then_registers_a_municipality() {
    let db = fresh_database().await;
    let url = format!("{}/{db}", pg_base());
    let env = [("YOYAKU_DATABASE__URL", url.as_str())];

    let bad = yoyaku(
        &[
            "tenant",
            "create",
            "--slug",
            "yokohama",
            "--name",
            "横浜市",
            "--code",
            "141004",
        ],
        &env,
    );
    assert!(!bad.status.success());
    assert!(
        all_output(&bad).contains("expected 3"),
        "{}",
        all_output(&bad)
    );

    let good = yoyaku(
        &[
            "tenant",
            "create",
            "--slug",
            "yokohama",
            "--name",
            "横浜市",
            "--code",
            "141003",
            "--locales",
            "ja,en,pt",
        ],
        &env,
    );
    assert!(good.status.success(), "{}", all_output(&good));

    let again = yoyaku(
        &[
            "tenant",
            "create",
            "--slug",
            "yokohama",
            "--name",
            "横浜市",
            "--code",
            "141305",
        ],
        &env,
    );
    assert!(!again.status.success());
    assert!(
        all_output(&again).contains("already exists"),
        "{}",
        all_output(&again)
    );

    let list = yoyaku(&["tenant", "list"], &env);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("yokohama\t横浜市\t141003\tonboarding\tja,en,pt"),
        "{text}"
    );
}

#[tokio::test]
async fn serve_answers_then_stops_gracefully_on_sigterm() {
    let db = fresh_database().await;
    let url = format!("{}/{db}", pg_base());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port().to_string()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_yoyaku"))
        .env("YOYAKU_DATABASE__URL", &url)
        .env("YOYAKU_HTTP__PORT", &port)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn serve");
    let client = crate::support::http_client();
    let mut answered = false;
    for _ in 0..150 {
        if let Ok(res) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            answered = res.status() == 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "serve did not answer /healthz");
    let body: serde_json::Value = client
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .json(&serde_json::json!({ "query": "{ tenant(city: \"demo\") { name } }" }))
        .send()
        .await
        .expect("graphql")
        .json()
        .await
        .expect("json");
    assert_eq!(body["data"]["tenant"]["name"], "デモ市");

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().expect("wait");
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            use std::io::Read;
            let _ = stdout.read_to_string(&mut out);
        }
        (status, out)
    })
    .await
    .expect("join");
    assert!(
        status.0.success(),
        "graceful exit code 0, got {:?}",
        status.0
    );
    assert!(
        status.1.contains("Demo municipality: デモ市"),
        "banner:\n{}",
        status.1
    );
    assert!(
        status.1.contains("1000000001"),
        "banner names demo credentials:\n{}",
        status.1
    );
}

#[tokio::test]
async fn a_worker_process_delivers_queued_notifications_and_stops_on_sigterm() {
    let db = fresh_database().await;
    let url = format!("{}/{db}", pg_base());
    // the demo city comes with sample bookings whose confirmation jobs are queued
    let mut child = Command::new(env!("CARGO_BIN_EXE_yoyaku"))
        .arg("worker")
        .env("YOYAKU_DATABASE__URL", &url)
        .env("YOYAKU_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn worker");
    let owner = sqlx::PgPool::connect(&url).await.expect("owner pool");
    let mut pending = i64::MAX;
    for _ in 0..150 {
        // every task due done (reminders wait for their day), every delivery-log row decided
        let (jobs, queued): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM notification_jobs), \
                    (SELECT count(*) FROM apalis.jobs WHERE job_type = 'notify' AND status <> 'Done' \
                        AND run_at <= now()) \
                  + (SELECT count(*) FROM notification_jobs WHERE status IN ('queued', 'sending'))",
        )
        .fetch_one(&owner)
        .await
        .unwrap_or((0, 1));
        if jobs > 0 && queued == 0 {
            pending = 0;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending, 0, "the worker process handled every queued job");
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait().expect("wait"))
        .await
        .expect("join");
    assert!(status.success(), "graceful exit, got {status:?}");
}
