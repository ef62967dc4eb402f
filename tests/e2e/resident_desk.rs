//! The resident desk (`platform::residents::desk`), through both of its front ends — the resident
//! site and the resident GraphQL fields: a questionnaire commits with its booking or not at all
//! (acceptance 4 of issue 14), a dose is parsed strictly, and a suspended city refuses its
//! residents everywhere until it is reactivated (the resident part of acceptance 1).

use platform::demo::demo_resident;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, demo_app, field_in};

const BOOK: &str = "mutation($input: BookInput!) { book(input: $input) { bookings { id slotId dose } errors { code message field } } }";

/// The confirm page's hidden `csrf` and `key` for `slot`, as the resident's browser gets them.
async fn confirm_form(app: &TestApp, cookie: &str, slot: Uuid) -> (String, String) {
    let page = app
        .client
        .get(app.url(&format!("/t/demo/confirm?slot={slot}")))
        .header("cookie", cookie)
        .send()
        .await
        .expect("confirm page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let field = |name: &str| field_in(&html, name).expect(name);
    (field("csrf"), field("key"))
}

async fn post_book(app: &TestApp, cookie: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let res = app
        .client
        .post(app.url("/t/demo/book"))
        .header("cookie", cookie)
        .form(fields)
        .send()
        .await
        .expect("POST book");
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

/// Live bookings, seats taken in `slot`, booking-confirmed jobs and questionnaire rows of the
/// resident (owner pool: inspecting only).
async fn footprint(app: &TestApp, resident: Uuid, slot: Uuid) -> (i64, i32, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM bookings WHERE resident_id = $1 AND status = 'booked'), \
                (SELECT booked FROM slots WHERE id = $2), \
                (SELECT count(*) FROM apalis.jobs j JOIN bookings b \
                   ON j.idempotency_key = b.tenant_id || '/booking-confirmed:' || b.id WHERE b.resident_id = $1), \
                (SELECT count(*) FROM health_questionnaires WHERE resident_id = $1)",
    )
    .bind(resident)
    .bind(slot)
    .fetch_one(&app.owner)
    .await
    .expect("footprint")
}

