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
    let job: Uuid = sqlx::query_scalar("SELECT id FROM export_jobs ORDER BY created_at DESC LIMIT 1")
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
    assert!(line.contains(",'@SUM(1+1)@evil.example,"), "e-mail neutralised: {line}");

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
