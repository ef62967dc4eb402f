//! The resident GraphQL API: public availability, the login-code flow returning a token, and
//! book / change / cancel / my bookings — over real HTTP.

use std::sync::Arc;

use platform::demo::demo_resident;
use serde_json::{Value, json};

use crate::support::demo_app;

const BOOK: &str = "mutation($input: BookInput!) { book(input: $input) { bookings { id slotId status dose groupId } errors { code message field } } }";

fn book_vars(slot: uuid::Uuid, key: &str) -> Value {
    json!({ "input": { "slotId": slot, "dose": "FIRST", "idempotencyKey": key } })
}

#[tokio::test]
async fn a_chat_front_end_logs_in_books_changes_and_cancels_over_graphql() {
    let app = demo_app().await;
    let venues = app
        .graphql(
            r#"{ venues(city: "demo") { id name vaccineName } }"#,
            json!({}),
        )
        .await;
    let venue = venues["data"]["venues"][0]["id"]
        .as_str()
        .expect("a venue")
        .to_owned();
    let slots = app
        .graphql(
            "query($v: UUID!) { availability(city: \"demo\", venueId: $v) { id free mark markText startsAt } }",
            json!({ "v": venue }),
        )
        .await;
    let list = slots["data"]["availability"].as_array().expect("slots");
    assert!(
        list.iter()
            .any(|s| s["mark"] == "FREE" && s["markText"] == "○ 空きあり"),
        "{slots}"
    );

    let r = demo_resident(42);
    let sent = app
        .graphql(
            "mutation($t: String!, $b: Date!) { requestLoginCode(city: \"demo\", ticketNo: $t, birthDate: $b) { maskedPhone errors { code } } }",
            json!({ "t": r.ticket_no, "b": r.birth_date }),
        )
        .await;
    assert_eq!(
        sent["data"]["requestLoginCode"]["errors"],
        json!([]),
        "{sent}"
    );
    assert_eq!(
        sent["data"]["requestLoginCode"]["maskedPhone"], "090****0042",
        "{sent}"
    );
    let code = app.login_code_sent_to("09000000042").await.expect("SMS");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = app
        .graphql(
            "mutation($t: String!, $c: String!) { verifyLoginCode(city: \"demo\", ticketNo: $t, code: $c) { token errors { code field message } } }",
            json!({ "t": r.ticket_no, "c": wrong }),
        )
        .await;
    assert!(refused["errors"].is_null(), "{refused}");
    assert_eq!(refused["data"]["verifyLoginCode"]["token"], Value::Null);
    assert_eq!(
        refused["data"]["verifyLoginCode"]["errors"][0]["code"], "VALIDATION",
        "{refused}"
    );
    assert_eq!(
        refused["data"]["verifyLoginCode"]["errors"][0]["field"],
        "code"
    );
    let verified = app
        .graphql(
            "mutation($t: String!, $c: String!) { verifyLoginCode(city: \"demo\", ticketNo: $t, code: $c) { token errors { code field } } }",
            json!({ "t": r.ticket_no, "c": code }),
        )
        .await;
    let token = verified["data"]["verifyLoginCode"]["token"]
        .as_str()
        .expect("token")
        .to_owned();

    // a week out, beyond deadline and cut-off
    let (first, second) = (app.demo_slot(70).await, app.demo_slot(71).await);
    let booked = app
        .graphql_as(&token, "en", BOOK, book_vars(first, "chat-booking-0001"))
        .await;
    let id = booked["data"]["book"]["bookings"][0]["id"]
        .as_str()
        .expect("booked")
        .to_owned();
    let replay = app
        .graphql_as(&token, "en", BOOK, book_vars(first, "chat-booking-0001"))
        .await;
    assert_eq!(
        replay["data"]["book"]["bookings"][0]["id"],
        id.as_str(),
        "replayed key, same booking"
    );

    let mine = app
        .graphql_as(
            &token,
            "en",
            "{ myBookings { id status venueName } }",
            json!({}),
        )
        .await;
    assert_eq!(
        mine["data"]["myBookings"].as_array().map(Vec::len),
        Some(1),
        "{mine}"
    );

    let again = app
        .graphql_as(&token, "en", BOOK, book_vars(second, "chat-booking-0002"))
        .await;
    // a refusal the resident can act on is a user error of the payload, nothing booked
    assert!(again["errors"].is_null(), "{again}");
    assert_eq!(again["data"]["book"]["bookings"], json!([]), "{again}");
    let refusal = &again["data"]["book"]["errors"][0];
    assert_eq!(refusal["code"], "CONFLICT", "{again}");
    assert_eq!(refusal["field"], "dose", "{again}");
    assert_eq!(
        refusal["message"],
        "You already have a booking for the 1st dose."
    );

    let moved = app
        .graphql_as(
            &token,
            "ja",
            "mutation($b: UUID!, $s: UUID!) { changeBooking(bookingId: $b, slotId: $s, idempotencyKey: \"chat-change-0001\") { booking { id slotId } errors { code } } }",
            json!({ "b": id, "s": second }),
        )
        .await;
    assert_eq!(
        moved["data"]["changeBooking"]["booking"]["slotId"],
        second.to_string(),
        "{moved}"
    );
    let cancelled = app
        .graphql_as(
            &token,
            "ja",
            "mutation($b: UUID!) { cancelBooking(bookingId: $b, idempotencyKey: \"chat-cancel-0001\") { booking { status } errors { code } } }",
            json!({ "b": id }),
        )
        .await;
    assert_eq!(
        cancelled["data"]["cancelBooking"]["booking"]["status"], "CANCELLED",
        "{cancelled}"
    );

    let anonymous = app.graphql("{ myBookings { id } }", json!({})).await;
    assert_eq!(
        anonymous["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
async fn sixty_four_api_clients_racing_for_ten_seats_get_ten_bookings_and_a_clear_full_answer() {
    let app = Arc::new(demo_app().await);
    let slot = app.demo_slot(0).await;
    let mut tokens = Vec::new();
    for n in 1..=64 {
        tokens.push(app.resident_token(n).await);
    }
    let tasks: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let app = app.clone();
            tokio::spawn(async move {
                app.graphql_as(
                    &token,
                    "ja",
                    BOOK,
                    book_vars(slot, &format!("race-key-{i:04}")),
                )
                .await
            })
        })
        .collect();
    let (mut ok, mut full) = (0, 0);
    for t in tasks {
        let answer = t.await.expect("task");
        let payload = &answer["data"]["book"];
        if payload["bookings"]
            .as_array()
            .is_some_and(|b| !b.is_empty())
        {
            ok += 1;
        } else {
            assert_eq!(payload["errors"][0]["code"], "CONFLICT", "{answer}");
            assert_eq!(payload["errors"][0]["field"], "slotId", "{answer}");
            assert_eq!(
                payload["errors"][0]["message"],
                "この時間は満員です。別の時間を選んでください。"
            );
            full += 1;
        }
    }
    assert_eq!((ok, full), (10, 54));
    let booked: i32 = sqlx::query_scalar("SELECT booked FROM slots WHERE id = $1")
        .bind(slot)
        .fetch_one(&app.owner)
        .await
        .expect("slot");
    assert_eq!(booked, 10);
}

#[tokio::test]
async fn code_requests_over_the_api_are_throttled_with_a_retry_after() {
    let app = demo_app().await;
    let r = demo_resident(45);
    let ask = || {
        app.graphql(
            "mutation($t: String!, $b: Date!) { requestLoginCode(city: \"demo\", ticketNo: $t, birthDate: $b) { maskedPhone errors { code } } }",
            json!({ "t": r.ticket_no, "b": r.birth_date }),
        )
    };
    for _ in 0..3 {
        assert!(ask().await["data"]["requestLoginCode"]["maskedPhone"].is_string());
    }
    let limited = ask().await;
    assert_eq!(
        limited["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{limited}"
    );
    assert!(
        limited["errors"][0]["extensions"]["retryAfter"]
            .as_i64()
            .unwrap_or(0)
            > 0
    );
}

/// Hot availability is answered from memory (graphql/src/web.rs): the same request gets the same
/// bytes until a booking touches the venue, which shows at once; and nothing that depends on who
/// asks is ever answered from there.
#[tokio::test]
async fn remembered_availability_answers_follow_bookings_and_never_mix_up_residents() {
    let app = demo_app().await;
    let slot = app.demo_slot(0).await;
    let venue = app.venue_of(slot).await;
    let read = "query($v: UUID!) { availability(city: \"demo\", venueId: $v) { id free mark } }";
    let free_of = |answer: &Value| {
        answer["data"]["availability"]
            .as_array()
            .expect("slots")
            .iter()
            .find(|s| s["id"] == slot.to_string())
            .expect("the slot")["free"]
            .as_i64()
            .expect("free")
    };
    let before = app.graphql(read, json!({ "v": venue })).await;
    let again = app.graphql(read, json!({ "v": venue })).await;
    assert_eq!(before, again);
    let free = free_of(&before);

    // A booking through the API (the one-statement path) drops the remembered answer at once.
    let token = app.resident_token(50).await;
    let booked = app
        .graphql_as(&token, "ja", BOOK, book_vars(slot, "remembered-1"))
        .await;
    assert!(booked["errors"].is_null(), "{booked}");
    assert_eq!(booked["data"]["book"]["errors"], json!([]), "{booked}");
    let after = app.graphql(read, json!({ "v": venue })).await;
    assert_eq!(free_of(&after), free - 1, "{after}");

    // The language is part of the key.
    let texts = "query($v: UUID!) { availability(city: \"demo\", venueId: $v) { markText } }";
    let ja = app.graphql_as("", "ja", texts, json!({ "v": venue })).await;
    let en = app.graphql_as("", "en", texts, json!({ "v": venue })).await;
    assert_ne!(ja, en);

    // A request that also asks for the caller's own bookings is never remembered: two residents
    // sending the very same body see their own.
    let mixed =
        "query($v: UUID!) { availability(city: \"demo\", venueId: $v) { id } myBookings { id } }";
    let other = app.resident_token(51).await;
    let mine = app
        .graphql_as(&token, "ja", mixed, json!({ "v": venue }))
        .await;
    let theirs = app
        .graphql_as(&other, "ja", mixed, json!({ "v": venue }))
        .await;
    assert_eq!(
        mine["data"]["myBookings"].as_array().map(Vec::len),
        Some(1),
        "{mine}"
    );
    assert_eq!(
        theirs["data"]["myBookings"].as_array().map(Vec::len),
        Some(0),
        "{theirs}"
    );

    // A refused booking over the fast path says why, in the asker's language.
    let full = app.demo_slot(1).await;
    sqlx::query("UPDATE slots SET booked = capacity WHERE id = $1")
        .bind(full)
        .execute(&app.owner)
        .await
        .expect("fill");
    let refused = app
        .graphql_as(&other, "en", BOOK, book_vars(full, "remembered-2"))
        .await;
    assert_eq!(
        refused["data"]["book"]["errors"][0]["code"], "CONFLICT",
        "{refused}"
    );
    assert_eq!(
        refused["data"]["book"]["errors"][0]["message"],
        "This time is full. Please choose another time."
    );
    // A bad token gets UNAUTHENTICATED, as before.
    let fake = app
        .graphql_as("nonsense", "en", BOOK, book_vars(slot, "remembered-3"))
        .await;
    assert_eq!(
        fake["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{fake}"
    );

    // A change made by another process (here: straight in the database) shows once the venue's
    // entry expires: a remembered answer is re-validated against a fresh read, never served past
    // a change …
    let current = free_of(&app.graphql(read, json!({ "v": venue })).await);
    sqlx::query("UPDATE slots SET booked = booked + 2 WHERE id = $1")
        .bind(slot)
        .execute(&app.owner)
        .await
        .expect("elsewhere");
    let expired =
        platform::booking::availability::CACHE_TTL + std::time::Duration::from_millis(200);
    tokio::time::sleep(expired).await;
    let later = app.graphql(read, json!({ "v": venue })).await;
    assert_eq!(free_of(&later), current - 2, "{later}");
    // … and with nothing changed, the same answer comes back after another expiry.
    tokio::time::sleep(expired).await;
    assert_eq!(app.graphql(read, json!({ "v": venue })).await, later);

    // Underneath: an expired entry re-read unchanged is the same entry (so answers derived from it
    // stay valid); a changed one is a new entry.
    let tenant = app.demo_tenant().await;
    let cache = platform::booking::availability::AvailabilityCache::new();
    let first = cache
        .venue_slots(&app.pool, &tenant, venue)
        .await
        .expect("read");
    tokio::time::sleep(expired).await;
    assert!(!cache.is_current(tenant.id, venue, &first), "expired");
    assert!(
        cache
            .revalidate(&app.pool, &tenant, venue, &first)
            .await
            .expect("re-read"),
        "unchanged: the same entry"
    );
    assert!(cache.is_current(tenant.id, venue, &first));
    sqlx::query("UPDATE slots SET booked = booked + 1 WHERE id = $1")
        .bind(slot)
        .execute(&app.owner)
        .await
        .expect("elsewhere");
    tokio::time::sleep(expired).await;
    assert!(
        !cache
            .revalidate(&app.pool, &tenant, venue, &first)
            .await
            .expect("re-read"),
        "changed: a new entry"
    );
}
