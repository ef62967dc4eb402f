//! CSRF is one layer on the whole admin router (admin-ui/src/csrf.rs), not a call each handler
//! must remember: every state-changing request under /admin without the session's token is
//! refused with 403 before any handler runs, and nothing in the database changes. The forms shown
//! before login keep their double-submit cookie.

use std::collections::{BTreeSet, VecDeque};

use platform::staff::authz::Role;

use crate::support::{AdminClient, PASSWORD, TestApp, csrf_in, demo_app};

/// A fingerprint of every table's content, except the session and throttle rows that reading a
/// page legitimately touches (idle expiry).
async fn fingerprint(app: &TestApp) -> Vec<(String, String)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
         AND tablename NOT IN ('staff_sessions', 'login_failures') ORDER BY tablename",
    )
    .fetch_all(&app.owner)
    .await
    .expect("tables");
    let mut out = Vec::new();
    for table in tables {
        let sql = format!(
            "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
        );
        let digest: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&app.owner)
            .await
            .expect("digest");
        out.push((table, digest));
    }
    out
}

fn attribute_values<'h>(html: &'h str, tag_start: &str, attr: &str) -> Vec<&'h str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(tag_start) {
        let tag = &rest[at..];
        let end = tag.find('>').unwrap_or(tag.len());
        let inside = &tag[..end];
        let needle = format!("{attr}=\"");
        if let Some(a) = inside.find(&needle) {
            let value = &inside[a + needle.len()..];
            if let Some(v) = value.split('"').next() {
                out.push(v);
            }
        }
        rest = &tag[end.min(tag.len())..];
        if rest.len() == tag.len() {
            break;
        }
    }
    out
}

/// Every `<form method="post" action=…>` on the admin pages `client` can reach from /admin by
/// following links (downloads and logout excepted).
async fn post_forms(client: &mut AdminClient<'_>, start: &[&str]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<String> = start.iter().map(|s| (*s).to_owned()).collect();
    let mut actions = BTreeSet::new();
    while let Some(path) = queue.pop_front() {
        if seen.len() >= 150 || !seen.insert(path.clone()) {
            continue;
        }
        let res = client.get(&path).await;
        let is_html = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        if !res.status().is_success() || !is_html {
            continue;
        }
        let html = res.text().await.expect("page");
        for form in html.split("<form").skip(1) {
            let head = form.split('>').next().unwrap_or("");
            if head.contains("method=\"post\"")
                && let Some(a) = head.split("action=\"").nth(1)
                && let Some(action) = a.split('"').next()
            {
                actions.insert(action.replace("&amp;", "&"));
            }
        }
        for href in attribute_values(&html, "<a ", "href") {
            let href = href.replace("&amp;", "&");
            let path_only = href.split('?').next().unwrap_or("");
            if href.starts_with("/admin")
                && !path_only.ends_with("/xlsx")
                && !path_only.ends_with("/print")
                && !path_only.contains("/download")
                && !seen.contains(path_only)
            {
                queue.push_back(path_only.to_owned());
            }
        }
    }
    actions
}

