//! Venue / hospital intake (issue 6, docs/intake.md): two tablets in headless Chromium working one
//! venue's day list live; every page and post per role; every step and undo in the audit log; the
//! resident's questionnaire and an earlier dose's side effects on the next venue's list.

use std::time::Duration;

use chromiumoxide::Page;
use platform::demo::demo_resident;
use platform::staff::authz::Role;
use uuid::Uuid;

use crate::browser::{
    DESKTOP, click_and_wait, fill, goto, launch, set_value, submit, text_now, wait_text,
};
use crate::support::{AdminClient, PASSWORD, TestApp, csrf_in, demo_app};

const MASS: &str = "市民ホール集団接種会場";
const NORTH: &str = "北部コミュニティセンター";
const HOSPITAL: &str = "市立中央病院";

struct Fixture {
    app: TestApp,
    tenant: tenants::Tenant,
    /// The first mass venue (vaccine コミナティ): where today's bookings are.
    mass: Uuid,
    /// Another venue with the same vaccine: where dose 2 goes.
    north: Uuid,
    hospital: Uuid,
    /// The city's local date of today's slots.
    day: String,
    /// A free slot at `north` 30 days out (past dose 1's 21-day interval).
    dose2_slot: Uuid,
}

async fn venue_id(app: &TestApp, name: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM venues WHERE name = $1")
        .bind(name)
        .fetch_one(&app.owner)
        .await
        .expect("venue")
}

/// A slot at `venue` starting `offset` from now (owner pool: arranging only). It starts 13 seconds
/// past the minute so it never shares a start with the demo's slots, which start on whole minutes
/// (a run at hh:00 or hh:30 used to hit their unique key).
async fn slot_at(app: &TestApp, venue: Uuid, offset: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity) \
         SELECT tenant_id, $2, id, date_trunc('minute', now()) + $3::interval + interval '13 seconds', \
                date_trunc('minute', now()) + $3::interval + interval '30 minutes 13 seconds', 10 \
         FROM venues WHERE id = $1",
    )
    .bind(venue)
    .bind(id)
    .bind(offset)
    .execute(&app.owner)
    .await
    .expect("slot");
    id
}

/// A live booking of demo resident `n` in `slot` for `dose`, seat counted (owner pool).
async fn booking_in(app: &TestApp, slot: Uuid, n: u32, dose: i16) -> Uuid {
    let resident = app.resident_id(&demo_resident(n).ticket_no).await;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO bookings (tenant_id, id, resident_id, slot_id, vaccine_id, dose, booked_by, group_id) \
         SELECT s.tenant_id, $1, $2, s.id, v.vaccine_id, $3, $2, $1 \
         FROM slots s JOIN venues v ON v.id = s.venue_id WHERE s.id = $4",
    )
    .bind(id)
    .bind(resident)
    .bind(dose)
    .bind(slot)
    .execute(&app.owner)
    .await
    .expect("booking");
    sqlx::query("UPDATE slots SET booked = booked + 1 WHERE id = $1")
        .bind(slot)
        .execute(&app.owner)
        .await
        .expect("seat");
    id
}

async fn fixture() -> Fixture {
    let app = demo_app().await;
    let tenant = app.demo_tenant().await;
    let mass = venue_id(&app, MASS).await;
    let north = venue_id(&app, NORTH).await;
    let hospital = venue_id(&app, HOSPITAL).await;
    let today = slot_at(&app, mass, "0 minutes").await;
    let day: String = sqlx::query_scalar(
        "SELECT to_char((starts_at AT TIME ZONE 'Asia/Tokyo')::date, 'YYYY-MM-DD') FROM slots WHERE id = $1",
    )
    .bind(today)
    .fetch_one(&app.owner)
    .await
    .expect("day");
    let dose2_slot = slot_at(&app, north, "30 days").await;
    Fixture {
        app,
        tenant,
        mass,
        north,
        hospital,
        day,
        dose2_slot,
    }
}

