//! Resident login: ticket number + birth date, a 6-digit code by SMS (through the notification job
//! and the development log channel), then a session.

use platform::demo::demo_resident;
use platform::i18n::Lang;
use platform::residents::auth::{self, AuthError, CodeSecret};

use crate::support::{Options, TestApp, demo_app, spawn_app_with};

/// Demo residents whose number is a multiple of 3 have a phone on file: 090 + n in 8 digits.
fn phone_of(n: u32) -> String {
    format!("090{n:08}")
}

async fn ask_code(app: &TestApp, n: u32, ip: &str) -> Result<auth::CodeSent, AuthError> {
    let tenant = app.demo_tenant().await;
    let r = demo_resident(n);
    // The secret is only used to hash the code; the worker derives the SMS with the app's own.
    auth::request_code(
        &app.pool,
        &tenant,
        &r.ticket_no,
        r.birth_date,
        None,
        ip,
        Lang::Ja,
        &app.worker.secret,
    )
    .await
}

#[tokio::test]
async fn a_resident_logs_in_with_the_code_from_the_sms() {
    let app = demo_app().await;
    let tenant = app.demo_tenant().await;
    let sent = ask_code(&app, 3, "192.0.2.10").await.expect("code sent");
    assert_eq!(sent.masked_phone, "090****0003");
    let code = app
        .login_code_sent_to(&phone_of(3))
        .await
        .expect("SMS in the log channel");
    let session = auth::verify_code(&app.pool, &tenant, &demo_resident(3).ticket_no, &code)
        .await
        .expect("logged in");
    let found = auth::session(&app.pool, tenant.id, &session.token)
        .await
        .expect("look up")
        .expect("live session");
    assert_eq!(found.resident_id, session.resident_id);
    // the code works once
    let again = auth::verify_code(&app.pool, &tenant, &demo_resident(3).ticket_no, &code).await;
    assert!(matches!(again, Err(AuthError::Expired)), "{again:?}");
}

#[tokio::test]
async fn a_first_time_resident_gives_a_phone_number_and_wrong_combinations_all_get_one_answer() {
    let app = demo_app().await;
    let tenant = app.demo_tenant().await;
    let r = demo_resident(1);
    let secret = CodeSecret::random();
    let needs = auth::request_code(
        &app.pool,
        &tenant,
        &r.ticket_no,
        r.birth_date,
        None,
        "192.0.2.11",
        Lang::En,
        &secret,
    )
    .await;
    assert!(matches!(needs, Err(AuthError::PhoneNeeded)), "{needs:?}");
    let wrong_birth = auth::request_code(
        &app.pool,
        &tenant,
        &r.ticket_no,
        r.birth_date.succ_opt().expect("date"),
        Some("09011112222"),
        "192.0.2.11",
        Lang::En,
        &secret,
    )
    .await
    .expect_err("wrong birth date");
    let wrong_ticket = auth::request_code(
        &app.pool,
        &tenant,
        "1999999999",
        r.birth_date,
        Some("09011112222"),
        "192.0.2.11",
        Lang::En,
        &secret,
    )
    .await
    .expect_err("wrong ticket");
    assert_eq!(
        wrong_birth.message(Lang::En),
        wrong_ticket.message(Lang::En)
    );
    assert!(matches!(wrong_ticket, AuthError::NotRecognised));

    auth::request_code(
        &app.pool,
        &tenant,
        &r.ticket_no,
        r.birth_date,
        Some("090-1111-2222"),
        "192.0.2.11",
        Lang::En,
        &secret,
    )
    .await
    .expect("code sent to the new phone");
    let code = app.login_code_sent_to("09011112222").await.expect("SMS");
    let text = app.messages.recent()[0].message.text.clone();
    assert!(
        text.contains("vaccination booking code"),
        "English SMS: {text}"
    );
    assert_eq!(code.len(), 6);
}

#[tokio::test]
async fn an_expired_code_fails() {
    let app = demo_app().await;
    let tenant = app.demo_tenant().await;
    ask_code(&app, 6, "192.0.2.12").await.expect("code sent");
    let code = app.login_code_sent_to(&phone_of(6)).await.expect("SMS");
    sqlx::query("UPDATE login_codes SET expires_at = now() - interval '1 second'")
        .execute(&app.owner)
        .await
        .expect("age the code");
    let err = auth::verify_code(&app.pool, &tenant, &demo_resident(6).ticket_no, &code)
        .await
        .expect_err("expired");
    assert!(matches!(err, AuthError::Expired), "{err:?}");
    assert!(err.message(Lang::Ja).contains("有効期限が切れています"));
}

