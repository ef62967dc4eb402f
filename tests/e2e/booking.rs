//! The booking invariants (DESIGN.md, Booking invariants; platform/src/booking.rs), against the real
//! database with the server's runtime role.

use std::sync::Arc;

use platform::booking::{self, BookingError, Dose};
use platform::demo::demo_resident;
use platform::i18n::Lang;
use uuid::Uuid;

use crate::support::{TestApp, book_request, demo_app_manual_worker};

async fn seats(app: &TestApp, slot: Uuid) -> (i32, i64) {
    sqlx::query_as(
        "SELECT s.booked, (SELECT count(*) FROM bookings b WHERE b.slot_id = s.id AND b.status = 'booked') \
         FROM slots s WHERE s.id = $1",
    )
    .bind(slot)
    .fetch_one(&app.owner)
    .await
    .expect("seats")
}

/// The booking's confirmation tasks in the job runtime (apalis.jobs, key `<tenant>/booking-confirmed:<id>`).
async fn jobs_for(app: &TestApp, booking: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = 'notify' \
           AND idempotency_key LIKE '%/booking-confirmed:' || $1",
    )
    .bind(booking.to_string())
    .fetch_one(&app.owner)
    .await
    .expect("count jobs")
}

#[tokio::test]
async fn sixty_four_residents_racing_for_ten_seats_get_exactly_ten_bookings() {
    let app = demo_app_manual_worker().await;
    let tenant = Arc::new(app.demo_tenant().await);
    let slot = app.demo_slot(0).await;
    let mut residents = Vec::new();
    for n in 1..=64 {
        residents.push(app.resident_id(&demo_resident(n).ticket_no).await);
    }
    let tasks: Vec<_> = residents
        .into_iter()
        .map(|r| {
            let (pool, tenant) = (app.pool.clone(), tenant.clone());
            tokio::spawn(async move { booking::book(&pool, &tenant, &book_request(r, slot)).await })
        })
        .collect();
    let (mut ok, mut full) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            Ok(b) => {
                assert_eq!(b.len(), 1);
                ok += 1;
            }
            Err(BookingError::Full) => full += 1,
            Err(other) => panic!("unexpected answer: {other:?}"),
        }
    }
    assert_eq!((ok, full), (10, 54));
    assert_eq!(seats(&app, slot).await, (10, 10));
    assert_eq!(
        BookingError::Full.message(Lang::En),
        "This time is full. Please choose another time."
    );
}

#[tokio::test]
async fn racing_groups_get_all_their_seats_or_none() {
    let app = demo_app_manual_worker().await;
    let tenant = Arc::new(app.demo_tenant().await);
    let slot = app.demo_slot(0).await;
    let mut tasks = Vec::new();
    for g in 0..64u32 {
        let mut people = Vec::new();
        for k in 1..=3 {
            people.push(app.resident_id(&demo_resident(g * 3 + k).ticket_no).await);
        }
        let (pool, tenant) = (app.pool.clone(), tenant.clone());
        tasks.push(tokio::spawn(async move {
            let mut req = book_request(people[0], slot);
            req.companions = people[1..].to_vec();
            booking::book(&pool, &tenant, &req).await
        }));
    }
    let (mut ok, mut full) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            Ok(b) => {
                assert_eq!(b.len(), 3, "a group gets all its seats");
                ok += 1;
            }
            Err(BookingError::Full) => full += 1,
            Err(other) => panic!("unexpected answer: {other:?}"),
        }
    }
    assert_eq!((ok, full), (3, 61));
    assert_eq!(seats(&app, slot).await, (9, 9));
    let partial: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT group_id FROM bookings WHERE slot_id = $1 GROUP BY group_id HAVING count(*) <> 3) g",
    )
    .bind(slot)
    .fetch_one(&app.owner)
    .await
    .expect("groups");
    assert_eq!(partial, 0, "no partial groups");
}