impl Fixture {
    /// Today's slot at the mass venue.
    async fn today_slot(&self) -> Uuid {
        sqlx::query_scalar(
            "SELECT id FROM slots WHERE venue_id = $1 AND starts_at <= now() + interval '1 minute' \
             ORDER BY starts_at DESC LIMIT 1",
        )
        .bind(self.mass)
        .fetch_one(&self.app.owner)
        .await
        .expect("today's slot")
    }
    fn list(&self, venue: Uuid) -> String {
        format!("/admin/t/demo/intake/{venue}?day={}", self.day)
    }
    fn visit(&self, venue: Uuid, booking: Uuid) -> String {
        format!("/admin/t/demo/intake/{venue}/b/{booking}")
    }
    async fn visit_status(&self, booking: Uuid) -> String {
        sqlx::query_scalar::<_, String>(
            "SELECT COALESCE((SELECT status FROM booking_visits WHERE booking_id = $1), 'booked')",
        )
        .bind(booking)
        .fetch_one(&self.app.owner)
        .await
        .expect("status")
    }
}

// ---- the browser test ----------------------------------------------------------------------------

/// Evaluates a JavaScript expression to a string ("" while the page is between documents).
async fn js(page: &Page, expr: &str) -> String {
    match page.evaluate(expr).await {
        Ok(v) => v.into_value::<String>().unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The status the row of `booking` shows on a list page.
async fn row_status(page: &Page, booking: Uuid) -> String {
    js(
        page,
        &format!(
            "(function(){{var r=document.querySelector('tr[data-booking=\"{booking}\"] td.status');return r?r.getAttribute('data-status'):'';}})()"
        ),
    )
    .await
}

/// Waits (without reloading) until the row shows `status`.
async fn wait_row_status(page: &Page, booking: Uuid, status: &str) {
    for _ in 0..100 {
        if row_status(page, booking).await == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "row {booking} never became {status}; shows {:?}",
        row_status(page, booking).await
    );
}

#[tokio::test]
async fn intake_two_tablets_check_in_vaccinate_note_and_book_dose_2_and_the_other_sees_it_live() {
    let f = fixture().await;
    let app = &f.app;
    let booking = booking_in(app, f.today_slot().await, 1, 1).await;
    let resident = demo_resident(1);
    app.staff(
        "nurse@mass.example",
        Some((f.tenant.id, Role::VenueStaff, &[f.mass][..])),
    )
    .await;
    app.staff(
        "desk@mass.example",
        Some((f.tenant.id, Role::VenueStaff, &[f.mass][..])),
    )
    .await;
    let base = app.url("");

    // tablet 1 and tablet 2: two browsers, two sessions
    let b1 = launch(DESKTOP).await;
    let b2 = launch(DESKTOP).await;
    let t1 = b1.staff_page(&base, "nurse@mass.example", PASSWORD).await;
    wait_text(&t1, "nurse@mass.example").await;
    let t2 = b2.staff_page(&base, "desk@mass.example", PASSWORD).await;
    wait_text(&t2, "desk@mass.example").await;
    goto(&t2, format!("{base}{}", f.list(f.mass))).await;
    wait_text(&t2, &resident.kana_name).await;
    assert_eq!(row_status(&t2, booking).await, "booked");
    // a marker that a reload would wipe out
    t2.evaluate("window.__sameDocument = 'yes'")
        .await
        .expect("mark the document");

    // tablet 1 checks the resident in from the list
    goto(&t1, format!("{base}{}", f.list(f.mass))).await;
    click_and_wait(
        &t1,
        &format!("tr[data-booking=\"{booking}\"] button[value=check_in]"),
    )
    .await;
    wait_row_status(&t1, booking, "checked_in").await;
    wait_row_status(&t2, booking, "checked_in").await;

    // tablet 1 records the vaccination on the visit page
    goto(&t1, format!("{base}{}", f.visit(f.mass, booking))).await;
    fill(&t1, "#vaccinate input[name=lot_number]", "FK8890").await;
    fill(&t1, "#vaccinate input[name=dose_ml]", "0.3").await;
    // (typing through CDP knows ASCII keys only: Japanese goes in as the value)
    set_value(&t1, "#vaccinate input[name=vaccinator]", "山田 医師").await;
    submit(&t1, "#vaccinate button", "FK8890").await;
    assert_eq!(
        js(
            &t1,
            "document.querySelector('#visit-status').getAttribute('data-status')"
        )
        .await,
        "vaccinated"
    );
    wait_row_status(&t2, booking, "vaccinated").await;
    wait_text(&t2, "FK8890").await;

    // … a side-effect note …
    set_value(&t1, "#side-effect select[name=kind]", "fever").await;
    set_value(&t1, "#side-effect select[name=severity]", "moderate").await;
    set_value(&t1, "#side-effect textarea[name=note]", "37.8℃ 観察中").await;
    submit(&t1, "#side-effect button", "37.8℃ 観察中").await;
    // the other tablet's list shows the new flag without a reload
    for _ in 0..100 {
        let flags = js(
            &t2,
            &format!("document.querySelector('tr[data-booking=\"{booking}\"] td.flags').innerText"),
        )
        .await;
        if flags.contains("発熱") || flags.contains("Fever") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let flags = js(
        &t2,
        &format!("document.querySelector('tr[data-booking=\"{booking}\"] td.flags').innerText"),
    )
    .await;
    assert!(flags.contains("発熱") || flags.contains("Fever"), "{flags}");

    // … and dose 2 booked on the spot, 30 days out at the north venue
    set_value(
        &t1,
        "#next-dose select[name=slot]",
        &f.dose2_slot.to_string(),
    )
    .await;
    // (the slot list names the north venue too: wait for the booked dose itself)
    click_and_wait(&t1, "#next-dose button").await;
    let mut dose2 = String::new();
    for _ in 0..100 {
        dose2 = js(
            &t1,
            "document.querySelector('#other-bookings li[data-dose=\"2\"]') ? 'yes' : ''",
        )
        .await;
        if dose2 == "yes" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dose2, "yes", "{}", text_now(&t1).await);

    // tablet 1 then marks observation done from the list; tablet 2 follows, still the same document
    goto(&t1, format!("{base}{}", f.list(f.mass))).await;
    click_and_wait(
        &t1,
        &format!("tr[data-booking=\"{booking}\"] button[value=observe]"),
    )
    .await;
    wait_row_status(&t2, booking, "observed").await;
    assert_eq!(
        js(&t2, "window.__sameDocument || ''").await,
        "yes",
        "tablet 2 must not have reloaded"
    );

    // what the database holds
    let (lot, ml, vaccinator, dose): (String, String, String, i16) = sqlx::query_as(
        "SELECT lot_number, dose_ml::text, vaccinator, dose FROM vaccination_records WHERE booking_id = $1",
    )
    .bind(booking)
    .fetch_one(&app.owner)
    .await
    .expect("vaccination record");
    assert_eq!(
        (lot.as_str(), ml.as_str(), vaccinator.as_str(), dose),
        ("FK8890", "0.30", "山田 医師", 1)
    );
    let (kind, severity): (String, String) =
        sqlx::query_as("SELECT kind, severity FROM side_effect_notes WHERE booking_id = $1")
            .bind(booking)
            .fetch_one(&app.owner)
            .await
            .expect("note");
    assert_eq!((kind.as_str(), severity.as_str()), ("fever", "moderate"));
    let (slot, status, booked): (Uuid, String, i32) = sqlx::query_as(
        "SELECT b.slot_id, b.status, s.booked FROM bookings b JOIN slots s ON s.id = b.slot_id \
         WHERE b.resident_id = (SELECT resident_id FROM bookings WHERE id = $1) AND b.dose = 2",
    )
    .bind(booking)
    .fetch_one(&app.owner)
    .await
    .expect("dose 2 booking");
    assert_eq!((slot, status.as_str(), booked), (f.dose2_slot, "booked", 1));
    assert_eq!(f.visit_status(booking).await, "observed");
    // the dose-1 booking keeps its seat and its meaning
    let kept: String = sqlx::query_scalar("SELECT status FROM bookings WHERE id = $1")
        .bind(booking)
        .fetch_one(&app.owner)
        .await
        .expect("dose 1");
    assert_eq!(kept, "booked");

    b1.close().await;
    b2.close().await;
}

// ---- per role --------------------------------------------------------------------------------------

/// Every page and post of one booking, with the fields a real form sends.
fn posts(f: &Fixture, booking: Uuid, seen: &str) -> Vec<(String, Vec<(&'static str, String)>)> {
    let v = f.visit(f.mass, booking);
    vec![
        (format!("{v}/step"), vec![("step", "check_in".into())]),
        (
            format!("{v}/questionnaire"),
            vec![("conditions", "高血圧".into()), ("allergies", "".into())],
        ),
        (
            format!("{v}/vaccinate"),
            vec![
                ("lot_number", "LOT-1".into()),
                ("dose_ml", "0.3".into()),
                ("vaccinator", "Dr. Sato".into()),
                ("vaccinated_at", "".into()),
            ],
        ),
        (
            format!("{v}/side-effects"),
            vec![
                ("kind", "injection_site".into()),
                ("severity", "mild".into()),
                ("onset", format!("{}T00:00", f.day)),
                ("note", "赤み".into()),
            ],
        ),
        (format!("{v}/step"), vec![("step", "observe".into())]),
        (format!("{v}/step"), vec![("step", "release".into())]),
        (
            format!("{v}/next-dose"),
            vec![
                ("slot", f.dose2_slot.to_string()),
                ("key", Uuid::new_v4().simple().to_string()),
            ],
        ),
        (format!("{v}/undo"), vec![("seen", seen.into())]),
    ]
}

fn pages(f: &Fixture, booking: Uuid) -> Vec<String> {
    vec![
        f.list(f.mass),
        format!("/admin/t/demo/intake/{}/rows?day={}", f.mass, f.day),
        f.visit(f.mass, booking),
    ]
}

async fn post(c: &mut AdminClient<'_>, path: &str, fields: &[(&'static str, String)]) -> u16 {
    let borrowed: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    c.post(path, &borrowed).await.status().as_u16()
}

#[tokio::test]
async fn intake_pages_and_posts_per_role_and_every_step_is_audited_with_who() {
    let f = fixture().await;
    let app = &f.app;
    let t = f.tenant.id;
    let slot = f.today_slot().await;
    let other = crate::support::bare_tenant(&app.pool, "othercity", "Other city").await;

    // roles allowed to work the mass venue's intake, each on a booking of its own
    let allowed: [(&str, Role, &[Uuid]); 4] = [
        ("admin@intake.test", Role::CityAdmin, &[]),
        ("staff@intake.test", Role::CityStaff, &[]),
        ("venue@intake.test", Role::VenueStaff, &[f.mass]),
        ("hospital@intake.test", Role::HospitalStaff, &[f.mass]),
    ];
    for (i, (email, role, venues)) in allowed.into_iter().enumerate() {
        let booking = booking_in(app, slot, 10 + i as u32, 1).await;
        let mut c = app.staff_client(email, Some((t, role, venues))).await;
        let index = c.get("/admin/t/demo/intake").await;
        assert_eq!(index.status(), 200, "{email}: index");
        assert!(index.text().await.expect("body").contains(MASS), "{email}");
        for p in pages(&f, booking) {
            let res = c.get(&p).await;
            assert_eq!(res.status(), 200, "{email}: GET {p}");
        }
        for (path, fields) in posts(&f, booking, "released") {
            assert_eq!(
                post(&mut c, &path, &fields).await,
                303,
                "{email}: POST {path}"
            );
        }
        // all the way through, then one step back
        assert_eq!(f.visit_status(booking).await, "observed", "{email}");
        let dose2: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bookings WHERE dose = 2 AND status = 'booked' \
             AND resident_id = (SELECT resident_id FROM bookings WHERE id = $1)",
        )
        .bind(booking)
        .fetch_one(&app.owner)
        .await
        .expect("dose 2");
        assert_eq!(dose2, 1, "{email}: dose 2 booked on the spot");
    }

    // roles that may not: nothing they post changes anything
    let target = booking_in(app, slot, 20, 1).await;
    let denied: [(&str, Grant, u16, u16); 5] = [
        // venue staff of another venue: the mass venue does not exist for them
        (
            "north@intake.test",
            Some((t, Role::VenueStaff, &[f.north][..])),
            404,
            404,
        ),
        (
            "clinic@intake.test",
            Some((t, Role::HospitalStaff, &[f.hospital][..])),
            404,
            404,
        ),
        // the call centre has no intake at all
        (
            "call@intake.test",
            Some((t, Role::CallCenter, &[][..])),
            403,
            403,
        ),
        // the auditor reads, never writes
        (
            "auditor@intake.test",
            Some((t, Role::Auditor, &[][..])),
            200,
            403,
        ),
        // another city's admin: nothing here exists
        (
            "admin@other.test",
            Some((other, Role::CityAdmin, &[][..])),
            404,
            404,
        ),
    ];
    for (email, role, read, write) in denied {
        let mut c = app.staff_client(email, role).await;
        for p in pages(&f, target) {
            assert_eq!(c.get(&p).await.status().as_u16(), read, "{email}: GET {p}");
        }
        for (path, fields) in posts(&f, target, "booked") {
            assert_eq!(
                post(&mut c, &path, &fields).await,
                write,
                "{email}: POST {path}"
            );
        }
        let index = c.get("/admin/t/demo/intake").await.status().as_u16();
        let want = match read {
            200 => 200,
            404 if email.ends_with("other.test") => 404,
            404 => 200,
            s => s,
        };
        assert_eq!(index, want, "{email}: index");
    }
    assert_eq!(f.visit_status(target).await, "booked");
    let untouched: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM vaccination_records WHERE booking_id = $1) \
              + (SELECT count(*) FROM side_effect_notes WHERE booking_id = $1) \
              + (SELECT count(*) FROM booking_visit_events WHERE booking_id = $1)",
    )
    .bind(target)
    .fetch_one(&app.owner)
    .await
    .expect("count");
    assert_eq!(untouched, 0);

    // venue staff of the north venue see only their venue in the index
    let mut north = app.login("north@intake.test", PASSWORD).await;
    let html = north
        .get("/admin/t/demo/intake")
        .await
        .text()
        .await
        .expect("index");
    assert!(html.contains(NORTH) && !html.contains(MASS), "{html}");

    // every status change and every undo has an audit entry naming who did it
    let events: Vec<(String, bool, String)> =
        sqlx::query_as("SELECT to_status, undo, actor FROM booking_visit_events ORDER BY at, id")
            .fetch_all(&app.owner)
            .await
            .expect("events");
    assert_eq!(
        events.len(),
        4 * 5,
        "four steps and one undo per allowed role"
    );
    for (to, undo, actor) in &events {
        let action = if *undo {
            "intake.undo".to_owned()
        } else {
            format!("intake.{to}")
        };
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_log WHERE action = $1 AND actor = $2 AND detail->>'to' = $3",
        )
        .bind(&action)
        .bind(actor)
        .bind(to)
        .fetch_one(&app.owner)
        .await
        .expect("audit");
        assert!(n >= 1, "no audit entry for {action} by {actor}");
    }
    // … and the city's audit page shows them with the person
    let mut admin = app.login("admin@intake.test", PASSWORD).await;
    let audit = admin
        .get("/admin/t/demo/audit")
        .await
        .text()
        .await
        .expect("audit page");
    for needle in [
        "venue@intake.test",
        "hospital@intake.test",
        "intake.checked_in",
        "intake.vaccinated",
        "intake.undo",
        "intake.next_dose_booked",
        "intake.side_effect",
    ] {
        assert!(audit.contains(needle), "audit page lacks {needle}");
    }
}