#[tokio::test]
async fn the_sixth_try_fails_even_with_the_right_code() {
    let app = demo_app().await;
    let tenant = app.demo_tenant().await;
    let ticket = demo_resident(9).ticket_no;
    ask_code(&app, 9, "192.0.2.13").await.expect("code sent");
    let code = app.login_code_sent_to(&phone_of(9)).await.expect("SMS");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for attempt in 1..=5 {
        let err = auth::verify_code(&app.pool, &tenant, &ticket, wrong)
            .await
            .expect_err("wrong code");
        if attempt < 5 {
            assert!(
                matches!(err, AuthError::WrongCode { tries_left } if tries_left == 5 - attempt),
                "{err:?}"
            );
        } else {
            assert!(matches!(err, AuthError::TooManyTries), "{err:?}");
        }
    }
    let sixth = auth::verify_code(&app.pool, &tenant, &ticket, &code)
        .await
        .expect_err("locked");
    assert!(matches!(sixth, AuthError::TooManyTries), "{sixth:?}");
}

#[tokio::test]
async fn the_code_of_another_ticket_fails() {
    let app = demo_app().await;
    let tenant = app.demo_tenant().await;
    ask_code(&app, 12, "192.0.2.14").await.expect("code for 12");
    ask_code(&app, 15, "192.0.2.14").await.expect("code for 15");
    let code_12 = app.login_code_sent_to(&phone_of(12)).await.expect("SMS 12");
    let code_15 = app.login_code_sent_to(&phone_of(15)).await.expect("SMS 15");
    assert_ne!(
        code_12, code_15,
        "(one in a million: codes collide by chance)"
    );
    let err = auth::verify_code(&app.pool, &tenant, &demo_resident(15).ticket_no, &code_12)
        .await
        .expect_err("another ticket's code");
    assert!(matches!(err, AuthError::WrongCode { .. }), "{err:?}");
}

#[tokio::test]
async fn repeated_code_requests_are_throttled_with_a_retry_after() {
    let app = demo_app().await;
    for _ in 0..3 {
        ask_code(&app, 18, "192.0.2.15").await.expect("allowed");
    }
    let err = ask_code(&app, 18, "192.0.2.15")
        .await
        .expect_err("fourth within 15 minutes");
    let AuthError::RateLimited { retry_after_secs } = err else {
        panic!("expected RateLimited, got {err:?}");
    };
    assert!(
        (1..=15 * 60).contains(&retry_after_secs),
        "{retry_after_secs}"
    );
    assert_eq!(err.code(), "RATE_LIMITED");
    // per IP as well: 30 requests from one address, whatever the tickets
    let mut limited = false;
    for n in (21..=120).step_by(3) {
        if let Err(AuthError::RateLimited { .. }) = ask_code(&app, n, "192.0.2.16").await {
            limited = true;
            break;
        }
    }
    assert!(limited, "one address cannot ask for codes without limit");
}

#[tokio::test]
async fn codes_are_never_stored_in_clear() {
    let app = demo_app().await;
    ask_code(&app, 24, "192.0.2.17").await.expect("code sent");
    let code = app.login_code_sent_to(&phone_of(24)).await.expect("SMS");
    let mut dump = String::new();
    for sql in [
        "SELECT row_to_json(t)::text FROM login_codes t",
        "SELECT row_to_json(t)::text FROM notification_jobs t",
        // the task's arguments as text (the column is bytes)
        "SELECT concat_ws(' ', id, job_type, status, idempotency_key, convert_from(job, 'UTF8')) FROM apalis.jobs",
        "SELECT row_to_json(t)::text FROM login_throttle t",
        "SELECT row_to_json(t)::text FROM resident_sessions t",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(sql)
            .fetch_all(&app.owner)
            .await
            .expect("dump");
        dump.push_str(&rows.join("\n"));
    }
    assert!(dump.contains("login_code_id"), "the job is there");
    assert!(
        !dump.contains(&code),
        "the code {code} appears in the database"
    );
}

#[tokio::test]
async fn the_demo_user_reads_the_code_at_dev_messages() {
    let app = demo_app().await;
    ask_code(&app, 27, "192.0.2.18").await.expect("code sent");
    let code = app.login_code_sent_to(&phone_of(27)).await.expect("SMS");
    let page = app.get("/dev/messages").await;
    assert_eq!(page.status(), 200);
    let body = page.text().await.expect("body");
    assert!(
        body.contains("認証コード") && body.contains(&code),
        "{body}"
    );
}

#[tokio::test]
async fn the_dev_messages_page_does_not_exist_in_production() {
    let app = spawn_app_with(Options {
        production: true,
        ..Options::default()
    })
    .await;
    assert_eq!(app.get("/dev/messages").await.status(), 404);
}