#[tokio::test]
async fn dose_two_before_its_interval_is_refused_in_the_residents_language() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let r = app.resident_id(&demo_resident(5).ticket_no).await;
    let first = app.demo_slot(0).await;
    booking::book(&app.pool, &tenant, &book_request(r, first))
        .await
        .expect("dose 1");
    // Same venue (コミナティ, 21 days), a few days later: too early.
    let soon = app.demo_slot(40).await;
    let mut req = book_request(r, soon);
    req.dose = Dose::Second;
    let err = booking::book(&app.pool, &tenant, &req)
        .await
        .expect_err("too early");
    assert!(matches!(err, BookingError::TooEarly { .. }), "{err:?}");
    assert!(err.message(Lang::Ja).contains("間隔が足りません"));
    assert!(
        err.message(Lang::En)
            .starts_with("Too soon after the previous dose")
    );
    assert!(err.message(Lang::Pt).contains("Cedo demais"));
    assert_eq!(seats(&app, soon).await, (0, 0), "nothing was booked");
}

#[tokio::test]
async fn a_second_live_booking_for_the_same_dose_is_refused() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let r = app.resident_id(&demo_resident(6).ticket_no).await;
    booking::book(&app.pool, &tenant, &book_request(r, app.demo_slot(0).await))
        .await
        .expect("dose 1");
    let other = app.demo_slot(1).await;
    let err = booking::book(&app.pool, &tenant, &book_request(r, other))
        .await
        .expect_err("second dose-1 booking");
    assert!(
        matches!(err, BookingError::AlreadyBooked { dose: Dose::First }),
        "{err:?}"
    );
    assert_eq!(err.message(Lang::Ja), "1回目はすでに予約済みです。");
    assert_eq!(
        err.message(Lang::En),
        "You already have a booking for the 1st dose."
    );
    assert_eq!(
        seats(&app, other).await,
        (0, 0),
        "the seat taken before the refusal was given back"
    );
}

#[tokio::test]
async fn booking_after_the_deadline_is_refused() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let r = app.resident_id(&demo_resident(7).ticket_no).await;
    let slot = app.demo_slot(0).await;
    // The venue closes bookings 24 hours before a slot; this one starts in two hours.
    sqlx::query("UPDATE slots SET starts_at = now() + interval '2 hours', ends_at = now() + interval '150 minutes' WHERE id = $1")
        .bind(slot)
        .execute(&app.owner)
        .await
        .expect("move slot");
    let err = booking::book(&app.pool, &tenant, &book_request(r, slot))
        .await
        .expect_err("past deadline");
    assert!(matches!(err, BookingError::DeadlinePassed), "{err:?}");
    assert_eq!(err.message(Lang::Ja), "この時間の予約受付は終了しました。");
    assert_eq!(err.message(Lang::ZhHans), "该时段的预约已截止。");
    assert_eq!(seats(&app, slot).await, (0, 0));
}

#[tokio::test]
async fn cancelling_after_the_cut_off_is_refused_and_keeps_the_seat() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let r = app.resident_id(&demo_resident(8).ticket_no).await;
    let slot = app.demo_slot(0).await;
    let booked = booking::book(&app.pool, &tenant, &book_request(r, slot))
        .await
        .expect("book");
    // Cut-off is 2 days before; the slot now starts tomorrow.
    sqlx::query("UPDATE slots SET starts_at = now() + interval '1 day', ends_at = now() + interval '1 day 30 minutes' WHERE id = $1")
        .bind(slot)
        .execute(&app.owner)
        .await
        .expect("move slot");
    let err = booking::cancel(
        &app.pool,
        &tenant,
        r,
        booked[0].id,
        &Uuid::new_v4().to_string(),
    )
    .await
    .expect_err("past cut-off");
    assert!(matches!(err, BookingError::CutoffPassed), "{err:?}");
    assert!(
        err.message(Lang::En)
            .contains("too late to change or cancel")
    );
    assert!(err.message(Lang::Ja).contains("変更・キャンセルの受付期限"));
    assert_eq!(seats(&app, slot).await, (1, 1));
}

#[tokio::test]
async fn cancelling_releases_the_seat_at_once() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let r = app.resident_id(&demo_resident(9).ticket_no).await;
    let slot = app.demo_slot(0).await;
    let booked = booking::book(&app.pool, &tenant, &book_request(r, slot))
        .await
        .expect("book");
    assert_eq!(seats(&app, slot).await, (1, 1));
    let cancelled = booking::cancel(
        &app.pool,
        &tenant,
        r,
        booked[0].id,
        &Uuid::new_v4().to_string(),
    )
    .await
    .expect("cancel");
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(seats(&app, slot).await, (0, 0));
    // and the dose can be booked again
    booking::book(&app.pool, &tenant, &book_request(r, slot))
        .await
        .expect("book again");
}