// ---- questionnaire, flags, side effects at the next venue, undo and conflicts ---------------------

#[tokio::test]
async fn intake_questionnaire_from_the_resident_site_flags_the_list_and_dose_1_notes_reach_the_dose_2_venue()
 {
    let f = fixture().await;
    let app = &f.app;
    let t = f.tenant.id;

    // the resident books dose 1 on the resident site and declares an allergy on the confirm page
    let n = 30;
    let token = app.resident_token(n).await;
    let slot = app.demo_slot(0).await;
    let cookie = format!("yk_session={token}");
    let confirm = app
        .client
        .get(app.url(&format!("/t/demo/confirm?slot={slot}")))
        .header("cookie", &cookie)
        .header("accept-language", "en")
        .send()
        .await
        .expect("confirm page")
        .text()
        .await
        .expect("body");
    assert!(confirm.contains("hq_allergies"), "{confirm}");
    let csrf = csrf_in(&confirm).expect("csrf");
    let slot_s = slot.to_string();
    let res = app
        .client
        .post(app.url("/t/demo/book"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("key", "intake-test-key-1"),
            ("slot", slot_s.as_str()),
            ("dose", "1"),
            ("hq_conditions", ""),
            ("hq_allergies", "卵 / egg"),
            ("hq_anaphylaxis", "1"),
        ])
        .send()
        .await
        .expect("book");
    let status = res.status();
    assert_eq!(status, 303, "{}", res.text().await.unwrap_or_default());
    let (allergies, anaphylaxis, by): (String, bool, String) = sqlx::query_as(
        "SELECT allergies, anaphylaxis, answered_by FROM health_questionnaires \
         WHERE resident_id = $1",
    )
    .bind(app.resident_id(&demo_resident(n).ticket_no).await)
    .fetch_one(&app.owner)
    .await
    .expect("questionnaire stored");
    assert_eq!(
        (allergies.as_str(), anaphylaxis, by.as_str()),
        ("卵 / egg", true, "resident")
    );

    // the venue's staff see the flags on that day's list
    let day: String = sqlx::query_scalar(
        "SELECT to_char((starts_at AT TIME ZONE 'Asia/Tokyo')::date, 'YYYY-MM-DD') FROM slots WHERE id = $1",
    )
    .bind(slot)
    .fetch_one(&app.owner)
    .await
    .expect("day");
    let mut mass = app
        .staff_client(
            "mass@flags.test",
            Some((t, Role::VenueStaff, &[f.mass][..])),
        )
        .await;
    let html = mass
        .get(&format!("/admin/t/demo/intake/{}?day={day}", f.mass))
        .await
        .text()
        .await
        .expect("list");
    assert!(
        html.contains("data-flag=\"allergies\"") && html.contains("data-flag=\"anaphylaxis\""),
        "{html}"
    );
    assert!(html.contains("卵 / egg"));
    // usable without JavaScript: plain forms and a meta refresh inside <noscript>
    assert!(
        html.contains("<noscript><meta http-equiv=\"refresh\""),
        "{html}"
    );
    assert!(html.contains("<form method=\"post\""));
    assert!(html.contains("src=\"/admin/static/intake.js\""));
    let js = app.get("/admin/static/intake.js").await;
    assert_eq!(js.status(), 200);
    assert!(js.text().await.expect("script").contains("intake-rows"));

    // dose 1 today at the mass venue: a side effect noted there …
    let booking = booking_in(app, f.today_slot().await, 31, 1).await;
    let v = f.visit(f.mass, booking);
    for (path, fields) in [
        (format!("{v}/step"), vec![("step", "check_in".to_owned())]),
        (
            format!("{v}/vaccinate"),
            vec![
                ("lot_number", "AB123".to_owned()),
                ("dose_ml", "0.3".to_owned()),
                ("vaccinator", "Dr. Ito".to_owned()),
            ],
        ),
        (
            format!("{v}/side-effects"),
            vec![
                ("kind", "allergic".to_owned()),
                ("severity", "severe".to_owned()),
                ("onset", format!("{}T00:05", f.day)),
                ("note", "じんましん、抗ヒスタミン薬投与".to_owned()),
            ],
        ),
        (
            format!("{v}/next-dose"),
            vec![
                ("slot", f.dose2_slot.to_string()),
                ("key", "next-dose-key-31".to_owned()),
            ],
        ),
    ] {
        assert_eq!(post(&mut mass, &path, &fields).await, 303, "POST {path}");
    }
    // … is shown to the north venue's staff, where dose 2 is booked (and they see only that)
    let dose2: Uuid = sqlx::query_scalar(
        "SELECT id FROM bookings WHERE slot_id = $1 AND dose = 2 AND status = 'booked'",
    )
    .bind(f.dose2_slot)
    .fetch_one(&app.owner)
    .await
    .expect("dose 2");
    let d2_day: String = sqlx::query_scalar(
        "SELECT to_char((starts_at AT TIME ZONE 'Asia/Tokyo')::date, 'YYYY-MM-DD') FROM slots WHERE id = $1",
    )
    .bind(f.dose2_slot)
    .fetch_one(&app.owner)
    .await
    .expect("day");
    let mut north = app
        .staff_client(
            "north@flags.test",
            Some((t, Role::VenueStaff, &[f.north][..])),
        )
        .await;
    let list = north
        .get(&format!("/admin/t/demo/intake/{}?day={d2_day}", f.north))
        .await
        .text()
        .await
        .expect("north list");
    assert!(
        list.contains(&dose2.to_string()) && list.contains("data-flag=\"side_effect\""),
        "{list}"
    );
    let page = north
        .get(&f.visit(f.north, dose2))
        .await
        .text()
        .await
        .expect("north visit");
    assert!(page.contains("じんましん、抗ヒスタミン薬投与"), "{page}");
    assert!(
        page.contains(MASS),
        "the note names the venue it was taken at"
    );
    // … while the dose-1 visit stays closed to them
    assert_eq!(north.get(&f.visit(f.mass, booking)).await.status(), 404);
}

