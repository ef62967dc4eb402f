//! City set-up details through the admin UI: forms keep what was typed, slot capacity never goes below
//! what is booked, password resets, session expiry, suspension, and the operator's audit trail.

use platform::staff::authz::Role;

use crate::support::{PASSWORD, csrf_in, spawn_app};

#[tokio::test]
async fn a_rejected_form_says_why_keeps_the_typed_values_and_changes_nothing() {
    let app = spawn_app().await;
    let t = app.seeded_tenant("yokohama", "141003").await;
    let mut admin = app
        .staff_client("admin@yokohama.example", Some((t.id, Role::CityAdmin, &[])))
        .await;
    let res = admin
        .post(
            "/admin/t/yokohama/vaccines",
            &[
                ("name", "Typed name"),
                ("maker", "Typed maker"),
                ("doses", "9"),
                ("min_interval_days", "21"),
                ("booster_interval_months", "6"),
                ("days_until_effective", "7"),
                ("validity_days", "180"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let page = res.text().await.expect("page");
    assert!(page.contains("Doses: must be between 1 and 5"), "{page}");
    assert!(page.contains("value=\"Typed name\"") && page.contains("value=\"Typed maker\""));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM vaccines WHERE name = 'Typed name'")
        .fetch_one(&app.owner)
        .await
        .expect("count");
    assert_eq!(count, 0);

    let res = admin
        .post(
            "/admin/t/yokohama/vaccines",
            &[
                ("name", "コミナティ"),
                ("maker", "again"),
                ("doses", "2"),
                ("min_interval_days", "21"),
                ("booster_interval_months", "6"),
                ("days_until_effective", "7"),
                ("validity_days", "180"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422, "duplicate names are refused");
    assert!(res.text().await.expect("page").contains("exists already"));
}

#[tokio::test]
async fn a_slot_capacity_can_be_edited_but_never_below_what_is_booked() {
    let app = spawn_app().await;
    let t = app.seeded_tenant("yokohama", "141003").await;
    let (slot, venue): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "SELECT id, venue_id FROM slots WHERE tenant_id = $1 ORDER BY starts_at, id LIMIT 1",
    )
    .bind(t.id.0)
    .fetch_one(&app.owner)
    .await
    .expect("slot");
    sqlx::query("UPDATE slots SET booked = 3 WHERE id = $1")
        .bind(slot)
        .execute(&app.owner)
        .await
        .expect("book");
    let mut staff = app
        .staff_client("staff@yokohama.example", Some((t.id, Role::CityStaff, &[])))
        .await;
    let path = format!("/admin/t/yokohama/venues/{venue}/slots/{slot}");
    let res = staff.post(&path, &[("capacity", "2")]).await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .expect("page")
            .contains("3 places are booked already")
    );
    assert_eq!(staff.post(&path, &[("capacity", "3")]).await.status(), 303);
    let capacity: i32 = sqlx::query_scalar("SELECT capacity FROM slots WHERE id = $1")
        .bind(slot)
        .fetch_one(&app.owner)
        .await
        .expect("capacity");
    assert_eq!(capacity, 3);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'slot.capacity' AND actor = 'staff@yokohama.example'",
    )
    .fetch_one(&app.owner)
    .await
    .expect("audit");
    assert_eq!(audited, 1, "only the applied change is recorded");
}

#[tokio::test]
async fn a_password_reset_link_from_the_admin_sets_a_new_password_once_and_ends_old_sessions() {
    let app = spawn_app().await;
    let t = app.seeded_tenant("yokohama", "141003").await;
    let mut admin = app
        .staff_client("admin@yokohama.example", Some((t.id, Role::CityAdmin, &[])))
        .await;
    let clerk = app
        .staff(
            "clerk@yokohama.example",
            Some((t.id, Role::CallCenter, &[])),
        )
        .await;
    let mut old_session = app.login("clerk@yokohama.example", PASSWORD).await;
    let page = admin
        .post(&format!("/admin/t/yokohama/staff/{}/reset", clerk.id), &[])
        .await
        .text()
        .await
        .expect("page");
    let link = page
        .split("id=\"reset-link\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("reset link");
    let path = &link[link.find("/admin/").expect("path")..];
    let mut anonymous = app.anonymous();
    let html = anonymous.get(path).await.text().await.expect("reset page");
    let csrf = csrf_in(&html).expect("csrf");
    let new_password = "a brand new password";
    let done = anonymous
        .post_raw(path, &[("password", new_password), ("csrf", &csrf)])
        .await;
    assert_eq!(done.status(), 303);
    assert_eq!(
        anonymous
            .post_raw(
                path,
                &[("password", "yet another password"), ("csrf", &csrf)]
            )
            .await
            .status(),
        404,
        "the link works once"
    );
    assert_eq!(
        old_session.get("/admin").await.status(),
        303,
        "sessions from before the reset are over"
    );
    assert_eq!(
        app.anonymous()
            .attempt_login("clerk@yokohama.example", PASSWORD)
            .await
            .status(),
        401
    );
    app.login("clerk@yokohama.example", new_password).await;
}

#[tokio::test]
async fn idle_and_old_sessions_expire() {
    let app = spawn_app().await;
    let mut op = app.staff_client("op@yoyaku.example", None).await;
    assert_eq!(op.get("/admin/tenants").await.status(), 200);
    sqlx::query("UPDATE staff_sessions SET last_seen_at = now() - interval '31 minutes'")
        .execute(&app.owner)
        .await
        .expect("age the session");
    assert_eq!(
        op.get("/admin/tenants").await.status(),
        303,
        "back to login"
    );

    // a busy session still ends at its absolute lifetime
    let mut op = app.login("op@yoyaku.example", PASSWORD).await;
    sqlx::query("UPDATE staff_sessions SET created_at = now() - interval '13 hours'")
        .execute(&app.owner)
        .await
        .expect("age the session");
    assert_eq!(op.get("/admin/tenants").await.status(), 303);
}

#[tokio::test]
async fn the_operator_suspends_a_city_whose_staff_are_then_locked_out_and_it_is_audited() {
    let app = spawn_app().await;
    let t = app.seeded_tenant("yokohama", "141003").await;
    let mut admin = app
        .staff_client("admin@yokohama.example", Some((t.id, Role::CityAdmin, &[])))
        .await;
    let mut op = app.staff_client("op@yoyaku.example", None).await;
    assert_eq!(admin.get("/admin/t/yokohama/venues").await.status(), 200);
    assert_eq!(
        op.post("/admin/tenants/yokohama/status", &[("status", "suspended")])
            .await
            .status(),
        303
    );
    assert_eq!(admin.get("/admin/t/yokohama/venues").await.status(), 403);
    assert_eq!(
        admin
            .post("/admin/tenants/yokohama/status", &[("status", "active")])
            .await
            .status(),
        404,
        "only the operator may change a tenant's status"
    );
    let actions: Vec<(String, String)> =
        sqlx::query_as("SELECT actor, action FROM platform_audit_log ORDER BY at, id")
            .fetch_all(&app.owner)
            .await
            .expect("platform audit");
    assert!(
        actions.contains(&("op@yoyaku.example".into(), "tenant.status".into())),
        "{actions:?}"
    );
    assert!(actions.contains(&("op@yoyaku.example".into(), "staff.login".into())));
}

#[tokio::test]
async fn a_schedule_generates_slots_on_its_weekdays_in_local_time_except_closed_dates() {
    let app = spawn_app().await;
    let t = app.seeded_tenant("yokohama", "141003").await;
    let admin = app
        .staff("admin@yokohama.example", Some((t.id, Role::CityAdmin, &[])))
        .await;
    let actor = platform::staff::authz::Actor::staff(admin.id, &admin.email, None);
    let venue: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM venues WHERE tenant_id = $1 LIMIT 1")
            .bind(t.id.0)
            .fetch_one(&app.owner)
            .await
            .expect("venue");
    let date = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
    let time = |s: &str| chrono::NaiveTime::parse_from_str(s, "%H:%M").expect("time");
    let schedule = platform::city::setup::NewSchedule {
        venue_id: venue,
        weekdays: vec![1, 3, 6],
        start_time: time("14:00"),
        end_time: time("15:00"),
        slot_minutes: 20,
        capacity: 4,
        // Monday 2031-03-03 to Sunday 2031-03-09; Wednesday closed
        valid_from: date("2031-03-03"),
        valid_until: date("2031-03-09"),
        closed_dates: vec![date("2031-03-05")],
    };
    let mut scope = app
        .authz
        .enter(
            &actor,
            t.id,
            platform::staff::authz::Object::Venue(venue),
            platform::staff::authz::Act::Write,
        )
        .await
        .expect("scope");
    let (_, created) = platform::city::setup::create_schedule(&mut scope, &schedule)
        .await
        .expect("schedule");
    scope.commit().await.expect("commit");
    assert_eq!(
        created, 6,
        "Monday and Saturday, three 20-minute slots each"
    );
    let starts: Vec<String> = sqlx::query_scalar(
        "SELECT to_char(starts_at AT TIME ZONE 'Asia/Tokyo', 'Dy HH24:MI') FROM slots \
         WHERE venue_id = $1 AND starts_at >= '2031-03-01' ORDER BY starts_at",
    )
    .bind(venue)
    .fetch_all(&app.owner)
    .await
    .expect("slots");
    assert_eq!(
        starts,
        [
            "Mon 14:00",
            "Mon 14:20",
            "Mon 14:40",
            "Sat 14:00",
            "Sat 14:20",
            "Sat 14:40"
        ]
    );
    let mut scope = app
        .authz
        .enter(
            &actor,
            t.id,
            platform::staff::authz::Object::Venue(venue),
            platform::staff::authz::Act::Write,
        )
        .await
        .expect("scope");
    let (_, again) = platform::city::setup::create_schedule(&mut scope, &schedule)
        .await
        .expect("schedule again");
    assert_eq!(again, 0, "existing slots are kept, not duplicated");
}

#[tokio::test]
async fn a_city_admin_cannot_reset_the_password_of_someone_who_also_works_elsewhere() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let mut admin_a = app
        .staff_client("admin@yokohama.example", Some((a.id, Role::CityAdmin, &[])))
        .await;
    let shared = app
        .staff("shared@example.jp", Some((b.id, Role::CityAdmin, &[])))
        .await;
    app.authz
        .grant(
            &platform::staff::authz::staff_subject(shared.id),
            a.id,
            Role::Auditor,
            &[],
        )
        .await
        .expect("grant in A too");
    let res = admin_a
        .post(&format!("/admin/t/yokohama/staff/{}/reset", shared.id), &[])
        .await;
    assert_eq!(res.status(), 422);
    assert!(
        res.text()
            .await
            .expect("page")
            .contains("also works for another municipality")
    );
    let outsider = app
        .staff(
            "outsider@kawasaki.example",
            Some((b.id, Role::CityStaff, &[])),
        )
        .await;
    let res = admin_a
        .post(
            &format!("/admin/t/yokohama/staff/{}/reset", outsider.id),
            &[],
        )
        .await;
    assert_eq!(res.status(), 404, "not a member of this city");
    let links: i64 =
        sqlx::query_scalar("SELECT count(*) FROM staff_tokens WHERE purpose = 'password_reset'")
            .fetch_one(&app.owner)
            .await
            .expect("count");
    assert_eq!(links, 0);
}

#[tokio::test]
async fn inviting_someone_with_a_pending_invitation_elsewhere_adds_the_role_but_no_link() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let mut admin_b = app
        .staff_client("admin@kawasaki.example", Some((b.id, Role::CityAdmin, &[])))
        .await;
    let page = admin_b
        .post(
            "/admin/t/kawasaki/staff",
            &[("email", "new@example.jp"), ("role", "city_staff")],
        )
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("id=\"invitation-link\""));
    let mut admin_a = app
        .staff_client("admin@yokohama.example", Some((a.id, Role::CityAdmin, &[])))
        .await;
    let page = admin_a
        .post(
            "/admin/t/yokohama/staff",
            &[("email", "new@example.jp"), ("role", "auditor")],
        )
        .await
        .text()
        .await
        .expect("page");
    assert!(
        !page.contains("id=\"invitation-link\""),
        "no second link: {page}"
    );
    assert!(page.contains("Role added to an existing account"), "{page}");
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_tokens")
        .fetch_one(&app.owner)
        .await
        .expect("count");
    assert_eq!(links, 1);
}

#[tokio::test]
async fn the_demo_city_comes_with_staff_logins_for_developers() {
    let app = crate::support::spawn_app_with(crate::support::Options {
        demo: true,
        ..Default::default()
    })
    .await;
    let mut admin = app
        .login("admin@demo.example", platform::demo::DEMO_STAFF_PASSWORD)
        .await;
    assert_eq!(admin.get("/admin/t/demo/venues").await.status(), 200);
    let mut operator = app
        .login("operator@demo.example", platform::demo::DEMO_STAFF_PASSWORD)
        .await;
    assert_eq!(operator.get("/admin/tenants").await.status(), 200);
}
