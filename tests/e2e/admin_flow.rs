//! The admin UI in a real browser: from onboarding a city to its first imported residents, and a
//! venue staff member who cannot open another venue's pages.

use crate::browser::{
    DESKTOP, choose_file, fill, goto, href, launch, log_in_staff, set_value, submit, text,
};
use crate::support::{PASSWORD, spawn_app};

const ADMIN_PASSWORD: &str = "testcity admin password";
const VENUE_PASSWORD: &str = "venue staff password 1";

async fn log_out(page: &chromiumoxide::Page) {
    submit(page, "header form button", "Password").await;
}

/// The link's path on the test server (links carry http.public_url, which tests do not set).
fn on_test_server(base: &str, link: &str) -> String {
    format!(
        "{base}{}",
        &link[link.find("/admin/").expect("an admin link")..]
    )
}

#[tokio::test]
async fn an_operator_onboards_testcity_whose_admin_sets_it_up_and_venue_staff_see_only_their_venue()
{
    let app = spawn_app().await;
    app.staff("operator@yoyaku.example", None).await;
    let base = app.url("");
    let browser = launch(DESKTOP).await;

    // operator: onboard Testcity and invite its admin
    let page = browser
        .staff_page(&base, "operator@yoyaku.example", PASSWORD)
        .await;
    goto(&page, format!("{base}/admin/tenants")).await;
    fill(&page, "#onboard input[name=name]", "Testcity").await;
    fill(&page, "#onboard input[name=slug]", "testcity").await;
    fill(&page, "#onboard input[name=code]", "141003").await;
    submit(&page, "#onboard button", "141003 · testcity").await;
    fill(
        &page,
        "#invite-admin input[name=email]",
        "admin@testcity.example",
    )
    .await;
    submit(&page, "#invite-admin button", "Invitation link").await;
    let invitation = href(&page, "#invitation-link").await;
    log_out(&page).await;

    // the admin accepts the invitation and logs in
    goto(&page, on_test_server(&base, &invitation)).await;
    fill(&page, "input[name=password]", ADMIN_PASSWORD).await;
    submit(&page, "#set-password", "Log in").await;
    log_in_staff(&page, &base, "admin@testcity.example", ADMIN_PASSWORD).await;
    assert!(
        text(&page).await.contains("Testcity"),
        "{}",
        text(&page).await
    );

    // a vaccine
    goto(&page, format!("{base}/admin/t/testcity/vaccines")).await;
    for (field, value) in [
        ("name", "コミナティ"),
        ("maker", "ファイザー"),
        ("doses", "2"),
        ("min_interval_days", "21"),
        ("booster_interval_months", "6"),
        ("days_until_effective", "7"),
        ("validity_days", "180"),
    ] {
        // Japanese cannot be typed key by key through CDP: set it as an IME would
        set_value(&page, &format!("#vaccine input[name={field}]"), value).await;
    }
    submit(&page, "#vaccine button", "ファイザー").await;

    // two venues: A (where the schedule goes) and B
    for name in ["Venue B hall", "Venue A hall"] {
        goto(&page, format!("{base}/admin/t/testcity/venues")).await;
        fill(&page, "#venue input[name=name]", name).await;
        fill(&page, "#venue input[name=address]", "1-1 Honcho").await;
        submit(&page, "#venue button", "Capacity schedules").await;
    }
    let venue_a = page.url().await.expect("url").expect("venue A url");
    assert!(venue_a.contains("/venues/"), "{venue_a}");

    // a schedule for venue A: Mon–Fri 09:00–11:00, 30-minute slots of 6, for the coming two weeks
    let today = chrono::Utc::now().date_naive();
    for wd in 1..=5 {
        page.find_element(format!("#schedule input[name=wd{wd}]"))
            .await
            .expect("weekday")
            .click()
            .await
            .expect("check");
    }
    set_value(&page, "#schedule input[name=start_time]", "09:00").await;
    set_value(&page, "#schedule input[name=end_time]", "11:00").await;
    fill(&page, "#schedule input[name=slot_minutes]", "30").await;
    fill(&page, "#schedule input[name=capacity]", "6").await;
    set_value(
        &page,
        "#schedule input[name=valid_from]",
        &(today + chrono::Duration::days(1)).to_string(),
    )
    .await;
    set_value(
        &page,
        "#schedule input[name=valid_until]",
        &(today + chrono::Duration::days(14)).to_string(),
    )
    .await;
    // 10 weekdays × 4 slots
    submit(&page, "#schedule button", "40 slots created").await;
    let slots: String = page
        .evaluate("document.querySelector('#slot-count').innerText")
        .await
        .expect("count")
        .into_value()
        .expect("string");
    assert_eq!(slots, "40");
    assert!(
        text(&page).await.contains("09:30–10:00"),
        "slots are shown in local time"
    );

    // residents from a CSV file
    let csv = std::env::temp_dir().join(format!("testcity-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(
        &csv,
        "ticket_no,birth_date,kana_name,sex\n3000000001,1950-04-01,ヤマダ タロウ,male\n3000000002,1961-12-24,スズキ ハナコ,female\n",
    )
    .expect("csv");
    goto(&page, format!("{base}/admin/t/testcity/import")).await;
    choose_file(&page, "#import input[type=file]", &csv).await;
    submit(&page, "#import button", "Imported: 2 new").await;
    let _ = std::fs::remove_file(&csv);
    goto(
        &page,
        format!("{base}/admin/t/testcity/residents?ticket=3000000002"),
    )
    .await;
    assert!(text(&page).await.contains("スズキ ハナコ"));

    // venue staff for venue A only
    let venue_a_id = venue_a.rsplit('/').next().expect("id").to_owned();
    let venue_b_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM venues WHERE name = 'Venue B hall'")
            .fetch_one(&app.owner)
            .await
            .expect("venue B");
    goto(&page, format!("{base}/admin/t/testcity/staff")).await;
    fill(
        &page,
        "#invite-staff input[name=email]",
        "nurse@testcity.example",
    )
    .await;
    set_value(&page, "#invite-staff select[name=role]", "venue_staff").await;
    set_value(&page, "#invite-staff select[name=venue]", &venue_a_id).await;
    submit(&page, "#invite-staff button", "Invitation link").await;
    let invitation = href(&page, "#invitation-link").await;
    log_out(&page).await;
    goto(&page, on_test_server(&base, &invitation)).await;
    fill(&page, "input[name=password]", VENUE_PASSWORD).await;
    submit(&page, "#set-password", "Log in").await;
    log_in_staff(&page, &base, "nurse@testcity.example", VENUE_PASSWORD).await;

    goto(&page, format!("{base}/admin/t/testcity")).await;
    let home = text(&page).await;
    assert!(
        home.contains("Venue A hall") && !home.contains("Venue B hall"),
        "{home}"
    );
    goto(&page, venue_a.clone()).await;
    assert!(
        text(&page).await.contains("Venue A hall"),
        "{}",
        text(&page).await
    );
    let b_url = format!("{base}/admin/t/testcity/venues/{venue_b_id}");
    goto(&page, b_url.clone()).await;
    let shown = text(&page).await;
    assert!(
        shown.contains("Page not found") && !shown.contains("Venue B hall"),
        "{shown}"
    );
    let mut nurse = app.anonymous();
    nurse
        .attempt_login("nurse@testcity.example", VENUE_PASSWORD)
        .await;
    assert_eq!(
        nurse
            .get(&format!("/admin/t/testcity/venues/{venue_b_id}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        nurse
            .get(&format!("/admin/t/testcity/venues/{venue_a_id}"))
            .await
            .status(),
        200
    );

    browser.close().await;
}