/// Acceptance 4: the questionnaire is saved in the booking's own transaction. With the
/// questionnaire table refusing every write (a trigger the test installs), a booking with a
/// questionnaire leaves nothing behind — no booking, no seat, no notification job — on the site
/// and in the API; once the table accepts writes again the same request books, questionnaire
/// included.
#[tokio::test]
async fn a_questionnaire_and_its_booking_commit_together_or_not_at_all() {
    let app = demo_app().await;
    let slot = app.demo_slot(3).await;
    let (n_site, n_api) = (71, 72);
    let site_resident = app.resident_id(&demo_resident(n_site).ticket_no).await;
    let api_resident = app.resident_id(&demo_resident(n_api).ticket_no).await;
    let cookie = format!(
        "yk_session={}; yk_lang=en",
        app.resident_token(n_site).await
    );
    let token = app.resident_token(n_api).await;

    sqlx::raw_sql(
        "CREATE FUNCTION test_refuse_questionnaire() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'questionnaire storage is failing (test)'; END $$; \
         CREATE TRIGGER test_refuse_questionnaire BEFORE INSERT OR UPDATE ON health_questionnaires \
         FOR EACH ROW EXECUTE FUNCTION test_refuse_questionnaire();",
    )
    .execute(&app.owner)
    .await
    .expect("install the failing trigger");

    // The site: the confirm form with allergies declared.
    let (csrf, key) = confirm_form(&app, &cookie, slot).await;
    let slot_s = slot.to_string();
    let form = [
        ("csrf", csrf.as_str()),
        ("key", key.as_str()),
        ("slot", slot_s.as_str()),
        ("dose", "1"),
        ("hq_allergies", "egg, penicillin"),
        ("hq_anaphylaxis", "1"),
    ];
    let (status, body) = post_book(&app, &cookie, &form).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("Please try again"), "{body}");
    assert_eq!(footprint(&app, site_resident, slot).await, (0, 0, 0, 0));

    // The API: the same, with the questionnaire in BookInput.
    let input = json!({ "input": {
        "slotId": slot, "dose": "FIRST", "idempotencyKey": "desk-questionnaire-01",
        "questionnaire": { "allergies": "latex" }
    } });
    let refused = app.graphql_as(&token, "en", BOOK, input.clone()).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "INTERNAL",
        "{refused}"
    );
    assert!(refused["data"].is_null(), "{refused}");
    assert_eq!(footprint(&app, api_resident, slot).await, (0, 0, 0, 0));

    sqlx::raw_sql(
        "DROP TRIGGER test_refuse_questionnaire ON health_questionnaires; \
         DROP FUNCTION test_refuse_questionnaire();",
    )
    .execute(&app.owner)
    .await
    .expect("remove the trigger");

    // The same requests (same keys) now book, with their questionnaires.
    let (status, body) = post_book(&app, &cookie, &form).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(footprint(&app, site_resident, slot).await, (1, 1, 1, 1));
    let booked = app.graphql_as(&token, "en", BOOK, input).await;
    assert_eq!(
        booked["data"]["book"]["bookings"][0]["dose"], "FIRST",
        "{booked}"
    );
    assert_eq!(footprint(&app, api_resident, slot).await, (1, 2, 1, 1));
    let saved: Vec<(String, bool, String)> = sqlx::query_as(
        "SELECT allergies, anaphylaxis, answered_by FROM health_questionnaires \
         WHERE resident_id = ANY($1) ORDER BY allergies",
    )
    .bind(vec![site_resident, api_resident])
    .fetch_all(&app.owner)
    .await
    .expect("questionnaires");
    assert_eq!(
        saved,
        vec![
            ("egg, penicillin".to_owned(), true, "resident".to_owned()),
            ("latex".to_owned(), false, "resident".to_owned()),
        ]
    );

    // An answer too long for the venue's form is refused before anything is booked.
    let long = "x".repeat(1001);
    let too_long = app
        .graphql_as(
            &app.resident_token(73).await,
            "en",
            BOOK,
            json!({ "input": {
                "slotId": slot, "dose": "FIRST", "idempotencyKey": "desk-questionnaire-02",
                "questionnaire": { "conditions": long }
            } }),
        )
        .await;
    let refusal = &too_long["data"]["book"]["errors"][0];
    assert_eq!(refusal["code"], "VALIDATION", "{too_long}");
    assert_eq!(refusal["field"], "questionnaire", "{too_long}");
    let r73 = app.resident_id(&demo_resident(73).ticket_no).await;
    assert_eq!(footprint(&app, r73, slot).await, (0, 2, 0, 0));
}