#[tokio::test]
async fn every_admin_post_without_the_session_token_is_refused_and_changes_nothing() {
    let app = demo_app().await;
    let tenant = app.demo_tenant().await;
    let mut op = app.staff_client("op@yoyaku.example", None).await;
    let mut admin = app
        .staff_client(
            "admin@city.example",
            Some((tenant.id, Role::CityAdmin, &[])),
        )
        .await;
    let mut forms = post_forms(&mut op, &["/admin", "/admin/plans"]).await;
    forms.extend(post_forms(&mut admin, &["/admin", "/admin/t/demo"]).await);
    // the crawl found the city's and the operator's forms, not just a few
    for expected in [
        "/admin/logout",
        "/admin/tenants",
        "/admin/plans",
        "/admin/t/demo/notifications/budget",
        "/admin/t/demo/billing/budget",
        "/admin/t/demo/booking-rules",
        "/admin/t/demo/staff",
    ] {
        assert!(forms.contains(expected), "{expected} not in {forms:?}");
    }
    assert!(forms.len() >= 20, "{forms:?}");
    // and an address no route serves: the layer sits in front of the router's fallback, so it
    // wraps every route there is (a route added later is covered without anyone remembering)
    forms.insert("/admin/no/such/route".to_owned());

    let before = fingerprint(&app).await;
    for client in [&mut op, &mut admin] {
        for action in &forms {
            for fields in [
                vec![("name", "x"), ("budget", "1")],
                vec![("csrf", "not-the-token"), ("budget", "1")],
                vec![("csrf", ""), ("budget", "1")],
            ] {
                let res = client.post_raw(action, &fields).await;
                assert_eq!(res.status(), 403, "POST {action} with {fields:?}");
            }
        }
    }
    // other state-changing methods too, before routing (no 405)
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let cookies = admin.cookie_header();
        let res = app
            .client
            .request(method.clone(), app.url("/admin/t/demo/venues"))
            .header("cookie", cookies)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 403, "{method}");
    }
    // the header works as well as the field (for scripts), and only with the right token
    let cookies = admin.cookie_header();
    let res = app
        .client
        .post(app.url("/admin/t/demo/notifications/budget"))
        .header("cookie", cookies.as_str())
        .header("x-csrf-token", "wrong")
        .form(&[("budget", "5")])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 403);
    assert_eq!(
        before,
        fingerprint(&app).await,
        "a refused post changed data"
    );

    let res = app
        .client
        .post(app.url("/admin/t/demo/notifications/budget"))
        .header("cookie", cookies.as_str())
        .header("x-csrf-token", admin.csrf.as_str())
        .form(&[("budget", "5")])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 303);
    // another session's token is not this session's
    let res = op
        .post_raw(
            "/admin/t/demo/notifications/budget",
            &[("csrf", admin.csrf.as_str()), ("budget", "7")],
        )
        .await;
    assert_eq!(res.status(), 403);
    // the session's own token passes
    let res = admin
        .post("/admin/t/demo/notifications/budget", &[("budget", "6")])
        .await;
    assert_eq!(res.status(), 303);
    let stored: Option<i64> =
        sqlx::query_scalar("SELECT sms_monthly_budget FROM notification_settings")
            .fetch_one(&app.owner)
            .await
            .expect("budget");
    assert_eq!(stored, Some(6));
}

#[tokio::test]
async fn a_post_without_a_session_goes_to_login_and_the_login_form_keeps_its_double_submit_cookie()
{
    let app = demo_app().await;
    app.staff("op@yoyaku.example", None).await;
    let before = fingerprint(&app).await;
    // no session at all: sent to the login page, nothing changes
    let res = app
        .client
        .post(app.url("/admin/tenants"))
        .form(&[("slug", "evil"), ("csrf", "x")])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/admin/login")
    );
    // login without the cookie, or with a field that does not repeat it: 403
    let res = app
        .client
        .post(app.url("/admin/login"))
        .form(&[
            ("email", "op@yoyaku.example"),
            ("password", PASSWORD),
            ("csrf", "a-token-nobody-set"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 403);
    let page = app.get("/admin/login").await;
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("yoyaku_csrf="))
        .and_then(|v| v.split(';').next())
        .expect("csrf cookie")
        .to_owned();
    let token = csrf_in(&page.text().await.expect("page")).expect("token in the form");
    let res = app
        .client
        .post(app.url("/admin/login"))
        .header("cookie", cookie.as_str())
        .form(&[
            ("email", "op@yoyaku.example"),
            ("password", PASSWORD),
            ("csrf", "not-the-cookie"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 403);
    assert_eq!(before, fingerprint(&app).await);
    // repeating the cookie logs in
    let res = app
        .client
        .post(app.url("/admin/login"))
        .header("cookie", cookie.as_str())
        .form(&[
            ("email", "op@yoyaku.example"),
            ("password", PASSWORD),
            ("csrf", token.as_str()),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 303);
    assert!(
        res.headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap_or("").starts_with("yoyaku_staff=")),
        "a session"
    );
}