#[tokio::test]
async fn changing_to_a_full_slot_keeps_the_old_seat() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let r = app.resident_id(&demo_resident(10).ticket_no).await;
    let (old, full) = (app.demo_slot(0).await, app.demo_slot(1).await);
    let booked = booking::book(&app.pool, &tenant, &book_request(r, old))
        .await
        .expect("book");
    sqlx::query("UPDATE slots SET booked = capacity WHERE id = $1")
        .bind(full)
        .execute(&app.owner)
        .await
        .expect("fill slot");
    let err = booking::change(
        &app.pool,
        &tenant,
        r,
        booked[0].id,
        full,
        &Uuid::new_v4().to_string(),
    )
    .await
    .expect_err("full");
    assert!(matches!(err, BookingError::Full), "{err:?}");
    assert_eq!(seats(&app, old).await, (1, 1), "old seat kept");

    let free = app.demo_slot(2).await;
    let moved = booking::change(
        &app.pool,
        &tenant,
        r,
        booked[0].id,
        free,
        &Uuid::new_v4().to_string(),
    )
    .await
    .expect("change");
    assert_eq!((moved.id, moved.slot_id), (booked[0].id, free));
    assert_eq!(seats(&app, old).await, (0, 0), "old seat released");
    assert_eq!(seats(&app, free).await, (1, 1), "new seat taken");
}

