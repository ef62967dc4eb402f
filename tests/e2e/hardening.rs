//! Issue 15 (hold under attack), the platform part: opposite changes never deadlock, CSV exports
//! neutralise formulas, idempotency keys are 8–200 characters, and NUL or control characters in
//! free text get a clear validation answer with nothing written.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use platform::staff::authz::Role;

use platform::booking;
use platform::demo::demo_resident;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{AdminClient, TestApp, book_request, demo_app, demo_app_manual_worker};

/// Finding 4: 12 residents move their bookings between two slots in opposite directions at once.
/// Before: PostgreSQL aborted many changes with "deadlock detected" (INTERNAL). Now every change
/// succeeds and the seat counts equal the live bookings.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twelve_residents_swapping_two_slots_at_once_never_deadlock() {
    let app = demo_app_manual_worker().await;
    let tenant = Arc::new(app.demo_tenant().await);
    let (a, b) = (app.demo_slot(0).await, app.demo_slot(1).await);
    // room for everyone in either slot: only the lock order is under test, never "full"
    sqlx::query("UPDATE slots SET capacity = 40 WHERE id = ANY($1)")
        .bind([a, b].as_slice())
        .execute(&app.owner)
        .await
        .expect("widen slots");
    let mut people = Vec::new();
    for n in 1..=12u32 {
        let r = app.resident_id(&demo_resident(100 + n).ticket_no).await;
        let start = if n % 2 == 0 { a } else { b };
        let booked = booking::book(&app.pool, &tenant, &book_request(r, start))
            .await
            .expect("book");
        people.push((r, booked[0].id, start));
    }
    let tasks: Vec<_> = people
        .into_iter()
        .map(|(r, id, start)| {
            let (pool, tenant) = (app.pool.clone(), tenant.clone());
            tokio::spawn(async move {
                let mut errors = Vec::new();
                let mut at = start;
                for _ in 0..6 {
                    let to = if at == a { b } else { a };
                    match booking::change(&pool, &tenant, r, id, to, &Uuid::new_v4().to_string())
                        .await
                    {
                        Ok(moved) => {
                            assert_eq!(moved.slot_id, to);
                            at = to;
                        }
                        Err(e) => errors.push(format!("{} {e}", e.code())),
                    }
                }
                errors
            })
        })
        .collect();
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(t.await.expect("task"));
    }
    assert!(errors.is_empty(), "changes refused: {errors:?}");
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT s.booked, (SELECT count(*) FROM bookings x WHERE x.slot_id = s.id AND x.status = 'booked') \
         FROM slots s WHERE s.id = ANY($1)",
    )
    .bind([a, b].as_slice())
    .fetch_all(&app.owner)
    .await
    .expect("seats");
    for (booked, live) in &rows {
        assert_eq!(i64::from(*booked), *live, "seat count = live bookings");
    }
    assert_eq!(rows.iter().map(|r| r.1).sum::<i64>(), 12);
}

