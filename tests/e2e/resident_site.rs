//! The resident site in a phone-sized headless Chromium: log in with the SMS code from the log
//! channel, book, see it in "my bookings", change, cancel — in Japanese with JavaScript, in English
//! (switched with the language links) with JavaScript off.

use chromiumoxide::Page;
use platform::demo::demo_resident;

use chromiumoxide::cdp::browser_protocol::page::GetLayoutMetricsParams;

use crate::browser::{
    PHONE, demo_login_path, go, html_now, launch, log_in_resident, switch_language,
};
use crate::support::{TestApp, demo_app, field_in};

struct Words {
    my_bookings: &'static str,
    done: &'static str,
    changed: &'static str,
    cancelled: &'static str,
    cancelled_badge: &'static str,
    first_dose: &'static str,
}

const JA: Words = Words {
    my_bookings: "わたしの予約",
    done: "予約が完了しました",
    changed: "予約を変更しました。",
    cancelled: "予約をキャンセルしました。",
    cancelled_badge: "キャンセル済み",
    first_dose: "1回目",
};

const EN: Words = Words {
    my_bookings: "My bookings",
    done: "You are booked",
    changed: "Your booking was changed.",
    cancelled: "Your booking was cancelled.",
    cancelled_badge: "Cancelled",
    first_dose: "1st dose",
};

async fn assert_fits_phone(page: &Page) {
    let metrics = page
        .execute(GetLayoutMetricsParams::default())
        .await
        .expect("layout metrics");
    let width = metrics.result.css_content_size.width;
    assert!(
        width <= f64::from(PHONE.0),
        "page is {width}px wide on a 390px phone"
    );
}

async fn live_booking(app: &TestApp, ticket: &str) -> Option<(uuid::Uuid, String)> {
    sqlx::query_as(
        "SELECT b.slot_id, b.status FROM bookings b JOIN residents r ON r.id = b.resident_id \
         WHERE r.ticket_no = $1 ORDER BY b.updated_at DESC LIMIT 1",
    )
    .bind(ticket)
    .fetch_optional(&app.owner)
    .await
    .expect("booking")
}

/// The whole flow on an open page at the login URL. `n` is a demo resident with a phone on file.
async fn resident_flow(app: &TestApp, page: &Page, n: u32, w: &Words) {
    let r = demo_resident(n);
    assert!(
        html_now(page)
            .await
            .contains(&format!("value=\"{}\"", r.ticket_no)),
        "the QR link pre-fills the ticket number"
    );
    assert_fits_phone(page).await;
    log_in_resident(page, r.birth_date, async || {
        app.login_code_sent_to(&format!("090{n:08}"))
            .await
            .expect("the SMS reached the log channel")
    })
    .await;
    assert!(
        html_now(page).await.contains(w.my_bookings),
        "{}",
        html_now(page).await
    );

    // book: venue → day → time → confirm → done
    go(page, "#book-new", "venues").await;
    go(page, "a.choice", "days").await;
    assert!(html_now(page).await.contains('○') || html_now(page).await.contains('△'));
    // a week out: beyond the booking deadline and the change/cancel cut-off
    go(page, "ul.choices li:nth-child(6) a.choice", "times").await;
    assert_fits_phone(page).await;
    go(page, "a.choice.slot", "confirm").await;
    go(page, "#confirm", "done").await;
    assert!(
        html_now(page).await.contains(w.done),
        "{}",
        html_now(page).await
    );
    let (first_slot, status) = live_booking(app, &r.ticket_no).await.expect("booked");
    assert_eq!(status, "booked");

    // my bookings shows it
    go(page, "#my-bookings", "bookings").await;
    let body = html_now(page).await;
    assert!(
        body.contains(w.first_dose)
            && [
                "市民ホール集団接種会場",
                "市立中央病院",
                "北部コミュニティセンター"
            ]
            .iter()
            .any(|v| body.contains(v)),
        "{body}"
    );

    // change to the last time of the day
    go(page, "a.button.secondary[href*='change=']", "venues").await;
    go(page, "a.choice", "days").await;
    go(page, "ul.choices li:nth-child(6) a.choice", "times").await;
    go(page, "ul.choices li:last-child a.choice.slot", "confirm").await;
    go(page, "#confirm", "done").await;
    assert!(
        html_now(page).await.contains(w.changed),
        "{}",
        html_now(page).await
    );
    let (moved_to, _) = live_booking(app, &r.ticket_no).await.expect("booking");
    assert_ne!(moved_to, first_slot, "the booking moved");

    // cancel
    go(page, "#my-bookings", "bookings").await;
    go(page, "a.button.secondary[href*='/cancel/']", "cancel").await;
    go(page, "#cancel", "bookings").await;
    let body = html_now(page).await;
    assert!(
        body.contains(w.cancelled) && body.contains(w.cancelled_badge),
        "{body}"
    );
    let (_, status) = live_booking(app, &r.ticket_no).await.expect("booking");
    assert_eq!(status, "cancelled");
    let booked: i64 =
        sqlx::query_scalar("SELECT COALESCE(sum(booked), 0) FROM slots WHERE id = ANY($1)")
            .bind(vec![first_slot, moved_to])
            .fetch_one(&app.owner)
            .await
            .expect("seats");
    assert_eq!(booked, 0, "every seat given back");
}