#[tokio::test]
async fn a_replayed_idempotency_key_returns_the_same_booking_and_books_nothing_new() {
    let app = demo_app_manual_worker().await;
    let tenant = Arc::new(app.demo_tenant().await);
    let r = app.resident_id(&demo_resident(11).ticket_no).await;
    let slot = app.demo_slot(0).await;
    let req = Arc::new(book_request(r, slot));
    // A double click: ten identical requests at once.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (pool, tenant, req) = (app.pool.clone(), tenant.clone(), req.clone());
            tokio::spawn(async move { booking::book(&pool, &tenant, &req).await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        let b = t
            .await
            .expect("task")
            .expect("every replay answers with the booking");
        ids.push(b[0].id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one booking");
    assert_eq!(seats(&app, slot).await, (1, 1));
    assert_eq!(jobs_for(&app, ids[0]).await, 1);
}

#[tokio::test]
async fn a_committed_booking_has_exactly_one_job_and_a_rolled_back_one_none() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let (a, b) = (
        app.resident_id(&demo_resident(12).ticket_no).await,
        app.resident_id(&demo_resident(13).ticket_no).await,
    );
    let committed = booking::book(&app.pool, &tenant, &book_request(b, app.demo_slot(0).await))
        .await
        .expect("book");
    assert_eq!(jobs_for(&app, committed[0].id).await, 1);

    // A group whose second member already holds dose 1: the first member's booking row and job are
    // written, then the unique index refuses the second — the whole transaction rolls back.
    let jobs_before: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs")
        .fetch_one(&app.owner)
        .await
        .expect("count");
    let slot = app.demo_slot(1).await;
    let mut req = book_request(a, slot);
    req.companions = vec![b];
    let err = booking::book(&app.pool, &tenant, &req)
        .await
        .expect_err("b already booked");
    assert!(matches!(err, BookingError::AlreadyBooked { .. }), "{err:?}");
    let jobs_after: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs")
        .fetch_one(&app.owner)
        .await
        .expect("count");
    assert_eq!(
        jobs_after, jobs_before,
        "no job from the rolled-back booking"
    );
    assert_eq!(seats(&app, slot).await, (0, 0));

    // The worker delivers the committed one exactly once.
    app.worker.run_once().await.expect("work");
    app.worker.run_once().await.expect("work again");
    let status: (String, i32) = sqlx::query_as(
        "SELECT status, attempts FROM notification_jobs WHERE payload->>'booking_id' = $1",
    )
    .bind(committed[0].id.to_string())
    .fetch_one(&app.owner)
    .await
    .expect("job");
    // handled exactly once: sent, or skipped when the resident has neither phone nor e-mail
    assert!(
        status == ("sent".to_owned(), 1) || status == ("skipped".to_owned(), 1),
        "{status:?}"
    );
}

#[tokio::test]
async fn dose_two_can_be_booked_together_with_dose_one_when_the_city_allows_it() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let r = app.resident_id(&demo_resident(14).ticket_no).await;
    let first = app.demo_slot(0).await;
    // 21 days later at the same venue is beyond the demo's three weeks of slots: make one.
    let second: Uuid = sqlx::query_scalar(
        "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity) \
         SELECT tenant_id, gen_random_uuid(), venue_id, starts_at + interval '22 days', ends_at + interval '22 days', 1 \
         FROM slots WHERE id = $1 RETURNING id",
    )
    .bind(first)
    .fetch_one(&app.owner)
    .await
    .expect("later slot");
    let mut req = book_request(r, first);
    req.second_dose_slot = Some(second);
    let both = booking::book(&app.pool, &tenant, &req)
        .await
        .expect("both doses");
    assert_eq!(both.len(), 2);
    assert_eq!(seats(&app, second).await, (1, 1));

    // Both seats or neither: the later slot is now full, so a second pair takes nothing.
    let other = app.resident_id(&demo_resident(15).ticket_no).await;
    let mut req = book_request(other, first);
    req.second_dose_slot = Some(second);
    let err = booking::book(&app.pool, &tenant, &req)
        .await
        .expect_err("dose 2 slot full");
    assert!(matches!(err, BookingError::Full), "{err:?}");
    assert_eq!(seats(&app, first).await, (1, 1));
}

#[tokio::test]
async fn seats_held_for_dose_two_are_kept_from_first_doses_until_the_release_date() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let first = app.demo_slot(0).await;
    // A slot of 4 seats three weeks later, half of which the city holds for second doses.
    let later: Uuid = sqlx::query_scalar(
        "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity) \
         SELECT tenant_id, gen_random_uuid(), venue_id, starts_at + interval '22 days', ends_at + interval '22 days', 4 \
         FROM slots WHERE id = $1 RETURNING id",
    )
    .bind(first)
    .fetch_one(&app.owner)
    .await
    .expect("later slot");
    sqlx::query(
        "INSERT INTO booking_settings (tenant_id, book_dose2_with_dose1, dose2_reserve_percent, dose2_reserve_until) \
         VALUES ($1, true, 50, now() + interval '60 days') \
         ON CONFLICT (tenant_id) DO UPDATE SET dose2_reserve_percent = 50, dose2_reserve_until = now() + interval '60 days'",
    )
    .bind(tenant.id.0)
    .execute(&app.owner)
    .await
    .expect("hold half");
    let people: Vec<Uuid> = {
        let mut v = Vec::new();
        for n in 20..=24 {
            v.push(app.resident_id(&demo_resident(n).ticket_no).await);
        }
        v
    };
    // Two first doses fill the seats not held (fast path: one person, dose 1) …
    for r in &people[..2] {
        booking::book(&app.pool, &tenant, &book_request(*r, later))
            .await
            .expect("first dose in the unheld seats");
    }
    // … a third is refused although two seats are free …
    let err = booking::book(&app.pool, &tenant, &book_request(people[2], later))
        .await
        .expect_err("held seats are not for first doses");
    assert!(matches!(err, BookingError::Full), "{err:?}");
    // … and so is a group (general path) that would need one of them.
    let mut group = book_request(people[2], later);
    group.companions = vec![people[3]];
    let err = booking::book(&app.pool, &tenant, &group)
        .await
        .expect_err("held seats are not for a group's first doses");
    assert!(matches!(err, BookingError::Full), "{err:?}");
    // Availability tells first doses "full" and second doses "2 free".
    let slots = platform::booking::availability::AvailabilityCache::new()
        .venue_slots(&app.pool, &tenant, app.venue_of(later).await)
        .await
        .expect("availability");
    let s = slots
        .iter()
        .find(|s| s.slot_id == later)
        .expect("slot listed");
    assert_eq!((s.free, s.free_dose2), (0, 2));
    assert_eq!(s.mark, platform::booking::availability::Mark::Full);
    assert_ne!(s.mark_dose2, platform::booking::availability::Mark::Full);

    // Dose 2 may use a held seat: dose 1 in `first`, dose 2 in `later` (22 days after).
    let mut pair = book_request(people[4], first);
    pair.second_dose_slot = Some(later);
    booking::book(&app.pool, &tenant, &pair)
        .await
        .expect("dose 2 takes a held seat");
    let (booked, dose2): (i32, i32) =
        sqlx::query_as("SELECT booked, booked_dose2 FROM slots WHERE id = $1")
            .bind(later)
            .fetch_one(&app.owner)
            .await
            .expect("counts");
    assert_eq!((booked, dose2), (3, 1));

    // After the release date the held seats are open to everyone.
    sqlx::query("UPDATE booking_settings SET dose2_reserve_until = now() - interval '1 minute' WHERE tenant_id = $1")
        .bind(tenant.id.0)
        .execute(&app.owner)
        .await
        .expect("release");
    booking::book(&app.pool, &tenant, &book_request(people[2], later))
        .await
        .expect("released seat");
    assert_eq!(seats(&app, later).await, (4, 4));
}