#[tokio::test]
async fn intake_refuses_stale_or_wrong_steps_and_undo_of_vaccinated_removes_the_record() {
    let f = fixture().await;
    let app = &f.app;
    let t = f.tenant.id;
    let booking = booking_in(app, f.today_slot().await, 40, 1).await;
    let mut a = app
        .staff_client("a@undo.test", Some((t, Role::VenueStaff, &[f.mass][..])))
        .await;
    let mut b = app
        .staff_client("b@undo.test", Some((t, Role::CityStaff, &[][..])))
        .await;
    let v = f.visit(f.mass, booking);
    let check_in = [("step", "check_in".to_owned())];

    // a vaccination before check-in is refused, nothing written
    let vacc = [
        ("lot_number", "LOT-9".to_owned()),
        ("dose_ml", "0.3".to_owned()),
        ("vaccinator", "Dr. Kato".to_owned()),
    ];
    assert_eq!(post(&mut a, &format!("{v}/vaccinate"), &vacc).await, 409);
    // two tablets press "check in" at once: one wins, the other is told
    assert_eq!(post(&mut a, &format!("{v}/step"), &check_in).await, 303);
    let res = b.post(&format!("{v}/step"), &[("step", "check_in")]).await;
    assert_eq!(res.status(), 409);
    let body = res.text().await.expect("body");
    assert!(body.contains("Checked in"), "{body}");
    // bad input: a clear message, nothing changed
    let res = a
        .post(
            &format!("{v}/vaccinate"),
            &[
                ("lot_number", " "),
                ("dose_ml", "0.3"),
                ("vaccinator", "Dr. Kato"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.expect("body").contains("Lot number"));
    let res = a
        .post(
            &format!("{v}/vaccinate"),
            &[
                ("lot_number", "LOT-9"),
                ("dose_ml", "lots"),
                ("vaccinator", "Dr. Kato"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert_eq!(f.visit_status(booking).await, "checked_in");

    assert_eq!(post(&mut a, &format!("{v}/vaccinate"), &vacc).await, 303);
    // dose 2 too early (inside the 21-day interval) is refused by the booking rules
    let early = slot_at(app, f.north, "3 days").await;
    let early = early.to_string();
    let res = a
        .post(
            &format!("{v}/next-dose"),
            &[("slot", early.as_str()), ("key", "too-early-key-1")],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.expect("body").contains("Too soon"));
    // an undo from a stale page (it still showed "checked in") is refused
    assert_eq!(
        post(
            &mut b,
            &format!("{v}/undo"),
            &[("seen", "checked_in".to_owned())]
        )
        .await,
        409
    );
    assert_eq!(f.visit_status(booking).await, "vaccinated");
    // the right undo takes the record away and keeps its content in the audit log
    assert_eq!(
        post(
            &mut b,
            &format!("{v}/undo"),
            &[("seen", "vaccinated".to_owned())]
        )
        .await,
        303
    );
    assert_eq!(f.visit_status(booking).await, "checked_in");
    let records: i64 =
        sqlx::query_scalar("SELECT count(*) FROM vaccination_records WHERE booking_id = $1")
            .bind(booking)
            .fetch_one(&app.owner)
            .await
            .expect("records");
    assert_eq!(records, 0);
    let (actor, lot): (String, String) = sqlx::query_as(
        "SELECT actor, detail->'removed_record'->>'lot_number' FROM audit_log \
         WHERE action = 'intake.undo' AND object = $1",
    )
    .bind(format!("booking/{booking}"))
    .fetch_one(&app.owner)
    .await
    .expect("undo audited");
    assert_eq!((actor.as_str(), lot.as_str()), ("b@undo.test", "LOT-9"));
    // no-show and its undo
    let other = booking_in(app, f.today_slot().await, 41, 1).await;
    let w = f.visit(f.mass, other);
    assert_eq!(
        post(
            &mut a,
            &format!("{w}/step"),
            &[("step", "no_show".to_owned())]
        )
        .await,
        303
    );
    assert_eq!(f.visit_status(other).await, "no_show");
    assert_eq!(
        post(
            &mut a,
            &format!("{w}/undo"),
            &[("seen", "no_show".to_owned())]
        )
        .await,
        303
    );
    assert_eq!(f.visit_status(other).await, "booked");
    // a booking of another venue is not found through this venue's URL, nor an unknown one
    let elsewhere = booking_in(app, f.dose2_slot, 42, 1).await;
    assert_eq!(a.get(&f.visit(f.mass, elsewhere)).await.status(), 404);
    assert_eq!(
        post(
            &mut a,
            &format!("{}/step", f.visit(f.mass, elsewhere)),
            &check_in
        )
        .await,
        404
    );
    assert_eq!(a.get(&f.visit(f.mass, Uuid::now_v7())).await.status(), 404);
}

/// Who a test account is: a role in a tenant with its venues (None: the platform operator).
type Grant<'a> = Option<(tenants::TenantId, Role, &'a [Uuid])>;