/// A dose is 1, 2 or 3 on the site and FIRST, SECOND or BOOSTER in the API; anything else is a
/// validation error that books nothing (it used to become dose 1).
#[tokio::test]
async fn a_malformed_dose_is_refused_and_never_booked_as_dose_one() {
    let app = demo_app().await;
    let slot = app.demo_slot(4).await;
    let n = 74;
    let resident = app.resident_id(&demo_resident(n).ticket_no).await;
    let token = app.resident_token(n).await;
    let cookie = format!("yk_session={token}; yk_lang=en");
    let slot_s = slot.to_string();
    for bad in ["", "0", "4", "1st", "１", "first"] {
        let (csrf, key) = confirm_form(&app, &cookie, slot).await;
        let (status, body) = post_book(
            &app,
            &cookie,
            &[
                ("csrf", &csrf),
                ("key", &key),
                ("slot", &slot_s),
                ("dose", bad),
            ],
        )
        .await;
        assert_eq!(status, 422, "dose {bad:?}: {body}");
        assert!(
            body.contains("Please choose which dose to book"),
            "dose {bad:?}: {body}"
        );
    }
    // a form without any dose field at all
    let (csrf, key) = confirm_form(&app, &cookie, slot).await;
    let (status, _) = post_book(
        &app,
        &cookie,
        &[("csrf", &csrf), ("key", &key), ("slot", &slot_s)],
    )
    .await;
    assert_eq!(status, 422);

    let api = app
        .graphql_as(
            &token,
            "en",
            BOOK,
            json!({ "input": { "slotId": slot, "dose": "FOURTH", "idempotencyKey": "desk-dose-0001" } }),
        )
        .await;
    assert_eq!(
        api["errors"][0]["extensions"]["code"], "VALIDATION",
        "{api}"
    );
    assert!(api["data"].is_null(), "{api}");
    assert_eq!(footprint(&app, resident, slot).await, (0, 0, 0, 0));

    // and a good dose still books
    let (csrf, key) = confirm_form(&app, &cookie, slot).await;
    let (status, body) = post_book(
        &app,
        &cookie,
        &[
            ("csrf", &csrf),
            ("key", &key),
            ("slot", &slot_s),
            ("dose", " 1 "),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(footprint(&app, resident, slot).await, (1, 1, 1, 0));
}

/// The resident GraphQL fields as the schema lists them (`BookingQuery` + `BookingMutation`).
async fn resident_fields() -> Vec<String> {
    let schema = async_graphql::Schema::build(
        graphql::BookingQuery,
        graphql::BookingMutation,
        async_graphql::EmptySubscription,
    )
    .finish();
    let resp = schema
        .execute("{ __schema { queryType { fields { name } } mutationType { fields { name } } } }")
        .await;
    let data = resp.data.into_json().expect("introspection JSON");
    let mut names = Vec::new();
    for root in ["queryType", "mutationType"] {
        for f in data["__schema"][root]["fields"].as_array().expect("fields") {
            names.push(f["name"].as_str().expect("name").to_owned());
        }
    }
    names
}

/// A request for each resident field (`Value` = variables). A new field without an entry here
/// fails the suspension test: decide what a suspended city answers for it.
fn request_for(field: &str, venue: Uuid, slot: Uuid, booking: Uuid) -> (&'static str, Value) {
    let r = demo_resident(75);
    match field {
        "venues" => (r#"{ venues(city: "demo") { id name } }"#, json!({})),
        "availability" => (
            r#"query($v: UUID!) { availability(city: "demo", venueId: $v) { id free } }"#,
            json!({ "v": venue }),
        ),
        "myBookings" => ("{ myBookings { id venueName } }", json!({})),
        "requestLoginCode" => (
            r#"mutation($t: String!, $b: Date!) { requestLoginCode(city: "demo", ticketNo: $t, birthDate: $b) { maskedPhone errors { code } } }"#,
            json!({ "t": r.ticket_no, "b": r.birth_date }),
        ),
        "verifyLoginCode" => (
            r#"mutation($t: String!) { verifyLoginCode(city: "demo", ticketNo: $t, code: "123456") { token errors { code } } }"#,
            json!({ "t": r.ticket_no }),
        ),
        "book" => (
            BOOK,
            json!({ "input": { "slotId": slot, "dose": "FIRST", "idempotencyKey": "desk-suspended-01" } }),
        ),
        "changeBooking" => (
            "mutation($b: UUID!, $s: UUID!) { changeBooking(bookingId: $b, slotId: $s, idempotencyKey: \"desk-suspended-02\") { booking { id } errors { code } } }",
            json!({ "b": booking, "s": slot }),
        ),
        "cancelBooking" => (
            "mutation($b: UUID!) { cancelBooking(bookingId: $b, idempotencyKey: \"desk-suspended-03\") { booking { id } errors { code } } }",
            json!({ "b": booking }),
        ),
        other => panic!("resident GraphQL field {other} has no request in this test"),
    }
}

async fn set_status(app: &TestApp, status: &str) {
    sqlx::query("UPDATE tenants SET status = $1 WHERE slug = 'demo'")
        .bind(status)
        .execute(&app.owner)
        .await
        .expect("set the city's status");
    // Every process reads the city through the one tenant cache (`TENANT_TTL`, the stated
    // staleness bound of a status change, docs/architecture.md); wait it out once.
    tokio::time::sleep(platform::tenant_cache::TENANT_TTL + std::time::Duration::from_millis(50))
        .await;
}

/// The resident part of acceptance 1: once a city is suspended, its residents' session cookie and
/// bearer token are refused on every resident route and every resident GraphQL field with a
/// message saying so and none of the city's data; reactivation restores access with the same
/// session.
#[tokio::test]
async fn a_suspended_city_refuses_its_residents_everywhere_until_reactivated() {
    let app = demo_app().await;
    let n = 75;
    let token = app.resident_token(n).await;
    let cookie = format!("yk_session={token}; yk_lang=en");
    let (slot, other) = (app.demo_slot(5).await, app.demo_slot(6).await);
    let venue = app.venue_of(slot).await;
    let booked = app
        .graphql_as(
            &token,
            "en",
            BOOK,
            json!({ "input": { "slotId": slot, "dose": "FIRST", "idempotencyKey": "desk-before-0001" } }),
        )
        .await;
    let booking: Uuid = booked["data"]["book"]["bookings"][0]["id"]
        .as_str()
        .expect("booked before the suspension")
        .parse()
        .expect("uuid");
    // warm every cache the suspension has to get past (including the API's remembered
    // availability answer, which is served without running the query)
    for field in ["venues", "availability"] {
        let (query, vars) = request_for(field, venue, other, booking);
        let answer = app.graphql_as(&token, "en", query, vars).await;
        assert!(answer["errors"].is_null(), "{field}: {answer}");
    }
    let page = app
        .client
        .get(app.url("/t/demo/bookings"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("bookings");
    assert_eq!(page.status(), 200);
    let venue_name = "市民ホール集団接種会場";
    let date = sqlx::query_scalar::<_, chrono::NaiveDate>(
        "SELECT (starts_at AT TIME ZONE 'Asia/Tokyo')::date FROM slots WHERE id = $1",
    )
    .bind(other)
    .fetch_one(&app.owner)
    .await
    .expect("slot date");

    set_status(&app, "suspended").await;

    // Every resident route, from the table the router is built from: a new route is requested here
    // without anyone adding it. Placeholders get this test's ids; a few pages get the query they
    // need to do anything at all.
    let requests: Vec<(&str, String)> = resident_ui::routes()
        .iter()
        .map(|r| {
            let path = r
                .path
                .replace("{tenant}", "demo")
                .replace("{tag}", "ja")
                .replace("{venue}", &venue.to_string())
                .replace("{date}", &date.to_string())
                .replace("{booking}", &booking.to_string());
            let query = match (r.method, r.path) {
                (resident_ui::Method::Get, "/t/{tenant}/code") => "?ticket=1".to_owned(),
                (resident_ui::Method::Get, "/t/{tenant}/confirm") => format!("?slot={other}"),
                (resident_ui::Method::Get, "/t/{tenant}/done") => format!("?booking={booking}"),
                (resident_ui::Method::Get, "/t/{tenant}/lang/{tag}") => "?back=bookings".into(),
                _ => String::new(),
            };
            (r.method.as_str(), format!("{path}{query}"))
        })
        .collect();
    assert!(
        requests.len() >= 18,
        "the route table lists every resident route"
    );
    let form = [
        ("csrf", "x"),
        ("key", "desk-suspended-site"),
        ("slot", &other.to_string()),
        ("dose", "1"),
        ("change", &booking.to_string()),
        ("ticket", "1"),
        ("birth_date", "1980-01-01"),
        ("code", "123456"),
        ("form_token", "x"),
    ];
    for (method, path) in &requests {
        let method = *method;
        let url = app.url(path);
        let req = if method == "GET" {
            app.client.get(url)
        } else {
            app.client.post(url).form(&form)
        };
        let res = req
            .header("cookie", &cookie)
            .send()
            .await
            .expect("resident route");
        let status = res.status().as_u16();
        let body = res.text().await.unwrap_or_default();
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(
            body.contains("Online booking for this city is suspended"),
            "{method} {path}: {body}"
        );
        assert!(
            !body.contains(venue_name) && !body.contains("デモ市"),
            "{method} {path} shows the city's data: {body}"
        );
    }

    let fields = resident_fields().await;
    assert!(fields.len() >= 8, "{fields:?}");
    for field in &fields {
        let (query, vars) = request_for(field, venue, other, booking);
        let answer = app.graphql_as(&token, "en", query, vars).await;
        let error = &answer["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "FORBIDDEN",
            "{field}: {answer}"
        );
        assert_eq!(
            error["extensions"]["reason"], "TENANT_SUSPENDED",
            "{field}: {answer}"
        );
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("Online booking for this city is suspended")),
            "{field}: {answer}"
        );
        assert!(answer["data"].is_null(), "{field} answered data: {answer}");
    }
    // nothing was written meanwhile: still the one booking in its slot
    let live: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT b.id, b.slot_id FROM bookings b JOIN residents r ON r.id = b.resident_id \
         WHERE r.ticket_no = $1 AND b.status = 'booked'",
    )
    .bind(demo_resident(n).ticket_no)
    .fetch_all(&app.owner)
    .await
    .expect("bookings");
    assert_eq!(live, vec![(booking, slot)]);

    set_status(&app, "active").await;

    // the same cookie and the same token work again
    let page = app
        .client
        .get(app.url("/t/demo/bookings"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("bookings");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains(venue_name));
    let mine = app
        .graphql_as(&token, "en", "{ myBookings { id } }", json!({}))
        .await;
    assert_eq!(
        mine["data"]["myBookings"][0]["id"],
        booking.to_string(),
        "{mine}"
    );
}

/// The confirm page finds a slot by its id (one read for its venue, then the venue's cached
/// slots): the page names the venue of that slot, whichever of the city's venues it is; a slot
/// that does not exist, another city's slot and a past slot are "not found" and offer no form.
#[tokio::test]
async fn the_confirm_page_finds_the_slot_s_own_venue_and_nothing_of_another_city() {
    let app = demo_app().await;
    let token = app.resident_token(75).await;
    let cookie = format!("yk_session={token}; yk_lang=en");
    let page = |slot: Uuid| {
        let (app, cookie) = (&app, &cookie);
        async move {
            let res = app
                .client
                .get(app.url(&format!("/t/demo/confirm?slot={slot}")))
                .header("cookie", cookie.as_str())
                .send()
                .await
                .expect("confirm page");
            (res.status().as_u16(), res.text().await.unwrap_or_default())
        }
    };
    // a slot moved into the past (before any page reads its venue into the cache)
    let past: Uuid = sqlx::query_scalar(
        "UPDATE slots SET starts_at = now() - interval '2 hours', ends_at = now() - interval '1 hour' \
         WHERE id = $1 RETURNING id",
    )
    .bind(app.demo_slot(6).await)
    .fetch_one(&app.owner)
    .await
    .expect("a slot moved into the past");
    // every venue of the demo city: the page of one of its upcoming slots names it
    let venues: Vec<(Uuid, String, Uuid)> = sqlx::query_as(
        "SELECT DISTINCT ON (v.id) v.id, v.name, s.id FROM venues v \
         JOIN slots s ON s.venue_id = v.id JOIN tenants t ON t.id = v.tenant_id \
         WHERE t.slug = 'demo' AND s.starts_at > now() + interval '2 days' \
         ORDER BY v.id, s.starts_at",
    )
    .fetch_all(&app.owner)
    .await
    .expect("venues");
    assert!(venues.len() >= 2, "the demo city has several venues");
    for (_, name, slot) in &venues {
        let (status, html) = page(*slot).await;
        assert_eq!(status, 200, "{html}");
        assert!(
            html.contains(name.as_str()),
            "slot {slot} at {name}: {html}"
        );
        for (_, other, _) in venues.iter().filter(|(_, n, _)| n != name) {
            assert!(
                !html.contains(other.as_str()),
                "slot {slot} also names {other}"
            );
        }
        assert!(field_in(&html, "csrf").is_some(), "a form to book");
    }
    // no such slot, another city's slot, a past slot: not found, no form
    let other_city = app.seeded_tenant("yokohama", "141003").await;
    let foreign: Uuid = sqlx::query_scalar(
        "SELECT id FROM slots WHERE tenant_id = $1 AND starts_at > now() LIMIT 1",
    )
    .bind(other_city.id.0)
    .fetch_one(&app.owner)
    .await
    .expect("another city's slot");
    for slot in [Uuid::new_v4(), foreign, past] {
        let (status, html) = page(slot).await;
        assert_eq!(status, 404, "{slot}: {html}");
        assert!(field_in(&html, "csrf").is_none(), "{slot}: no form");
    }
}