#[tokio::test]
async fn the_one_statement_fast_path_keeps_the_invariants() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    let slot = app.demo_slot(0).await;
    let r = app.resident_id(&demo_resident(30).ticket_no).await;
    let req = book_request(r, slot);
    let first = booking::book(&app.pool, &tenant, &req).await.expect("book");
    // replay: same booking, nothing new
    let again = booking::book(&app.pool, &tenant, &req)
        .await
        .expect("replay");
    assert_eq!(first, again);
    assert_eq!(seats(&app, slot).await, (1, 1));
    assert_eq!(jobs_for(&app, first[0].id).await, 1);
    // a second dose-1 booking with another key: the general path says why
    let err = booking::book(&app.pool, &tenant, &book_request(r, app.demo_slot(1).await))
        .await
        .expect_err("one live booking per dose");
    assert!(
        matches!(err, BookingError::AlreadyBooked { dose: Dose::First }),
        "{err:?}"
    );
    // the key of someone else is refused
    let other = app.resident_id(&demo_resident(31).ticket_no).await;
    let mut stolen = book_request(other, slot);
    stolen.idempotency_key = req.idempotency_key.clone();
    let err = booking::book(&app.pool, &tenant, &stolen)
        .await
        .expect_err("key of another resident");
    assert!(matches!(err, BookingError::KeyReused), "{err:?}");
    // a token of no session is unauthenticated; nothing written
    let fake = format!("{}.not-a-session", tenant.id.0);
    let out = booking::book_first_dose(
        &app.pool,
        &tenant,
        booking::Caller::Token(&fake),
        slot,
        "k-unauthenticated",
    )
    .await
    .expect("answer");
    assert!(
        matches!(out, booking::FastOutcome::Unauthenticated),
        "{out:?}"
    );
    assert_eq!(seats(&app, slot).await, (1, 1));
    // the tenant setting does not outlive the statement on the pooled connection
    let leaked: Option<String> =
        sqlx::query_scalar("SELECT NULLIF(current_setting('app.tenant_id', true), '')")
            .fetch_one(&app.pool)
            .await
            .expect("setting");
    assert_eq!(leaked, None);
}