/// Runs the export worker until the newest job is done; returns the downloaded file.
async fn export_file(app: &TestApp, staff: &mut AdminClient<'_>, format: &str) -> Vec<u8> {
    let res = staff
        .post(
            "/admin/t/demo/exports",
            &[("kind", "unbooked_residents"), ("format", format)],
        )
        .await;
    assert_eq!(res.status(), 303);
    let job: Uuid =
        sqlx::query_scalar("SELECT id FROM export_jobs ORDER BY created_at DESC LIMIT 1")
            .fetch_one(&app.owner)
            .await
            .expect("a job");
    let worker =
        platform::exports::ExportWorker::new(app.pool.clone(), chrono::Duration::hours(24));
    for _ in 0..600 {
        worker.run_once().await.expect("worker pass");
        let state: String = sqlx::query_scalar("SELECT state FROM export_jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&app.owner)
            .await
            .expect("job");
        if state == "done" {
            let res = staff
                .get(&format!("/admin/t/demo/exports/{job}/download"))
                .await;
            assert_eq!(res.status(), 200);
            return res.bytes().await.expect("body").to_vec();
        }
        assert_ne!(state, "failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("export {job} did not finish");
}

/// Finding 5: a name or e-mail that starts like a formula comes out of a CSV export with a leading
/// single quote (the OWASP rule), so a spreadsheet shows it as text; the xlsx file keeps the text as
/// a plain string, unchanged.
#[tokio::test]
async fn csv_exports_neutralise_cells_that_would_start_a_formula() {
    let app = demo_app().await;
    let demo = app.demo_tenant().await;
    let ticket = demo_resident(1).ticket_no;
    sqlx::query(
        "UPDATE residents SET kana_name = '=HYPERLINK(\"http://evil.example\",\"x\")', \
         email = '@SUM(1+1)@evil.example' WHERE ticket_no = $1",
    )
    .bind(&ticket)
    .execute(&app.owner)
    .await
    .expect("arrange a hostile name");
    let mut staff = app
        .staff_client("lists@demo.example", Some((demo.id, Role::CityStaff, &[])))
        .await;

    let bytes = export_file(&app, &mut staff, "csv_utf8").await;
    let text = String::from_utf8(bytes[3..].to_vec()).expect("utf-8");
    let line = text
        .lines()
        .find(|l| l.starts_with(&ticket))
        .expect("the resident's row");
    let cells: Vec<&str> = line.splitn(3, ',').collect();
    assert!(
        cells[1].starts_with("\"'=HYPERLINK("),
        "name neutralised: {line}"
    );
    assert!(
        line.contains(",'@SUM(1+1)@evil.example,"),
        "e-mail neutralised: {line}"
    );

    // xlsx: the same cell is a string as typed (no quote, no formula)
    let bytes = export_file(&app, &mut staff, "xlsx").await;
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("xlsx");
    let sheet = wb.sheet_names()[0].clone();
    let range = wb.worksheet_range(&sheet).expect("sheet");
    let row = range
        .rows()
        .find(|r| r[0] == Data::String(ticket.clone()))
        .expect("the resident's row");
    assert_eq!(
        row[1],
        Data::String("=HYPERLINK(\"http://evil.example\",\"x\")".into())
    );
    assert!(wb.worksheet_formula(&sheet).expect("formulas").is_empty());
}

const BOOK: &str = "mutation($input: BookInput!) { book(input: $input) { bookings { id slotId dose } errors { code message field } } }";
const CANCEL: &str = "mutation($b: UUID!, $k: String!) { cancelBooking(bookingId: $b, idempotencyKey: $k) { booking { status } errors { code message field } } }";

async fn live_bookings(app: &TestApp, resident: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bookings WHERE resident_id = $1 AND status = 'booked'")
        .bind(resident)
        .fetch_one(&app.owner)
        .await
        .expect("count")
}

/// Finding 11: idempotency keys are 8–200 characters (docs/api.md). A 7-character (or 201-character,
/// or control-character) key is a VALIDATION error with nothing booked or cancelled; 8 and 200 work.
#[tokio::test]
async fn idempotency_keys_outside_eight_to_two_hundred_characters_are_refused() {
    let app = demo_app_manual_worker().await;
    let n = 151;
    let token = app.resident_token(n).await;
    let resident = app.resident_id(&demo_resident(n).ticket_no).await;
    let slot = app.demo_slot(0).await;
    let book = |key: String| json!({ "input": { "slotId": slot, "dose": "FIRST", "idempotencyKey": key } });
    for bad in [
        "abcdefg".to_owned(),
        "k".repeat(201),
        "abcd\0efgh".to_owned(),
        " \t\n ".to_owned(),
    ] {
        let refused = app.graphql_as(&token, "en", BOOK, book(bad.clone())).await;
        let error = &refused["data"]["book"]["errors"][0];
        assert_eq!(error["code"], "VALIDATION", "{bad:?}: {refused}");
        assert_eq!(error["field"], "idempotencyKey", "{refused}");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("8 to 200 characters")),
            "{refused}"
        );
        assert_eq!(live_bookings(&app, resident).await, 0, "nothing booked");
    }
    let keys: i64 =
        sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE resident_id = $1")
            .bind(resident)
            .fetch_one(&app.owner)
            .await
            .expect("keys");
    assert_eq!(keys, 0, "no key stored");

    let booked = app
        .graphql_as(&token, "en", BOOK, book("abcdefgh".into()))
        .await;
    let id = booked["data"]["book"]["bookings"][0]["id"].clone();
    assert!(id.is_string(), "8 characters are enough: {booked}");
    let refused = app
        .graphql_as(&token, "ja", CANCEL, json!({ "b": id, "k": "short" }))
        .await;
    assert_eq!(
        refused["data"]["cancelBooking"]["errors"][0]["code"], "VALIDATION",
        "{refused}"
    );
    assert_eq!(refused["data"]["cancelBooking"]["booking"], Value::Null);
    assert_eq!(live_bookings(&app, resident).await, 1, "not cancelled");
    let long = "c".repeat(200);
    let cancelled = app
        .graphql_as(&token, "en", CANCEL, json!({ "b": id, "k": long }))
        .await;
    assert_eq!(
        cancelled["data"]["cancelBooking"]["booking"]["status"], "CANCELLED",
        "{cancelled}"
    );
    // a replay of the 200-character key answers the same booking, changes nothing
    let again = app
        .graphql_as(&token, "en", CANCEL, json!({ "b": id, "k": long }))
        .await;
    assert_eq!(
        again["data"]["cancelBooking"]["booking"]["status"], "CANCELLED",
        "{again}"
    );
}

/// Finding 9: a NUL in a venue name (admin form → `city::setup::create_venue`) is a validation
/// message and no venue; a NUL in a ticket number on resident login is VALIDATION with no code and
/// no throttle row; a NUL cell in a CSV import is that row's error, by line and column.
#[tokio::test]
async fn nul_and_control_characters_are_refused_with_a_message_and_nothing_written() {
    let app = demo_app().await;
    let demo = app.demo_tenant().await;
    let count = |sql: &'static str| {
        let owner = app.owner.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&owner)
                .await
                .expect("count")
        }
    };

    // venue name
    let vaccine: Uuid = sqlx::query_scalar("SELECT id FROM vaccines WHERE tenant_id = $1 LIMIT 1")
        .bind(demo.id.0)
        .fetch_one(&app.owner)
        .await
        .expect("a vaccine");
    let mut admin = app
        .staff_client("setup@demo.example", Some((demo.id, Role::CityAdmin, &[])))
        .await;
    let venues = count("SELECT count(*) FROM venues").await;
    for name in ["Hall\0B", "Hall\u{1}B", "Hall\nB"] {
        let res = admin
            .post(
                "/admin/t/demo/venues",
                &[
                    ("name", name),
                    ("kind", "mass"),
                    ("vaccine_id", &vaccine.to_string()),
                    ("booking_deadline_hours", "24"),
                    ("cancel_cutoff_days", "2"),
                ],
            )
            .await;
        let (status, body) = crate::support::body(res).await;
        assert!(status < 500 && status != 303, "{name:?}: {status}");
        assert!(body.contains("control character"), "{name:?}: {body}");
        assert_eq!(
            count("SELECT count(*) FROM venues").await,
            venues,
            "no venue"
        );
    }

    // ticket number in the staff lookup (admin page: refused at the edge; GraphQL: by the lookup
    // itself): a message, not "not found", and no audit entry
    let audited = count("SELECT count(*) FROM audit_log").await;
    let res = admin
        .get(&format!(
            "/admin/t/demo/residents?ticket={}%01",
            demo_resident(1).ticket_no
        ))
        .await;
    let (status, body) = crate::support::body(res).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("control character"), "{body}");
    assert_eq!(count("SELECT count(*) FROM audit_log").await, audited);
    let page = admin
        .post(
            "/admin/t/demo/api-keys",
            &[("name", "lookup"), ("scope_residents:read", "1")],
        )
        .await
        .text()
        .await
        .expect("page");
    let key = page
        .split("id=\"new-api-key\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("the key is shown once")
        .to_owned();
    let audited = count("SELECT count(*) FROM audit_log").await;
    let answer = app
        .graphql_with_key(
            &key,
            "query($t: String!) { city(city: \"demo\") { resident(ticketNo: $t) { kanaName } } }",
            json!({ "t": format!("{}\u{1}", demo_resident(1).ticket_no) }),
        )
        .await;
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "VALIDATION",
        "{answer}"
    );
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ticketNo") && m.contains("control character")),
        "{answer}"
    );
    assert_eq!(
        count("SELECT count(*) FROM audit_log").await,
        audited,
        "a refused lookup reads nothing and is not a view of anyone"
    );

    // ticket number on resident login
    let r = demo_resident(152);
    let codes = count("SELECT count(*) FROM login_codes").await;
    let throttled = count("SELECT count(*) FROM login_throttle").await;
    let refused = app
        .graphql(
            "mutation($t: String!, $b: Date!) { requestLoginCode(city: \"demo\", ticketNo: $t, birthDate: $b) { maskedPhone errors { code message field } } }",
            json!({ "t": format!("{}\u{0}", r.ticket_no), "b": r.birth_date }),
        )
        .await;
    let error = &refused["data"]["requestLoginCode"]["errors"][0];
    assert_eq!(error["code"], "VALIDATION", "{refused}");
    assert_eq!(error["field"], "ticketNo", "{refused}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("制御文字") || m.contains("control character")),
        "{refused}"
    );
    assert_eq!(count("SELECT count(*) FROM login_codes").await, codes);
    assert_eq!(
        count("SELECT count(*) FROM login_throttle").await,
        throttled
    );

    // a CSV import cell
    let csv = format!(
        "{}\n1000000901,1950-04-01,ヤマダ タロウ,male,,a\0b@example.jp,,\n1000000902,1950-04-01,ヤマダ ハナコ,female,,,,\n",
        platform::residents::import::COLUMNS.join(",")
    );
    let parsed = platform::residents::import::parse(csv.as_bytes()).expect("readable");
    let errors: Vec<(u64, &str, &str)> = parsed
        .errors
        .iter()
        .map(|e| (e.line, e.column.as_str(), e.reason.as_str()))
        .collect();
    assert_eq!(
        errors,
        vec![(2, "email", platform::text::BadText::REASON)],
        "one error for the bad cell"
    );
    assert_eq!(parsed.rows.len(), 1);
}
