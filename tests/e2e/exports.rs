//! Export jobs (docs/exports.md): the booked list read back from Excel matches the database row for
//! row; 100,000 residents export in bounded memory; expired files are deleted by their expiry task;
//! who may list, create and download (the call centre: nothing).

use std::io::Cursor;
use std::time::Duration;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{NaiveDate, NaiveDateTime};
use platform::exports::{self, BATCH_ROWS, ExportFormat, ExportKind};
use platform::staff::authz::{Act, Actor, Object, Role};
use uuid::Uuid;

use crate::support::{AdminClient, TestApp, demo_app, role_clients, spawn_app};

/// Runs the export worker until the job is done (the server's own worker may get there first).
async fn wait_done(app: &TestApp, job: Uuid) -> (String, i64, Option<i32>) {
    let worker = exports::ExportWorker::new(app.pool.clone(), chrono::Duration::hours(24));
    for _ in 0..1200 {
        worker.run_once().await.expect("worker pass");
        let (state, rows, peak): (String, i64, Option<i32>) = sqlx::query_as(
            "SELECT state, rows_done, max_buffered_rows FROM export_jobs WHERE id = $1",
        )
        .bind(job)
        .fetch_one(&app.owner)
        .await
        .expect("job");
        if state == "done" || state == "failed" {
            return (state, rows, peak);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("export {job} did not finish");
}

async fn newest_job(app: &TestApp) -> Uuid {
    sqlx::query_scalar("SELECT id FROM export_jobs ORDER BY created_at DESC LIMIT 1")
        .fetch_one(&app.owner)
        .await
        .expect("a job")
}

async fn download(client: &mut AdminClient<'_>, slug: &str, job: Uuid) -> (u16, Vec<u8>) {
    let res = client
        .get(&format!("/admin/t/{slug}/exports/{job}/download"))
        .await;
    let status = res.status().as_u16();
    (status, res.bytes().await.expect("body").to_vec())
}

/// Excel stores times as fractions of a day: round away the float error.
fn round_minute(t: NaiveDateTime) -> NaiveDateTime {
    let secs = t.and_utc().timestamp_millis();
    let rounded = (secs + 30_000).div_euclid(60_000) * 60;
    chrono::DateTime::from_timestamp(rounded, 0)
        .expect("time")
        .naive_utc()
}

/// Books demo residents into two slots of one venue and day; cancels one booking.
async fn bookings_on_one_day(app: &TestApp, demo: &tenants::Tenant) -> (Uuid, NaiveDate) {
    let (venue, day): (Uuid, NaiveDate) = sqlx::query_as(
        "SELECT s.venue_id, (s.starts_at AT TIME ZONE 'Asia/Tokyo')::date FROM slots s \
         JOIN venues v ON v.id = s.venue_id WHERE v.name = '市民ホール集団接種会場' \
           AND s.starts_at > now() + interval '3 days' ORDER BY s.starts_at LIMIT 1",
    )
    .fetch_one(&app.owner)
    .await
    .expect("a day");
    let slots: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM slots WHERE venue_id = $1 AND (starts_at AT TIME ZONE 'Asia/Tokyo')::date = $2 \
         ORDER BY starts_at LIMIT 2",
    )
    .bind(venue)
    .bind(day)
    .fetch_all(&app.owner)
    .await
    .expect("slots");
    assert_eq!(slots.len(), 2, "the demo has several slots a day");
    let mut ids = Vec::new();
    for n in 1..=7u32 {
        let r = app
            .resident_id(&platform::demo::demo_resident(n).ticket_no)
            .await;
        let booked = platform::booking::book(
            &app.pool,
            demo,
            &platform::booking::BookRequest {
                resident_id: r,
                slot_id: slots[(n % 2) as usize],
                dose: platform::booking::Dose::First,
                companions: vec![],
                second_dose_slot: None,
                idempotency_key: format!("export-test-{n}-{}", Uuid::now_v7()),
            },
        )
        .await
        .expect("book");
        ids.push((r, booked[0].id));
    }
    platform::booking::cancel(&app.pool, demo, ids[0].0, ids[0].1, "export-test-cancel-1")
        .await
        .expect("cancel one");
    (venue, day)
}

#[tokio::test]
async fn the_booked_list_in_excel_matches_the_database_row_for_row() {
    let app = demo_app().await;
    let demo = app.demo_tenant().await;
    let (venue, day) = bookings_on_one_day(&app, &demo).await;
    let mut staff = app
        .staff_client("lists@demo.example", Some((demo.id, Role::CityStaff, &[])))
        .await;
    let (v, d) = (venue.to_string(), day.to_string());
    let res = staff
        .post(
            "/admin/t/demo/exports",
            &[
                ("kind", "booked_list"),
                ("venue", &v),
                ("date", &d),
                ("format", "xlsx"),
            ],
        )
        .await;
    assert_eq!(res.status(), 303);
    let job = newest_job(&app).await;
    // the list page shows the job (queued, running or done) with a progress column
    let html = staff
        .get("/admin/t/demo/exports")
        .await
        .text()
        .await
        .expect("page");
    assert!(html.contains(&job.to_string()) || html.contains("data-state"));
    let (state, rows, _) = wait_done(&app, job).await;
    assert_eq!((state.as_str(), rows), ("done", 6));
    let html = staff
        .get("/admin/t/demo/exports")
        .await
        .text()
        .await
        .expect("page");
    assert!(html.contains(&format!("/admin/t/demo/exports/{job}/download")));
    assert!(html.contains("value=\"100\""), "progress at 100%: {html}");

    let (status, bytes) = download(&mut staff, "demo", job).await;
    assert_eq!(status, 200);
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("xlsx");
    assert_eq!(wb.sheet_names(), vec!["予約者一覧"]);
    let range = wb.worksheet_range("予約者一覧").expect("sheet");
    let header: Vec<String> = range
        .rows()
        .next()
        .expect("header")
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        header,
        [
            "予約時刻",
            "接種券番号",
            "カナ氏名",
            "生年月日",
            "性別",
            "回数",
            "ワクチン",
            "電話番号"
        ]
    );
    type Row = (
        NaiveDateTime,
        String,
        String,
        NaiveDate,
        String,
        i64,
        String,
        String,
    );
    let got: Vec<Row> = range
        .rows()
        .skip(1)
        .map(|r| {
            let dt = |c: &Data| match c {
                Data::DateTime(x) => round_minute(x.as_datetime().expect("datetime")),
                other => panic!("not a date: {other:?}"),
            };
            let n = |c: &Data| match c {
                Data::Float(f) => *f as i64,
                Data::Int(i) => *i,
                other => panic!("not a number: {other:?}"),
            };
            (
                dt(&r[0]),
                r[1].to_string(),
                r[2].to_string(),
                dt(&r[3]).date(),
                r[4].to_string(),
                n(&r[5]),
                r[6].to_string(),
                r[7].to_string(),
            )
        })
        .collect();
    let want: Vec<Row> = sqlx::query_as(
        "SELECT date_trunc('minute', s.starts_at AT TIME ZONE 'Asia/Tokyo'), r.ticket_no, r.kana_name, r.birth_date, \
                CASE r.sex WHEN 'female' THEN '女' WHEN 'male' THEN '男' END, b.dose::bigint, x.name, coalesce(r.phone, '') \
           FROM bookings b JOIN slots s ON s.id = b.slot_id JOIN residents r ON r.id = b.resident_id \
           JOIN vaccines x ON x.id = b.vaccine_id \
          WHERE s.venue_id = $1 AND (s.starts_at AT TIME ZONE 'Asia/Tokyo')::date = $2 AND b.status = 'booked' \
          ORDER BY s.starts_at, r.ticket_no",
    )
    .bind(venue)
    .bind(day)
    .fetch_all(&app.owner)
    .await
    .expect("expected rows");
    assert_eq!(want.len(), 6, "the cancelled booking is not on the list");
    assert_eq!(got, want);

    // the download is audited with who did it
    let downloads: Vec<(String, String)> =
        sqlx::query_as("SELECT actor, object FROM audit_log WHERE action = 'export.download'")
            .fetch_all(&app.owner)
            .await
            .expect("audit");
    assert_eq!(
        downloads,
        vec![("lists@demo.example".to_owned(), format!("export/{job}"))]
    );

    // the same rows as CSV: UTF-8 with a BOM, and Shift_JIS on request
    for (format, bom) in [("csv_utf8", true), ("csv_sjis", false)] {
        let res = staff
            .post(
                "/admin/t/demo/exports",
                &[
                    ("kind", "booked_list"),
                    ("venue", &v),
                    ("date", &d),
                    ("format", format),
                ],
            )
            .await;
        assert_eq!(res.status(), 303);
        let job = newest_job(&app).await;
        assert_eq!(wait_done(&app, job).await.1, 6);
        let (_, bytes) = download(&mut staff, "demo", job).await;
        assert_eq!(bytes.starts_with(b"\xEF\xBB\xBF"), bom);
        let text = if bom {
            String::from_utf8(bytes[3..].to_vec()).expect("utf-8")
        } else {
            let (text, _, errors) = encoding_rs::SHIFT_JIS.decode(&bytes);
            assert!(!errors);
            text.into_owned()
        };
        assert!(text.starts_with("予約時刻,接種券番号,カナ氏名"));
        assert_eq!(text.lines().count(), 7);
        assert!(text.contains(&want[0].2));
    }

    // bad input: a message, nothing queued
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM export_jobs")
        .fetch_one(&app.owner)
        .await
        .expect("count");
    let res = staff
        .post(
            "/admin/t/demo/exports",
            &[
                ("kind", "booked_list"),
                ("venue", &v),
                ("date", "12月1日"),
                ("format", "xlsx"),
            ],
        )
        .await;
    assert_eq!(res.status(), 422);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM export_jobs")
        .fetch_one(&app.owner)
        .await
        .expect("count");
    assert_eq!(before, after);
}

