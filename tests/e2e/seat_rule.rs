//! One seat predicate (docs/architecture.md, "Where to find"): whether a slot can give seats is
//! decided by the SQL function `seat_available` (migrations/20261201000001_one_seat_predicate.sql),
//! the same for the general path, the fast path and the batch. Times are built relative to the
//! database's `now()`, so the answers do not depend on when the test runs.

use sqlx::Row;

use crate::support::spawn_app;

/// One case of the rule: the slot, the request, the answer.
struct Case {
    what: &'static str,
    booked: i32,
    booked_dose2: i32,
    capacity: i32,
    seats: i32,
    dose2: bool,
    /// Seats held for dose 2, in per cent, and until how many hours from now (negative: ended).
    hold: Option<(i32, i32)>,
    starts_in_h: i32,
    ends_in_h: i32,
    deadline_h: i32,
    /// Booking opens this many hours from now (negative: already open); `None`: no opening time.
    opens_in_h: Option<i32>,
    pass_deadlines: bool,
    fits: bool,
}

const OPEN: Case = Case {
    what: "",
    booked: 0,
    booked_dose2: 0,
    capacity: 10,
    seats: 1,
    dose2: false,
    hold: None,
    starts_in_h: 72,
    ends_in_h: 73,
    deadline_h: 24,
    opens_in_h: None,
    pass_deadlines: false,
    fits: true,
};

#[tokio::test]
async fn the_one_seat_predicate_decides_capacity_the_dose2_hold_deadlines_and_opening() {
    let app = spawn_app().await;
    let cases = [
        Case {
            what: "the last free seat",
            booked: 9,
            ..OPEN
        },
        Case {
            what: "a full slot",
            booked: 10,
            fits: false,
            ..OPEN
        },
        Case {
            what: "a pair with one seat left",
            booked: 9,
            seats: 2,
            fits: false,
            ..OPEN
        },
        Case {
            what: "dose 1 into seats held for dose 2",
            booked: 5,
            hold: Some((50, 24)),
            fits: false,
            ..OPEN
        },
        Case {
            what: "dose 2 into seats held for it",
            booked: 5,
            dose2: true,
            hold: Some((50, 24)),
            ..OPEN
        },
        Case {
            what: "dose 1 beside dose-2 bookings within the hold",
            booked: 8,
            booked_dose2: 4,
            hold: Some((50, 24)),
            ..OPEN
        },
        Case {
            what: "dose 1 after the hold ended",
            booked: 5,
            hold: Some((50, -1)),
            ..OPEN
        },
        Case {
            what: "past the booking deadline",
            starts_in_h: 12,
            ends_in_h: 13,
            fits: false,
            ..OPEN
        },
        Case {
            what: "past the deadline with staff's pass",
            starts_in_h: 12,
            ends_in_h: 13,
            pass_deadlines: true,
            ..OPEN
        },
        Case {
            what: "an ended slot even with the pass",
            starts_in_h: -2,
            ends_in_h: -1,
            pass_deadlines: true,
            fits: false,
            ..OPEN
        },
        Case {
            what: "before booking opens",
            opens_in_h: Some(1),
            fits: false,
            ..OPEN
        },
        Case {
            what: "after booking opened",
            opens_in_h: Some(-1),
            ..OPEN
        },
    ];
    for c in &cases {
        let fits: bool = sqlx::query_scalar(
            "SELECT seat_available($1, $2, $3, $4, $5, $6, \
                 CASE WHEN $7::int IS NULL THEN NULL ELSE now() + make_interval(hours => $7::int) END, \
                 now() + make_interval(hours => $8::int), now() + make_interval(hours => $9::int), $10, \
                 CASE WHEN $11::int IS NULL THEN NULL ELSE now() + make_interval(hours => $11::int) END, \
                 $12)",
        )
        .bind(c.booked)
        .bind(c.booked_dose2)
        .bind(c.capacity)
        .bind(c.seats)
        .bind(c.dose2)
        .bind(c.hold.map(|h| h.0))
        .bind(c.hold.map(|h| h.1))
        .bind(c.starts_in_h)
        .bind(c.ends_in_h)
        .bind(c.deadline_h)
        .bind(c.opens_in_h)
        .bind(c.pass_deadlines)
        .fetch_one(&app.owner)
        .await
        .expect("seat_available");
        assert_eq!(fits, c.fits, "{}", c.what);
    }
}

#[tokio::test]
async fn every_seat_taking_function_calls_the_one_predicate_and_the_planner_inlines_it() {
    let app = spawn_app().await;
    for function in ["book_first_dose", "book_first_doses"] {
        let source: String = sqlx::query_scalar("SELECT prosrc FROM pg_proc WHERE proname = $1")
            .bind(function)
            .fetch_one(&app.owner)
            .await
            .expect("function source");
        assert!(
            source.contains("seat_available("),
            "{function} takes seats without the seat predicate"
        );
        assert!(
            !source.contains("<= s.capacity"),
            "{function} writes the capacity rule out again"
        );
    }
    // Inlined: the plan shows the predicate's expression, not a call per row, so the seat statement
    // costs what it did when the conditions were written out (docs/benchmarks.md).
    let plan: Vec<String> = sqlx::query(
        "EXPLAIN (VERBOSE, COSTS OFF) \
         SELECT s.id FROM slots s JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
         LEFT JOIN booking_settings bs ON bs.tenant_id = v.tenant_id \
         WHERE seat_available(s.booked, s.booked_dose2, s.capacity, 1, false, \
               bs.dose2_reserve_percent, bs.dose2_reserve_until, s.starts_at, s.ends_at, \
               v.booking_deadline_hours, v.booking_opens_at, false)",
    )
    .fetch_all(&app.owner)
    .await
    .expect("explain")
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("capacity"), "the plan names the rule: {plan}");
    assert!(
        !plan.contains("seat_available") && !plan.contains("dose2_held_seats"),
        "the predicate is not inlined: {plan}"
    );
}