#[tokio::test]
async fn a_group_may_spill_into_the_adjacent_slot_all_or_nothing() {
    let app = demo_app_manual_worker().await;
    let tenant = app.demo_tenant().await;
    // a free demo slot with a free next slot at the same venue within the hour (same day)
    let (chosen, next): (Uuid, Uuid) = sqlx::query_as(
        "SELECT s.id, n.id FROM slots s JOIN venues v ON v.id = s.venue_id \
         JOIN LATERAL (SELECT id, starts_at, booked FROM slots x WHERE x.venue_id = s.venue_id \
                       AND x.starts_at > s.starts_at ORDER BY x.starts_at LIMIT 1) n ON true \
         WHERE v.name = '市民ホール集団接種会場' AND s.booked = 0 AND n.booked = 0 \
           AND s.starts_at > now() + interval '3 days' AND n.starts_at < s.starts_at + interval '1 hour' \
         ORDER BY s.starts_at LIMIT 1",
    )
    .fetch_one(&app.owner)
    .await
    .expect("two adjacent slots");
    sqlx::query("UPDATE slots SET booked = capacity - 2 WHERE id = $1")
        .bind(chosen)
        .execute(&app.owner)
        .await
        .expect("two seats left");
    let before = seats(&app, chosen).await.0;
    let mut people = Vec::new();
    for n in 40..=46 {
        people.push(app.resident_id(&demo_resident(n).ticket_no).await);
    }
    let mut group = book_request(people[0], chosen);
    group.companions = vec![people[1], people[2]];
    // Without the option: three do not fit in two seats.
    let err = booking::book(&app.pool, &tenant, &group)
        .await
        .expect_err("too few seats");
    assert!(matches!(err, BookingError::Full), "{err:?}");
    // With it: two in the chosen slot, one in the next.
    let booked = booking::book_allowing_adjacent(&app.pool, &tenant, &group)
        .await
        .expect("split over two slots");
    assert_eq!(booked.len(), 3);
    assert_eq!(booked.iter().filter(|b| b.slot_id == chosen).count(), 2);
    assert_eq!(booked.iter().filter(|b| b.slot_id == next).count(), 1);
    assert!(booked.iter().all(|b| b.group_id == booked[0].group_id));
    assert_eq!(seats(&app, chosen).await.0, before + 2);
    assert_eq!(seats(&app, next).await, (1, 1));
    // The organiser sits in the chosen slot.
    assert!(
        booked
            .iter()
            .any(|b| b.resident_id == people[0] && b.slot_id == chosen)
    );

    // When the neighbours are full too, nobody is booked anywhere.
    sqlx::query(
        "UPDATE slots SET booked = capacity WHERE venue_id = (SELECT venue_id FROM slots WHERE id = $1) \
         AND id <> $1",
    )
    .bind(chosen)
    .execute(&app.owner)
    .await
    .expect("fill the venue");
    sqlx::query("UPDATE slots SET booked = capacity - 1 WHERE id = $1")
        .bind(chosen)
        .execute(&app.owner)
        .await
        .expect("one seat left");
    let mut late = book_request(people[3], chosen);
    late.companions = vec![people[4], people[5]];
    let err = booking::book_allowing_adjacent(&app.pool, &tenant, &late)
        .await
        .expect_err("no room anywhere");
    assert!(matches!(err, BookingError::Full), "{err:?}");
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bookings WHERE resident_id = ANY($1) AND status = 'booked'",
    )
    .bind(&people[3..6])
    .fetch_one(&app.owner)
    .await
    .expect("rows");
    assert_eq!(rows, 0);
}

/// Demo resident `n`'s first-dose request for `slot` under idempotency key `key`.
async fn keyed_request(app: &TestApp, n: u32, slot: Uuid, key: &str) -> booking::BookRequest {
    let mut req = book_request(app.resident_id(&demo_resident(n).ticket_no).await, slot);
    req.idempotency_key = key.to_string();
    req
}

