//! The city's booking rules page (`/admin/t/{slug}/booking-rules`): city admins change them (bad
//! input changes nothing and says what to fix; every change is audited with before and after);
//! city staff may read them only; venue staff and other cities' admins never see them.

use platform::staff::authz::Role;

use crate::support::{TestApp, demo_app};

async fn rules(app: &TestApp, tenant: uuid::Uuid) -> Option<(i32, i32, bool, i32)> {
    sqlx::query_as(
        "SELECT few_left_percent, dose2_reserve_percent, book_dose2_with_dose1, max_group_size \
         FROM booking_settings WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(&app.owner)
    .await
    .expect("rules")
}

#[tokio::test]
async fn a_city_admin_sets_the_booking_rules_and_others_cannot() {
    let app = demo_app().await;
    let t = app.demo_tenant().await;
    let path = "/admin/t/demo/booking-rules";
    let mut admin = app
        .staff_client("admin@rules.test", Some((t.id, Role::CityAdmin, &[][..])))
        .await;
    let page = admin.get(path).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("page");
    assert!(html.contains("Seats held for second doses"), "{html}");
    let before = rules(&app, t.id.0).await;

    let valid = [
        ("few_left_percent", "25"),
        ("few_left_seats", "2"),
        ("book_dose2_with_dose1", "on"),
        ("max_group_size", "3"),
        ("dose2_reserve_percent", "30"),
        ("dose2_reserve_until", "2099-04-01"),
    ];
    // Out of range, and a hold without a release date: refused with the field named, nothing saved.
    let mut bad = valid;
    bad[4] = ("dose2_reserve_percent", "130");
    let res = admin.post(path, &bad).await;
    assert_eq!(res.status(), 422);
    let html = res.text().await.expect("page");
    assert!(
        html.contains("Share of every slot held for second doses (%): 0–100"),
        "{html}"
    );
    let mut undated = valid;
    undated[5] = ("dose2_reserve_until", "");
    let res = admin.post(path, &undated).await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .expect("page")
            .contains("required when seats are held")
    );
    let mut wrong = valid;
    wrong[0] = ("few_left_percent", "twenty");
    assert_eq!(admin.post(path, &wrong).await.status(), 422);
    assert_eq!(rules(&app, t.id.0).await, before);

    let res = admin.post(path, &valid).await;
    assert_eq!(res.status(), 303);
    assert_eq!(rules(&app, t.id.0).await, Some((25, 30, true, 3)));
    let until: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT dose2_reserve_until FROM booking_settings WHERE tenant_id = $1")
            .bind(t.id.0)
            .fetch_one(&app.owner)
            .await
            .expect("until");
    // 00:00 in Tokyo on the release date
    assert_eq!(until.to_rfc3339(), "2099-03-31T15:00:00+00:00");
    let (actor, detail): (String, serde_json::Value) = sqlx::query_as(
        "SELECT actor, detail FROM audit_log WHERE tenant_id = $1 AND action = 'booking_rules.update'",
    )
    .bind(t.id.0)
    .fetch_one(&app.owner)
    .await
    .expect("audited");
    assert_eq!(actor, "admin@rules.test");
    assert_eq!(detail["after"]["dose2_reserve_percent"], 30);

    // City staff read, cannot change.
    let mut staff = app
        .staff_client("staff@rules.test", Some((t.id, Role::CityStaff, &[][..])))
        .await;
    assert_eq!(staff.get(path).await.status(), 200);
    let mut change = valid;
    change[3] = ("max_group_size", "9");
    assert_eq!(staff.post(path, &change).await.status(), 403);
    // Venue staff and an admin of another city do not even see the page.
    let venue = app.venue_of(app.demo_slot(0).await).await;
    let mut venue_staff = app
        .staff_client(
            "venue@rules.test",
            Some((t.id, Role::VenueStaff, &[venue][..])),
        )
        .await;
    assert!(matches!(
        venue_staff.get(path).await.status().as_u16(),
        403 | 404
    ));
    assert!(matches!(
        venue_staff.post(path, &change).await.status().as_u16(),
        403 | 404
    ));
    let other = app.seeded_tenant("rules-other", "141305").await;
    let mut stranger = app
        .staff_client(
            "other@rules.test",
            Some((other.id, Role::CityAdmin, &[][..])),
        )
        .await;
    assert_eq!(stranger.get(path).await.status(), 404);
    assert_eq!(stranger.post(path, &change).await.status(), 404);
    assert_eq!(rules(&app, t.id.0).await, Some((25, 30, true, 3)));
}
