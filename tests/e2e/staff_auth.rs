//! Staff identity through the admin UI: argon2id hashes, invitations used once, login throttling,
//! CSRF on every form, sessions, and the audit trail of configuration changes and personal-data views.

use platform::staff::authz::Role;
use sqlx::Executor;

use crate::support::{PASSWORD, csrf_in, spawn_app};

#[tokio::test]
async fn an_invited_admin_sets_a_password_once_and_it_is_stored_as_an_argon2id_hash() {
    let app = spawn_app().await;
    let mut operator = app.staff_client("op@yoyaku.example", None).await;
    let res = operator
        .post(
            "/admin/tenants",
            &[
                ("name", "Testcity"),
                ("slug", "testcity"),
                ("code", "141003"),
                ("time_zone", "Asia/Tokyo"),
                ("locales", "ja,en"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303, "onboarding redirects to the tenant page");
    let page = operator
        .post(
            "/admin/tenants/testcity/invite",
            &[("email", "Admin@Testcity.example")],
        )
        .await
        .text()
        .await
        .expect("page");
    let link = page
        .split("id=\"invitation-link\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("invitation link on the page")
        .to_owned();
    let path = link.trim_start_matches(&app.url(""));
    let path = &path[path.find("/admin").expect("admin path")..];

    let mut admin = app.anonymous();
    let html = admin.get(path).await.text().await.expect("invitation page");
    let csrf = csrf_in(&html).expect("csrf");
    let short = admin
        .post_raw(path, &[("password", "short"), ("csrf", &csrf)])
        .await;
    assert_eq!(short.status(), 422, "a too short password is refused");
    assert!(short.text().await.expect("body").contains("at least 10"));
    let ok = admin
        .post_raw(path, &[("password", PASSWORD), ("csrf", &csrf)])
        .await;
    assert_eq!(ok.status(), 303);
    let again = admin
        .post_raw(
            path,
            &[("password", "another password 123"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(again.status(), 404, "the link works once");

    let hash: String = sqlx::query_scalar(
        "SELECT password_hash FROM staff_accounts WHERE email = 'admin@testcity.example'",
    )
    .fetch_one(&app.owner)
    .await
    .expect("hash");
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains(PASSWORD));

    let mut admin = app.login("admin@testcity.example", PASSWORD).await;
    let home = admin.get("/admin").await.text().await.expect("home");
    assert!(
        home.contains("Testcity") && home.contains("city_admin"),
        "{home}"
    );
}

#[tokio::test]
async fn five_wrong_passwords_throttle_the_account_even_for_the_right_password() {
    let app = spawn_app().await;
    app.staff("clerk@city.example", None).await;
    let mut client = app.anonymous();
    for attempt in 1..=5 {
        let res = client
            .attempt_login("clerk@city.example", "wrong password!")
            .await;
        assert_eq!(res.status(), 401, "attempt {attempt}");
    }
    let res = client.attempt_login("clerk@city.example", PASSWORD).await;
    assert_eq!(res.status(), 429, "the sixth attempt is throttled");
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("too many failed logins")
    );
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_sessions")
        .fetch_one(&app.owner)
        .await
        .expect("count");
    assert_eq!(sessions, 0);
}

#[tokio::test]
async fn form_posts_without_the_csrf_token_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let tenant = app.seeded_tenant("yokohama", "141003").await;
    let mut admin = app
        .staff_client(
            "admin@yokohama.example",
            Some((tenant.id, Role::CityAdmin, &[])),
        )
        .await;
    let vaccine = [
        ("name", "NoCsrf"),
        ("maker", "X"),
        ("doses", "2"),
        ("min_interval_days", "21"),
        ("booster_interval_months", "6"),
        ("days_until_effective", "7"),
        ("validity_days", "180"),
    ];
    let res = admin.post_raw("/admin/t/yokohama/vaccines", &vaccine).await;
    assert_eq!(res.status(), 403);
    let mut forged = vaccine.to_vec();
    forged.push(("csrf", "forged-token-forged-token-forged-token"));
    let res = admin.post_raw("/admin/t/yokohama/vaccines", &forged).await;
    assert_eq!(res.status(), 403);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM vaccines WHERE name = 'NoCsrf'")
        .fetch_one(&app.owner)
        .await
        .expect("count");
    assert_eq!(count, 0, "nothing was created");

    // the login form too: no CSRF cookie and token, no login
    let res = app
        .anonymous()
        .post_raw(
            "/admin/login",
            &[("email", "admin@yokohama.example"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 403);

    // and with the token it works
    let res = admin.post("/admin/t/yokohama/vaccines", &vaccine).await;
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn session_cookies_are_http_only_same_site_lax_and_logout_ends_the_session() {
    let app = spawn_app().await;
    app.staff("op@yoyaku.example", None).await;
    let mut client = app.anonymous();
    let res = client.attempt_login("op@yoyaku.example", PASSWORD).await;
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("yoyaku_staff="))
        .expect("session cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http in tests: no Secure flag"
    );
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM staff_sessions")
        .fetch_one(&app.owner)
        .await
        .expect("session row");
    let token = cookie["yoyaku_staff=".len()..]
        .split(';')
        .next()
        .expect("value");
    assert_ne!(
        stored,
        token.as_bytes(),
        "only a hash of the token is stored"
    );

    client.refresh_csrf().await;
    assert_eq!(client.get("/admin/tenants").await.status(), 200);
    assert_eq!(client.post("/admin/logout", &[]).await.status(), 303);
    let after = client.get("/admin/tenants").await;
    assert_eq!(after.status(), 303, "logged out: back to the login page");
}

#[tokio::test]
async fn configuration_changes_and_resident_views_are_in_the_audit_log_with_the_actor() {
    let app = spawn_app().await;
    let tenant = app.seeded_tenant("yokohama", "141003").await;
    let mut admin = app
        .staff_client(
            "admin@yokohama.example",
            Some((tenant.id, Role::CityAdmin, &[])),
        )
        .await;
    let res = admin
        .post(
            "/admin/t/yokohama/vaccines",
            &[
                ("name", "Audited"),
                ("maker", "X"),
                ("doses", "2"),
                ("min_interval_days", "21"),
                ("booster_interval_months", "6"),
                ("days_until_effective", "7"),
                ("validity_days", "180"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let vaccine: uuid::Uuid = sqlx::query_scalar("SELECT id FROM vaccines WHERE name = 'Audited'")
        .fetch_one(&app.owner)
        .await
        .expect("vaccine");
    let res = admin
        .post(
            "/admin/t/yokohama/venues",
            &[
                ("name", "Audit hall"),
                ("kind", "mass"),
                ("vaccine_id", &vaccine.to_string()),
                ("booking_deadline_hours", "24"),
                ("cancel_cutoff_days", "2"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let venue = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let res = admin
        .post(
            &format!("{venue}/schedules"),
            &[
                ("wd1", "1"),
                ("start_time", "09:00"),
                ("end_time", "10:00"),
                ("slot_minutes", "30"),
                ("capacity", "5"),
                ("valid_from", "2030-01-07"),
                ("valid_until", "2030-01-14"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.expect("body").contains("4 slots created"));
    let page = admin
        .get("/admin/t/yokohama/residents?ticket=1000000001")
        .await
        .text()
        .await
        .expect("lookup");
    assert!(page.contains(&platform::demo::demo_resident(1).kana_name));
    let mut staff_person = app
        .staff_client(
            "clerk@yokohama.example",
            Some((tenant.id, Role::CallCenter, &[])),
        )
        .await;
    assert_eq!(
        staff_person
            .get("/admin/t/yokohama/residents?ticket=1000000002")
            .await
            .status(),
        200
    );
    assert_eq!(
        admin
            .post(
                "/admin/t/yokohama/staff",
                &[("email", "new@yokohama.example"), ("role", "auditor")]
            )
            .await
            .status(),
        200
    );

    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT actor, action, object, ip FROM audit_log WHERE tenant_id = $1 ORDER BY at, id",
    )
    .bind(tenant.id.0)
    .fetch_all(&app.owner)
    .await
    .expect("audit");
    let has = |actor: &str, action: &str| rows.iter().any(|r| r.0 == actor && r.1 == action);
    for action in [
        "staff.login",
        "vaccine.create",
        "venue.create",
        "schedule.create",
        "resident.view",
        "role.grant",
    ] {
        assert!(
            has("admin@yokohama.example", action),
            "{action} missing: {rows:?}"
        );
    }
    assert!(has("clerk@yokohama.example", "resident.view"), "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.3.as_deref() == Some("127.0.0.1") || r.0 == "system"),
        "every entry says where from: {rows:?}"
    );

    // the auditor role can read it, call-centre staff cannot
    let page = admin.get("/admin/t/yokohama/audit").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("body").contains("resident.view"));
    assert_eq!(
        staff_person.get("/admin/t/yokohama/audit").await.status(),
        403
    );
}

#[tokio::test]
async fn the_runtime_role_cannot_rewrite_or_delete_the_audit_log() {
    let app = spawn_app().await;
    app.seeded_tenant("yokohama", "141003").await;
    for attack in [
        "UPDATE audit_log SET actor = 'nobody'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "UPDATE platform_audit_log SET actor = 'nobody'",
        "DELETE FROM platform_audit_log",
    ] {
        assert!(
            app.pool.execute(attack).await.is_err(),
            "the runtime role could run: {attack}"
        );
    }
}

#[tokio::test]
async fn the_first_operator_is_created_from_the_command_line_with_a_one_time_link() {
    let app = spawn_app().await;
    let out = crate::support::yoyaku_cli(
        &app,
        &["staff", "create-operator", "--email", "Ops@Example.jp"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ops@example.jp is the platform operator"),
        "{stdout}"
    );
    let link = stdout
        .split_whitespace()
        .find(|w| w.contains("/admin/invitation/"))
        .expect("link");
    let path = &link[link.find("/admin/").expect("path")..];
    let mut client = app.anonymous();
    let html = client.get(path).await.text().await.expect("page");
    let csrf = csrf_in(&html).expect("csrf");
    assert_eq!(
        client
            .post_raw(path, &[("password", PASSWORD), ("csrf", &csrf)])
            .await
            .status(),
        303
    );
    // the server process loaded its policy before the CLI granted the role
    app.authz.reload().await.expect("reload");
    let mut operator = app.login("ops@example.jp", PASSWORD).await;
    assert_eq!(operator.get("/admin/tenants").await.status(), 200);
}