/// Answers of [`booking::book_batched`] for the requests of one wave, in order.
async fn book_together(
    batcher: &booking::Batcher,
    app: &TestApp,
    tenant: &Arc<tenants::Tenant>,
    wave: &[(u32, Uuid, &str)],
) -> Vec<Result<Vec<booking::Booking>, BookingError>> {
    let mut requests = Vec::new();
    for &(n, slot, key) in wave {
        requests.push(keyed_request(app, n, slot, key).await);
    }
    // all sent before any is decided: they queue for the same batch
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|req| {
            let (batcher, pool, tenant) = (batcher.clone(), app.pool.clone(), tenant.clone());
            tokio::spawn(async move { booking::book_batched(&batcher, &pool, &tenant, &req).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("task"));
    }
    answers
}

/// Requests that arrive together are decided by one statement (platform/src/booking/batch.rs);
/// whatever that statement cannot decide exactly (a slot without room for all of them, a second
/// request of the same resident, a deadline) and a batch that fails as a whole are decided again
/// one by one — each request gets the answer it would have got alone, and the invariants hold.
#[tokio::test]
async fn bookings_decided_together_answer_each_request_as_if_alone() {
    let app = demo_app_manual_worker().await;
    let tenant = Arc::new(app.demo_tenant().await);
    let batcher = booking::Batcher::new(app.pool.clone());
    let (roomy, tight, closed) = (
        app.demo_slot(0).await,
        app.demo_slot(1).await,
        app.demo_slot(2).await,
    );
    sqlx::query("UPDATE slots SET capacity = 100 WHERE id = $1")
        .bind(roomy)
        .execute(&app.owner)
        .await
        .expect("roomy slot");
    // the venue closes bookings 24 hours before a slot; this one starts in two hours
    sqlx::query("UPDATE slots SET starts_at = now() + interval '2 hours', ends_at = now() + interval '150 minutes' WHERE id = $1")
        .bind(closed)
        .execute(&app.owner)
        .await
        .expect("closed slot");

    // Wave 1: 30 residents for the roomy slot; resident 1 clicks twice; resident 2 books again with
    // another key; 14 residents for the 10 seats of the tight slot; one for the closed slot.
    let keys: Vec<String> = (1..=45).map(|n| format!("wave-one-{n:03}")).collect();
    let mut wave: Vec<(u32, Uuid, &str)> = (1..=30)
        .map(|n| (n, roomy, keys[n as usize - 1].as_str()))
        .collect();
    wave.push((1, roomy, &keys[0]));
    wave.push((2, roomy, "wave-one-second-try"));
    wave.extend((31..=44).map(|n| (n, tight, keys[n as usize - 1].as_str())));
    wave.push((45, closed, &keys[44]));
    let answers = book_together(&batcher, &app, &tenant, &wave).await;
    let ids: Vec<Uuid> = answers[..30]
        .iter()
        .map(|a| a.as_ref().expect("a roomy seat")[0].id)
        .collect();
    assert_eq!(answers[30].as_ref().expect("double click")[0].id, ids[0]);
    assert!(
        matches!(
            answers[31],
            Err(BookingError::AlreadyBooked { dose: Dose::First })
        ),
        "{:?}",
        answers[31]
    );
    let tight_answers = &answers[32..46];
    let seated = tight_answers.iter().filter(|a| a.is_ok()).count();
    let full = tight_answers
        .iter()
        .filter(|a| matches!(a, Err(BookingError::Full)))
        .count();
    assert_eq!((seated, full), (10, 4), "{tight_answers:?}");
    assert!(
        matches!(answers[46], Err(BookingError::DeadlinePassed)),
        "{:?}",
        answers[46]
    );
    let after_one = batcher.stats();
    assert!(
        after_one.batches >= 1 && after_one.batched >= 2,
        "the roomy bookings were decided together: {after_one:?}"
    );

    // Wave 2: a key already used by resident 1; two residents sharing a new key (the batch's key
    // insert fails as a whole, so every request of it is decided again alone); eight more.
    let mut wave: Vec<(u32, Uuid, &str)> = vec![
        (60, roomy, &keys[0]),
        (61, roomy, "wave-two-shared"),
        (62, roomy, "wave-two-shared"),
    ];
    let more: Vec<String> = (63..=70).map(|n| format!("wave-two-{n:03}")).collect();
    wave.extend((63..=70).zip(&more).map(|(n, k)| (n, roomy, k.as_str())));
    let answers = book_together(&batcher, &app, &tenant, &wave).await;
    assert!(
        matches!(answers[0], Err(BookingError::KeyReused)),
        "{:?}",
        answers[0]
    );
    let shared: Vec<bool> = answers[1..3].iter().map(|a| a.is_ok()).collect();
    assert!(
        shared == [true, false] || shared == [false, true],
        "one of the two sharing a key books: {:?}",
        &answers[1..3]
    );
    assert!(
        answers[1..3]
            .iter()
            .any(|a| matches!(a, Err(BookingError::KeyReused)))
    );
    assert!(
        answers[3..].iter().all(|a| a.is_ok()),
        "{:?}",
        &answers[3..]
    );
    assert!(batcher.stats().alone > after_one.alone);

    // The invariants: seats = rows per slot, one job and one key per booking, nothing else.
    assert_eq!(seats(&app, roomy).await, (30 + 1 + 8, 39));
    assert_eq!(seats(&app, tight).await, (10, 10));
    assert_eq!(seats(&app, closed).await, (0, 0));
    let (bookings, jobless, keys_stored): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), \
                count(*) FILTER (WHERE (SELECT count(*) FROM apalis.jobs j \
                                         WHERE j.job_type = 'notify' \
                                           AND j.idempotency_key = b.tenant_id || '/booking-confirmed:' || b.id) <> 1), \
                (SELECT count(*) FROM idempotency_keys WHERE key LIKE 'wave-%') \
           FROM bookings b WHERE b.slot_id = ANY($1)",
    )
    .bind(vec![roomy, tight, closed])
    .fetch_one(&app.owner)
    .await
    .expect("invariants");
    assert_eq!(
        (bookings, jobless, keys_stored),
        (30 + 10 + 9, 0, 30 + 10 + 9)
    );
}

