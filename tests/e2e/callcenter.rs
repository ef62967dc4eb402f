//! The call centre (docs/callcenter.md): kana search that folds hiragana / katakana / half-width
//! input, booking on a caller's behalf with the audit log naming the operator, the deadline
//! override for city admins only, and who may open which call-centre page.

use platform::staff::authz::Role;
use uuid::Uuid;

use crate::support::{
    AdminClient, PASSWORD, ROLES, TestApp, body, demo_app, role_clients, spawn_app,
};

/// A resident stored in katakana with a name no demo resident has.
async fn yoshida(app: &TestApp, tenant: &tenants::Tenant) -> Uuid {
    let id = Uuid::now_v7();
    let mut tx = tenants::begin(&app.pool, tenant.id).await.expect("scope");
    sqlx::query(
        "INSERT INTO residents (tenant_id, id, ticket_no, birth_date, kana_name, sex, phone) \
         VALUES ($1, $2, '2000000001', '1950-05-06', 'ヨシダ　サブロウ', 'male', '09012345678')",
    )
    .bind(tenant.id.0)
    .bind(id)
    .execute(&mut *tx)
    .await
    .expect("insert resident");
    tx.commit().await.expect("commit");
    id
}

fn search_url(kana: &str, birth: &str, ticket: &str) -> String {
    let q: String = url_encode(&[("kana", kana), ("birth", birth), ("ticket", ticket)]);
    format!("/admin/t/demo/callcenter?{q}")
}

fn url_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn audit_actions(app: &TestApp, action: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT actor, object FROM audit_log WHERE action = $1 ORDER BY at")
        .bind(action)
        .fetch_all(&app.owner)
        .await
        .expect("audit")
}