#[tokio::test]
async fn vaccination_records_export_with_lot_amount_and_side_effects() {
    let app = demo_app().await;
    let demo = app.demo_tenant().await;
    bookings_on_one_day(&app, &demo).await;
    // two of the live bookings were given their dose (inserted as intake would record them);
    // the second had a fever and a sore arm
    let given: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT b.id, b.resident_id FROM bookings b WHERE b.status = 'booked' ORDER BY b.created_at LIMIT 2",
    )
    .fetch_all(&app.owner)
    .await
    .expect("bookings");
    for (i, (booking, _)) in given.iter().enumerate() {
        sqlx::query(
            "INSERT INTO vaccination_records (tenant_id, id, booking_id, resident_id, venue_id, dose, vaccine_id, \
             lot_number, dose_ml, vaccinator, vaccinated_at, recorded_by) \
             SELECT b.tenant_id, $2, b.id, b.resident_id, s.venue_id, b.dose, b.vaccine_id, $3, 0.3, '加藤医師', \
                    timestamptz '2026-12-01 10:05+09' + $4 * interval '1 hour', 'nurse@demo.example' \
               FROM bookings b JOIN slots s ON s.id = b.slot_id WHERE b.id = $1",
        )
        .bind(booking)
        .bind(Uuid::now_v7())
        .bind(format!("LOT-{i}"))
        .bind(i as i32)
        .execute(&app.owner)
        .await
        .expect("record");
    }
    for (kind, severity, minutes) in [("fever", "mild", 40), ("injection_site", "moderate", 20)] {
        sqlx::query(
            "INSERT INTO side_effect_notes (tenant_id, id, resident_id, booking_id, venue_id, kind, severity, onset_at, recorded_by) \
             SELECT tenant_id, $2, resident_id, booking_id, venue_id, $3, $4, vaccinated_at + $5 * interval '1 minute', 'nurse' \
               FROM vaccination_records WHERE booking_id = $1",
        )
        .bind(given[1].0)
        .bind(Uuid::now_v7())
        .bind(kind)
        .bind(severity)
        .bind(minutes)
        .execute(&app.owner)
        .await
        .expect("note");
    }
    let mut staff = app
        .staff_client(
            "records@demo.example",
            Some((demo.id, Role::CityStaff, &[])),
        )
        .await;
    let res = staff
        .post(
            "/admin/t/demo/exports",
            &[("kind", "vaccination_records"), ("format", "xlsx")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let job = newest_job(&app).await;
    assert_eq!(wait_done(&app, job).await.0, "done");
    let (status, bytes) = download(&mut staff, "demo", job).await;
    assert_eq!(status, 200);
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("xlsx");
    assert_eq!(wb.sheet_names(), vec!["接種記録"]);
    let range = wb.worksheet_range("接種記録").expect("sheet");
    let rows: Vec<Vec<Data>> = range.rows().map(|r| r.to_vec()).collect();
    assert_eq!(rows.len(), 3, "header and one row per record");
    let header: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
    assert_eq!(
        header,
        [
            "接種日時",
            "接種券番号",
            "カナ氏名",
            "生年月日",
            "性別",
            "回数",
            "ワクチン",
            "ロット番号",
            "接種量(mL)",
            "接種者",
            "会場",
            "副反応",
            "記録者"
        ]
    );
    let when = |c: &Data| match c {
        Data::DateTime(x) => round_minute(x.as_datetime().expect("datetime")),
        other => panic!("not a date: {other:?}"),
    };
    let day = NaiveDate::from_ymd_opt(2026, 12, 1).expect("day");
    assert_eq!(when(&rows[1][0]), day.and_hms_opt(10, 5, 0).expect("time"));
    assert_eq!(when(&rows[2][0]), day.and_hms_opt(11, 5, 0).expect("time"));
    for (i, (_, resident)) in given.iter().enumerate() {
        let ticket: String = sqlx::query_scalar("SELECT ticket_no FROM residents WHERE id = $1")
            .bind(resident)
            .fetch_one(&app.owner)
            .await
            .expect("ticket");
        let row = &rows[i + 1];
        assert_eq!(row[1].to_string(), ticket);
        assert_eq!(row[7].to_string(), format!("LOT-{i}"));
        assert_eq!(row[8].to_string(), "0.30");
        assert_eq!(row[9].to_string(), "加藤医師");
        assert_eq!(row[10].to_string(), "市民ホール集団接種会場");
        assert_eq!(row[12].to_string(), "nurse@demo.example");
    }
    assert_eq!(rows[1][11].to_string(), "");
    assert_eq!(
        rows[2][11].to_string(),
        "接種部位の反応（中等度）、発熱（軽度）",
        "side effects in order of onset"
    );
}

#[tokio::test]
async fn a_hundred_thousand_residents_export_in_bounded_memory() {
    const N: i64 = 100_000;
    let app = spawn_app().await;
    let tenant = crate::support::bare_tenant(&app.pool, "bigcity", "大規模市").await;
    sqlx::query(
        "INSERT INTO residents (tenant_id, id, ticket_no, birth_date, kana_name, sex) \
         SELECT $1, gen_random_uuid(), lpad(g::text, 10, '0'), date '1940-01-01' + (g % 25000)::int, \
                'テスト ' || g, (ARRAY['female', 'male'])[1 + g % 2] \
           FROM generate_series(1, $2) g",
    )
    .bind(tenant.0)
    .bind(N)
    .execute(&app.owner)
    .await
    .expect("bulk insert");
    let operator = app.staff("ops@yoyaku.example", None).await;
    let actor = Actor::staff(operator.id, &operator.email, None);
    let mut scope = app
        .authz
        .enter(&actor, tenant, Object::Exports, Act::Write)
        .await
        .expect("scope");
    let job = exports::create(
        &mut scope,
        &ExportKind::UnbookedResidents,
        ExportFormat::Xlsx,
    )
    .await
    .expect("queue");
    scope.commit().await.expect("commit");

    let (state, rows, peak) = wait_done(&app, job).await;
    assert_eq!((state.as_str(), rows), ("done", N));
    // never more than three batches (being filled, queued, being written) held at once
    let peak = peak.expect("peak recorded") as usize;
    assert!(
        peak > 0 && peak <= 3 * BATCH_ROWS,
        "peak {peak} rows buffered"
    );
    let chunks: i64 = sqlx::query_scalar("SELECT count(*) FROM export_chunks WHERE job_id = $1")
        .bind(job)
        .fetch_one(&app.owner)
        .await
        .expect("chunks");
    assert!(chunks >= 1);

    let mut ops = app
        .login("ops@yoyaku.example", crate::support::PASSWORD)
        .await;
    let (status, bytes) = download(&mut ops, "bigcity", job).await;
    assert_eq!(status, 200);
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("xlsx");
    let range = wb.worksheet_range("未予約者一覧").expect("sheet");
    assert_eq!(range.height() as i64, N + 1);
    assert_eq!(range.get((1, 0)), Some(&Data::String("0000000001".into())));
    assert_eq!(
        range.get((N as usize, 0)),
        Some(&Data::String(format!("{N:010}")))
    );
}

#[tokio::test]
async fn expired_files_are_deleted_by_the_worker_tick() {
    let app = demo_app().await;
    let mut admin = app
        .staff_client(
            "admin@exports.example",
            Some((app.demo_tenant().await.id, Role::CityAdmin, &[])),
        )
        .await;
    let res = admin
        .post(
            "/admin/t/demo/exports",
            &[("kind", "booking_ledger"), ("format", "csv_utf8")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let job = newest_job(&app).await;
    assert_eq!(wait_done(&app, job).await.0, "done");
    assert_eq!(download(&mut admin, "demo", job).await.0, 200);
    let expires_in: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - finished_at)::float8 FROM export_jobs WHERE id = $1",
    )
    .bind(job)
    .fetch_one(&app.owner)
    .await
    .expect("expiry");
    assert!(
        (expires_in - 24.0 * 3600.0).abs() < 5.0,
        "default 24 h: {expires_in}"
    );

    // not yet expired: the tick keeps it
    let worker = exports::ExportWorker::new(app.pool.clone(), chrono::Duration::hours(24));
    worker.run_once().await.expect("tick");
    let chunks = |app: &TestApp| {
        let owner = app.owner.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM export_chunks WHERE job_id = $1")
                .bind(job)
                .fetch_one(&owner)
                .await
                .expect("chunks")
        }
    };
    assert!(chunks(&app).await >= 1);

    sqlx::query("UPDATE export_jobs SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(job)
        .execute(&app.owner)
        .await
        .expect("age the file");
    // finishing the export queued its expiry for `expires_at`: that time has come
    let expiry = sqlx::query(
        "UPDATE apalis.jobs SET run_at = now() - interval '1 second' \
          WHERE job_type = 'exports' AND idempotency_key LIKE '%/export-expire:' || $1",
    )
    .bind(job.to_string())
    .execute(&app.owner)
    .await
    .expect("expiry due");
    assert_eq!(expiry.rows_affected(), 1, "one expiry queued with the file");
    // expired but not yet swept: the download already refuses, and the page says so and offers
    // no link (platform::exports::ExportJob::status, the rule every door shows)
    assert_eq!(download(&mut admin, "demo", job).await.0, 410);
    let html = exports_page(&mut admin).await;
    assert!(html.contains(r#"data-state="expired""#), "{html}");
    assert!(!html.contains(&format!("/exports/{job}/download")));
    worker.run_once().await.expect("tick");
    assert_eq!(chunks(&app).await, 0, "the file is gone");
    let state: String = sqlx::query_scalar("SELECT state FROM export_jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&app.owner)
        .await
        .expect("state");
    assert_eq!(state, "expired");
    assert_eq!(download(&mut admin, "demo", job).await.0, 410);
    let html = exports_page(&mut admin).await;
    assert!(!html.contains(&format!("/exports/{job}/download")));
}

async fn exports_page(admin: &mut AdminClient<'_>) -> String {
    admin
        .get("/admin/t/demo/exports")
        .await
        .text()
        .await
        .expect("page")
}

#[tokio::test]
async fn the_call_centre_is_forbidden_every_export_and_each_role_gets_its_share() {
    let app = demo_app().await;
    let demo = app.demo_tenant().await;
    let mut people = role_clients(&app, &demo).await;
    // a finished export to try to download
    let res = people[1]
        .post(
            "/admin/t/demo/exports",
            &[("kind", "unbooked_residents"), ("format", "xlsx")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let job = newest_job(&app).await;
    assert_eq!(wait_done(&app, job).await.0, "done");

    //                        op   admin staff venue hosp  cc   auditor
    let page: [u16; 7] = [200, 200, 200, 403, 403, 403, 200];
    let create: [u16; 7] = [303, 303, 303, 403, 403, 403, 403];
    let get_file: [u16; 7] = [200, 200, 200, 403, 403, 403, 200];
    let names = [
        "operator",
        "city_admin",
        "city_staff",
        "venue_staff",
        "hospital_staff",
        "call_center",
        "auditor",
    ];
    for (i, client) in people.iter_mut().enumerate() {
        let who = names[i];
        let s = client.get("/admin/t/demo/exports").await.status().as_u16();
        assert_eq!(s, page[i], "export page as {who}");
        let s = client
            .post(
                "/admin/t/demo/exports",
                &[("kind", "booking_ledger"), ("format", "csv_sjis")],
            )
            .await
            .status()
            .as_u16();
        assert_eq!(s, create[i], "create as {who}");
        let (s, bytes) = download(client, "demo", job).await;
        assert_eq!(s, get_file[i], "download as {who}");
        if s == 200 {
            assert!(bytes.starts_with(b"PK"), "an xlsx (zip) file");
        }
    }
    // exactly one audited download per allowed role; none for the refused ones
    let downloaders: Vec<String> = sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE action = 'export.download' ORDER BY at",
    )
    .fetch_all(&app.owner)
    .await
    .expect("audit");
    assert_eq!(
        downloaders,
        ["operator", "city_admin", "city_staff", "auditor"]
            .map(|w| format!("{w}@roles.example"))
            .to_vec()
    );
    // the call centre's own menu has no way in either: forbidden at the guard, not just hidden
    let denied: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM export_jobs WHERE created_by = 'call_center@roles.example'",
    )
    .fetch_one(&app.owner)
    .await
    .expect("count");
    assert_eq!(denied, 0);
}

#[tokio::test]
async fn another_citys_export_is_not_found() {
    let app = demo_app().await;
    let demo = app.demo_tenant().await;
    let other = app.seeded_tenant("othercity", "141305").await;
    let mut admin = app
        .staff_client("a@demo.example", Some((demo.id, Role::CityAdmin, &[])))
        .await;
    let res = admin
        .post(
            "/admin/t/demo/exports",
            &[("kind", "booking_ledger"), ("format", "xlsx")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let job = newest_job(&app).await;
    wait_done(&app, job).await;
    let mut foreign = app
        .staff_client("b@other.example", Some((other.id, Role::CityAdmin, &[])))
        .await;
    // their own city's URL with our job id: not found
    assert_eq!(download(&mut foreign, "othercity", job).await.0, 404);
    // our city's URL: not a member, not found
    assert_eq!(download(&mut foreign, "demo", job).await.0, 404);
}