/// One booking through `batcher`, sent now and answered in its own task.
async fn send_booking(
    batcher: &booking::Batcher,
    app: &TestApp,
    tenant: &Arc<tenants::Tenant>,
    (n, slot, key): (u32, Uuid, &str),
) -> tokio::task::JoinHandle<Result<Vec<booking::Booking>, BookingError>> {
    let req = keyed_request(app, n, slot, key).await;
    let (batcher, pool, tenant) = (batcher.clone(), app.pool.clone(), tenant.clone());
    tokio::spawn(async move { booking::book_batched(&batcher, &pool, &tenant, &req).await })
}

/// Under load a free lane gathers requests instead of taking each the moment it arrives (a
/// request decided alone costs PostgreSQL several batched ones; docs/benchmarks.md, runs 73–82):
/// while another lane is deciding (here held by a row lock on its slot), a lone request waits
/// until `GATHER` are there and the eight are decided by one statement, none alone. On a quiet
/// day (no lane deciding) a lone request is decided at once, never held for the linger.
#[tokio::test]
async fn a_free_lane_gathers_requests_while_another_decides_and_never_waits_when_quiet() {
    let app = demo_app_manual_worker().await;
    let tenant = Arc::new(app.demo_tenant().await);
    // a linger far longer than the test: what is gathered cannot depend on the machine's speed
    let batcher =
        booking::Batcher::with_linger(app.pool.clone(), std::time::Duration::from_secs(600));
    let (held, free) = (app.demo_slot(0).await, app.demo_slot(1).await);
    sqlx::query("UPDATE slots SET capacity = 100 WHERE id = ANY($1)")
        .bind(vec![held, free])
        .execute(&app.owner)
        .await
        .expect("roomy slots");

    // Quiet: nothing else deciding, so the lone request goes at once, alone.
    let quiet = send_booking(&batcher, &app, &tenant, (1, free, "gather-quiet")).await;
    let quiet = tokio::time::timeout(std::time::Duration::from_secs(120), quiet)
        .await
        .expect("a lone request on a quiet day is not held for the linger")
        .expect("task");
    assert!(quiet.is_ok(), "{quiet:?}");
    assert_eq!(batcher.stats().alone, 1, "{:?}", batcher.stats());

    // One lane held: its request waits for the row lock on `held`.
    let lock = app.hold_slot(held).await;
    let stuck = send_booking(&batcher, &app, &tenant, (2, held, "gather-held")).await;
    assert_eq!(
        app.lock_waiters().await,
        1,
        "the held lane's request waits for the slot's row lock"
    );
    let before = batcher.stats();

    // The other lane: a lone request is not decided while fewer than GATHER are there…
    let lone = send_booking(&batcher, &app, &tenant, (3, free, "gather-003")).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !lone.is_finished(),
        "a lone request waits for others while a lane decides"
    );
    assert_eq!(batcher.stats(), before);
    // …and with seven more the eight are decided together by one statement.
    let keys: Vec<String> = (4..=10).map(|n| format!("gather-{n:03}")).collect();
    let mut rest = vec![lone];
    for (n, key) in (4..=10).zip(&keys) {
        rest.push(send_booking(&batcher, &app, &tenant, (n, free, key)).await);
    }
    assert_eq!(rest.len(), booking::batch::GATHER);
    for t in rest {
        let answer = t.await.expect("task");
        assert!(answer.is_ok(), "{answer:?}");
    }
    let after = batcher.stats();
    assert_eq!(
        (after.batches, after.batched, after.alone),
        (before.batches + 1, before.batched + 8, before.alone),
        "the eight gathered requests were decided by one statement, none alone"
    );

    // The lock released: the held request is decided; the seats match the rows.
    lock.rollback().await.expect("release");
    let held_answer = stuck.await.expect("task");
    assert!(held_answer.is_ok(), "{held_answer:?}");
    assert_eq!(seats(&app, held).await, (1, 1));
    assert_eq!(seats(&app, free).await, (9, 9));
}