#[tokio::test]
async fn the_call_centre_finds_a_katakana_resident_by_hiragana_or_half_width_input_and_books_for_them()
 {
    let app = demo_app().await;
    let demo = app.demo_tenant().await;
    let resident = yoshida(&app, &demo).await;
    let mut cc = app
        .staff_client(
            "operator1@callcenter.example",
            Some((demo.id, Role::CallCenter, &[])),
        )
        .await;

    // hiragana, part of family and given name, with a space
    let (status, html) = body(cc.get(&search_url("よしだ さぶ", "", "")).await).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("ヨシダ　サブロウ"),
        "hiragana input finds katakana: {html}"
    );
    assert!(html.contains(&format!("/admin/t/demo/callcenter/{resident}")));
    // half-width katakana with a voiced mark, plus the birth date (full-width digits and slashes)
    let (_, html) = body(cc.get(&search_url("ﾖｼﾀﾞ", "１９５０/５/６", "")).await).await;
    assert!(
        html.contains("ヨシダ　サブロウ"),
        "half-width input: {html}"
    );
    // the given name alone (partial, in the middle of the stored name)
    let (_, html) = body(cc.get(&search_url("サブロ", "", "2000")).await).await;
    assert!(html.contains("ヨシダ　サブロウ"));
    // a wrong birth date finds nobody
    let (_, html) = body(cc.get(&search_url("よしだ", "1950-05-07", "")).await).await;
    assert!(html.contains("no-callers") && !html.contains("ヨシダ　サブロウ"));
    // bad input: a message, nothing searched
    let (status, html) = body(cc.get(&search_url("", "5月6日", "")).await).await;
    assert_eq!(status, 422);
    assert!(html.contains("1956-04-04"), "{html}");

    // the caller's page (a personal-data view) offers the booking form
    let (status, html) = body(
        cc.get(&format!("/admin/t/demo/callcenter/{resident}"))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("book-form") || html.contains("slot-search"));

    let slot = app.demo_slot(0).await;
    let key = Uuid::now_v7().to_string();
    let path = format!("/admin/t/demo/callcenter/{resident}/book");
    let slot_s = slot.to_string();
    let fields = [
        ("slot", slot_s.as_str()),
        ("dose", "1"),
        ("key", key.as_str()),
    ];
    let res = cc.post(&path, &fields).await;
    assert_eq!(
        res.status(),
        303,
        "{}",
        res.text().await.unwrap_or_default()
    );
    // a double submit (same key) books nothing new
    let res = cc.post(&path, &fields).await;
    assert_eq!(res.status(), 303);
    let booked: Vec<(Uuid, Uuid, String)> =
        sqlx::query_as("SELECT id, slot_id, status FROM bookings WHERE resident_id = $1")
            .bind(resident)
            .fetch_all(&app.owner)
            .await
            .expect("bookings");
    assert_eq!(booked.len(), 1);
    assert_eq!((booked[0].1, booked[0].2.as_str()), (slot, "booked"));
    let seats: i32 = sqlx::query_scalar("SELECT booked FROM slots WHERE id = $1")
        .bind(slot)
        .fetch_one(&app.owner)
        .await
        .expect("slot");
    assert_eq!(seats, 1);

    // the audit log says who did it, and who looked
    let books = audit_actions(&app, "callcenter.book").await;
    assert_eq!(
        books.first(),
        Some(&(
            "operator1@callcenter.example".to_owned(),
            format!("resident/{resident}")
        ))
    );
    assert!(
        audit_actions(&app, "callcenter.search")
            .await
            .iter()
            .all(|(who, _)| who == "operator1@callcenter.example")
    );
    assert_eq!(audit_actions(&app, "callcenter.search").await.len(), 4);
    assert!(audit_actions(&app, "callcenter.view").await.contains(&(
        "operator1@callcenter.example".to_owned(),
        format!("resident/{resident}")
    )));
    // the booking shows on the caller's page
    let (_, html) = body(
        cc.get(&format!("/admin/t/demo/callcenter/{resident}?done=booked"))
            .await,
    )
    .await;
    assert!(html.contains("市民ホール集団接種会場") && html.contains("id=\"done\""));

    // change to another slot, then cancel — both through booking's rules, both audited
    let other = app.demo_slot(1).await.to_string();
    let b = booked[0].0.to_string();
    let key2 = Uuid::now_v7().to_string();
    let res = cc
        .post(
            &format!("/admin/t/demo/callcenter/{resident}/change"),
            &[("slot", &other), ("booking", &b), ("key", &key2)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let key3 = Uuid::now_v7().to_string();
    let res = cc
        .post(
            &format!("/admin/t/demo/callcenter/{resident}/bookings/{b}/cancel"),
            &[("key", &key3)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let status: String = sqlx::query_scalar("SELECT status FROM bookings WHERE id = $1")
        .bind(booked[0].0)
        .fetch_one(&app.owner)
        .await
        .expect("status");
    assert_eq!(status, "cancelled");
    assert_eq!(audit_actions(&app, "callcenter.change").await.len(), 1);
    assert_eq!(
        audit_actions(&app, "callcenter.cancel").await[0].0,
        "operator1@callcenter.example"
    );
}

#[tokio::test]
async fn the_databases_kana_folding_matches_the_rust_function() {
    let app = spawn_app().await;
    for s in [
        "ヤマダ タロウ",
        "やまだ　たろう",
        "ﾔﾏﾀﾞ ﾀﾛｳ",
        "ﾊﾟﾊﾟ",
        "ゔぁいおりん",
        "ｽｽﾞｷ ｰ",
        "ＡＢｃ１２",
        "いすゞ",
        "ｷｬﾝﾃﾞｨ",
        "",
    ] {
        let db: String = sqlx::query_scalar("SELECT yoyaku_kana_fold($1)")
            .bind(s)
            .fetch_one(&app.pool)
            .await
            .expect("fold");
        assert_eq!(db, platform::callcenter::kana_fold(s), "{s:?}");
    }
}

/// A booking whose change/cancel cut-off has passed (the venue's cut-off is moved to 30 days).
async fn booking_past_cutoff(app: &TestApp, tenant: &tenants::Tenant, n: u32) -> (Uuid, Uuid) {
    let resident = app
        .resident_id(&platform::demo::demo_resident(n).ticket_no)
        .await;
    let slot = app.demo_slot(i64::from(n)).await;
    let booked = platform::booking::book(
        &app.pool,
        tenant,
        &platform::booking::BookRequest {
            resident_id: resident,
            slot_id: slot,
            dose: platform::booking::Dose::First,
            companions: vec![],
            second_dose_slot: None,
            idempotency_key: format!("arrange-{}", Uuid::now_v7()),
        },
    )
    .await
    .expect("book");
    sqlx::query("UPDATE venues SET cancel_cutoff_days = 30 WHERE name = '市民ホール集団接種会場'")
        .execute(&app.owner)
        .await
        .expect("cut-off");
    (resident, booked[0].id)
}

async fn cancel(
    client: &mut AdminClient<'_>,
    resident: Uuid,
    booking: Uuid,
    override_cutoff: bool,
) -> u16 {
    let key = Uuid::now_v7().to_string();
    let mut fields = vec![("key", key.as_str())];
    if override_cutoff {
        fields.push(("override", "1"));
    }
    client
        .post(
            &format!("/admin/t/demo/callcenter/{resident}/bookings/{booking}/cancel"),
            &fields,
        )
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn only_a_city_admin_may_cancel_past_the_cutoff_and_the_override_is_audited() {
    let app = demo_app().await;
    let demo = app.demo_tenant().await;
    let (resident, booking) = booking_past_cutoff(&app, &demo, 5).await;
    let mut staff = app
        .staff_client("staff@demo.example", Some((demo.id, Role::CityStaff, &[])))
        .await;
    let mut cc = app
        .staff_client("cc@demo.example", Some((demo.id, Role::CallCenter, &[])))
        .await;
    let mut admin = app
        .staff_client("boss@demo.example", Some((demo.id, Role::CityAdmin, &[])))
        .await;

    // the resident site's rule holds for everyone…
    assert_eq!(cancel(&mut cc, resident, booking, false).await, 409);
    assert_eq!(cancel(&mut staff, resident, booking, false).await, 409);
    // …and only the city admin may pass it
    assert_eq!(cancel(&mut cc, resident, booking, true).await, 403);
    assert_eq!(cancel(&mut staff, resident, booking, true).await, 403);
    let live: String = sqlx::query_scalar("SELECT status FROM bookings WHERE id = $1")
        .bind(booking)
        .fetch_one(&app.owner)
        .await
        .expect("status");
    assert_eq!(live, "booked");
    // the page offers the override only to the admin
    let (_, html) = body(
        cc.get(&format!("/admin/t/demo/callcenter/{resident}"))
            .await,
    )
    .await;
    assert!(!html.contains("name=\"override\""));
    let (_, html) = body(
        admin
            .get(&format!("/admin/t/demo/callcenter/{resident}"))
            .await,
    )
    .await;
    assert!(html.contains("name=\"override\""));

    assert_eq!(cancel(&mut admin, resident, booking, true).await, 303);
    let (status, slot_booked): (String, i32) = sqlx::query_as(
        "SELECT b.status, s.booked FROM bookings b JOIN slots s ON s.id = b.slot_id WHERE b.id = $1",
    )
    .bind(booking)
    .fetch_one(&app.owner)
    .await
    .expect("after");
    assert_eq!((status.as_str(), slot_booked), ("cancelled", 0));
    let overrides = audit_actions(&app, "callcenter.cancel_override").await;
    assert_eq!(
        overrides,
        vec![("boss@demo.example".to_owned(), format!("booking/{booking}"))]
    );
    // and the resident hears about it (a task queued in the same transaction)
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE idempotency_key LIKE '%/' || $1",
    )
    .bind(format!("booking-cancelled:{booking}"))
    .fetch_one(&app.owner)
    .await
    .expect("outbox");
    assert_eq!(queued, 1);
}

/// Posts the call centre's book (or, with `booking`, change) form; returns the status and page.
async fn book_or_change(
    client: &mut AdminClient<'_>,
    resident: Uuid,
    slot: Uuid,
    booking: Option<Uuid>,
    override_deadline: bool,
) -> (u16, String) {
    let key = Uuid::now_v7().to_string();
    let slot = slot.to_string();
    let booking = booking.map(|b| b.to_string());
    let mut fields = vec![
        ("key", key.as_str()),
        ("slot", slot.as_str()),
        ("dose", "1"),
    ];
    if override_deadline {
        fields.push(("override", "1"));
    }
    let action = match &booking {
        Some(b) => {
            fields.push(("booking", b.as_str()));
            "change"
        }
        None => "book",
    };
    body(
        client
            .post(
                &format!("/admin/t/demo/callcenter/{resident}/{action}"),
                &fields,
            )
            .await,
    )
    .await
}

#[tokio::test]
async fn only_a_city_admin_may_book_or_move_past_the_booking_deadline_and_it_is_audited() {
    let app = demo_app().await;
    let demo = app.demo_tenant().await;
    let resident = app
        .resident_id(&platform::demo::demo_resident(7).ticket_no)
        .await;
    let (first, second) = (app.demo_slot(0).await, app.demo_slot(1).await);
    // every slot of the venue is now past its booking deadline (60 days before it starts)
    sqlx::query(
        "UPDATE venues SET booking_deadline_hours = 1440 WHERE name = '市民ホール集団接種会場'",
    )
    .execute(&app.owner)
    .await
    .expect("deadline");
    let mut cc = app
        .staff_client("cc@demo.example", Some((demo.id, Role::CallCenter, &[])))
        .await;
    let mut admin = app
        .staff_client("boss@demo.example", Some((demo.id, Role::CityAdmin, &[])))
        .await;
    let nothing_written = async || {
        let counts: (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM bookings WHERE resident_id = $1), \
                    (SELECT count(*) FROM idempotency_keys WHERE resident_id = $1), \
                    (SELECT count(*) FROM audit_log WHERE action LIKE 'callcenter.book%')",
        )
        .bind(resident)
        .fetch_one(&app.owner)
        .await
        .expect("counts");
        counts == (0, 0, 0)
    };

    // the residents' rule holds for the operator: a clear message, nothing written
    let (status, html) = book_or_change(&mut cc, resident, first, None, false).await;
    assert_eq!(status, 409);
    assert!(html.contains("Booking for this time has closed"), "{html}");
    assert!(nothing_written().await);
    // asking for the override without the right is refused outright
    assert_eq!(
        book_or_change(&mut cc, resident, first, None, true).await.0,
        403
    );
    assert!(nothing_written().await);
    // the free-slot list says which slots are past the deadline, and only the admin gets the box
    let (venue, day): (Uuid, chrono::NaiveDate) = sqlx::query_as(
        "SELECT venue_id, (starts_at AT TIME ZONE 'Asia/Tokyo')::date FROM slots WHERE id = $1",
    )
    .bind(first)
    .fetch_one(&app.owner)
    .await
    .expect("slot");
    let page = format!("/admin/t/demo/callcenter/{resident}?venue={venue}&day={day}");
    let (_, html) = body(cc.get(&page).await).await;
    assert!(html.contains("past the booking deadline") && !html.contains("override-deadline"));
    let (_, html) = body(admin.get(&page).await).await;
    assert!(html.contains("override-deadline"));

    // the city admin books past the deadline: booking, seat, outbox row and audit entry together
    let (status, html) = book_or_change(&mut admin, resident, first, None, true).await;
    assert_eq!(status, 303, "{html}");
    let booking: Uuid = sqlx::query_scalar(
        "SELECT id FROM bookings WHERE resident_id = $1 AND slot_id = $2 AND status = 'booked'",
    )
    .bind(resident)
    .bind(first)
    .fetch_one(&app.owner)
    .await
    .expect("booked");
    assert_eq!(
        audit_actions(&app, "callcenter.book_override").await,
        vec![(
            "boss@demo.example".to_owned(),
            format!("resident/{resident}")
        )]
    );
    assert!(audit_actions(&app, "callcenter.book").await.is_empty());

    // moving it is past the deadline too: refused for the operator, done by the admin
    let (status, _) = book_or_change(&mut cc, resident, second, Some(booking), false).await;
    assert_eq!(status, 409);
    let (status, html) = book_or_change(&mut admin, resident, second, Some(booking), true).await;
    assert_eq!(status, 303, "{html}");
    let seats: Vec<(Uuid, i32)> =
        sqlx::query_as("SELECT id, booked FROM slots WHERE id = ANY($1) ORDER BY id")
            .bind(vec![first, second])
            .fetch_all(&app.owner)
            .await
            .expect("seats");
    let seat = |id: Uuid| seats.iter().find(|s| s.0 == id).map(|s| s.1);
    assert_eq!((seat(first), seat(second)), (Some(0), Some(1)));
    assert_eq!(
        audit_actions(&app, "callcenter.change_override").await,
        vec![("boss@demo.example".to_owned(), format!("booking/{booking}"))]
    );
}

#[tokio::test]
async fn every_role_gets_exactly_the_call_centre_pages_and_actions_it_is_allowed() {
    let app = demo_app().await;
    let demo = app.demo_tenant().await;
    let resident = yoshida(&app, &demo).await;
    let mut people = role_clients(&app, &demo).await;
    //                      op   admin staff venue hosp  cc   auditor
    let search: [u16; 7] = [200, 200, 200, 403, 403, 200, 200];
    let view: [u16; 7] = [200, 200, 200, 403, 403, 200, 200];
    let book: [u16; 7] = [303, 303, 303, 403, 403, 303, 403];
    for (i, client) in people.iter_mut().enumerate() {
        let who = ROLES[i].0;
        let s = client
            .get(&search_url("よしだ", "", ""))
            .await
            .status()
            .as_u16();
        assert_eq!(s, search[i], "search as {who}");
        let s = client
            .get(&format!("/admin/t/demo/callcenter/{resident}"))
            .await
            .status()
            .as_u16();
        assert_eq!(s, view[i], "view as {who}");
        // each allowed role books (and then cancels, so the next one can book dose 1 again)
        let slot = app.demo_slot(0).await.to_string();
        let key = Uuid::now_v7().to_string();
        let s = client
            .post(
                &format!("/admin/t/demo/callcenter/{resident}/book"),
                &[("slot", &slot), ("dose", "1"), ("key", &key)],
            )
            .await
            .status()
            .as_u16();
        assert_eq!(s, book[i], "book as {who}");
        if s == 303 {
            let b: Uuid = sqlx::query_scalar(
                "SELECT id FROM bookings WHERE resident_id = $1 AND status = 'booked'",
            )
            .bind(resident)
            .fetch_one(&app.owner)
            .await
            .expect("booked");
            let key = Uuid::now_v7().to_string();
            let s = client
                .post(
                    &format!("/admin/t/demo/callcenter/{resident}/bookings/{b}/cancel"),
                    &[("key", &key)],
                )
                .await
                .status()
                .as_u16();
            assert_eq!(s, 303, "cancel as {who}");
            let who_booked = audit_actions(&app, "callcenter.book").await;
            assert!(
                who_booked
                    .last()
                    .is_some_and(|(a, _)| a == &format!("{who}@roles.example"))
            );
        }
    }
    // someone else's tenant: not found, not forbidden
    let other = crate::support::bare_tenant(&app.pool, "othercity", "他市").await;
    let _ = other;
    let s = people[5]
        .get("/admin/t/othercity/callcenter?kana=%E3%83%A4")
        .await
        .status()
        .as_u16();
    assert_eq!(s, 404);
}

#[tokio::test]
async fn an_operator_finds_a_caller_and_books_for_them_in_a_real_browser() {
    use crate::browser::{DESKTOP, click_and_wait, goto, launch, set_value, wait_text};
    let app = demo_app().await;
    let demo = app.demo_tenant().await;
    let resident = yoshida(&app, &demo).await;
    app.staff(
        "phone@callcenter.example",
        Some((demo.id, Role::CallCenter, &[])),
    )
    .await;
    let slot = app.demo_slot(0).await;
    let (venue, day): (Uuid, chrono::NaiveDate) = sqlx::query_as(
        "SELECT venue_id, (starts_at AT TIME ZONE 'Asia/Tokyo')::date FROM slots WHERE id = $1",
    )
    .bind(slot)
    .fetch_one(&app.owner)
    .await
    .expect("slot");
    let base = app.url("");
    let browser = launch(DESKTOP).await;
    let page = browser
        .staff_page(&base, "phone@callcenter.example", PASSWORD)
        .await;

    goto(&page, format!("{base}/admin/t/demo/callcenter")).await;
    // what the IME commits for 「よしだ」, typed in hiragana
    set_value(&page, "#caller-search input[name=kana]", "よしだ").await;
    click_and_wait(&page, "#caller-search button").await;
    wait_text(&page, "ヨシダ　サブロウ").await;
    click_and_wait(&page, "#callers a").await;
    wait_text(&page, "2000000001").await;
    goto(
        &page,
        format!("{base}/admin/t/demo/callcenter/{resident}?venue={venue}&day={day}"),
    )
    .await;
    click_and_wait(&page, "#book-form button[type=submit]").await;
    wait_text(&page, "Booked.").await;
    let booked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bookings WHERE resident_id = $1 AND status = 'booked'",
    )
    .bind(resident)
    .fetch_one(&app.owner)
    .await
    .expect("bookings");
    assert_eq!(booked, 1);
    assert_eq!(
        audit_actions(&app, "callcenter.book").await[0].0,
        "phone@callcenter.example"
    );
    browser.close().await;
}