#[tokio::test]
async fn a_resident_books_changes_and_cancels_in_japanese_on_a_phone() {
    let app = demo_app().await;
    let browser = launch(PHONE).await;
    let page = browser.open(&app.url(&demo_login_path(30))).await;
    switch_language(&page, "ja", "接種券に書いてある番号").await;
    resident_flow(&app, &page, 30, &JA).await;
    browser.close().await;
}

#[tokio::test]
async fn a_resident_books_changes_and_cancels_in_english_without_javascript() {
    let app = demo_app().await;
    let browser = launch(PHONE).await;
    let page = browser
        .open_without_js(&app.url(&demo_login_path(33)))
        .await;
    // The language switch is a plain link and is remembered in a cookie.
    switch_language(&page, "zh-Hans", "请输入接种券上的号码和您的出生日期").await;
    switch_language(&page, "en", "Enter the number on your vaccination ticket").await;
    // Page scripts are off; DevTools can still read the page.
    resident_flow(&app, &page, 33, &EN).await;
    browser.close().await;
}

/// Where the city offers it, the confirm page lets a resident book dose 2 (same venue, after the
/// vaccine's interval) together with dose 1: both seats or neither. Plain HTTP, no JavaScript.
#[tokio::test]
async fn the_confirm_page_offers_dose_two_together_with_dose_one() {
    let app = demo_app().await;
    let first = app.demo_slot(0).await;
    // the demo has three weeks of slots; add one 22 days after the chosen slot
    let second: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity) \
         SELECT tenant_id, gen_random_uuid(), venue_id, starts_at + interval '22 days', ends_at + interval '22 days', 5 \
         FROM slots WHERE id = $1 RETURNING id",
    )
    .bind(first)
    .fetch_one(&app.owner)
    .await
    .expect("later slot");
    let token = app.resident_token(60).await;
    let cookie = format!("yk_session={token}; yk_lang=en");
    let page = app
        .client
        .get(app.url(&format!("/t/demo/confirm?slot={first}")))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("confirm page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("Book the 2nd dose now as well"), "{html}");
    assert!(
        html.contains(&format!("option value=\"{second}\"")),
        "{html}"
    );
    let field = |name: &str| field_in(&html, name).expect(name);
    let (csrf, key) = (field("csrf"), field("key"));
    let res = app
        .client
        .post(app.url("/t/demo/book"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("key", key.as_str()),
            ("slot", &first.to_string()),
            ("dose", "1"),
            ("second", &second.to_string()),
        ])
        .send()
        .await
        .expect("book");
    assert!(
        res.status().is_redirection() || res.status().is_success(),
        "{}",
        res.status()
    );
    let resident = app.resident_id(&demo_resident(60).ticket_no).await;
    let booked: Vec<(uuid::Uuid, i16)> = sqlx::query_as(
        "SELECT slot_id, dose FROM bookings WHERE resident_id = $1 AND status = 'booked' ORDER BY dose",
    )
    .bind(resident)
    .fetch_all(&app.owner)
    .await
    .expect("bookings");
    assert_eq!(booked, vec![(first, 1), (second, 2)]);
}
