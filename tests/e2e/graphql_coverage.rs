//! Issue 17, GraphQL coverage for staff and API keys (docs/api.md): residents, intake and
//! vaccination records, resident imports, exports with a download link for the key.
//!
//! For every new query and mutation: it works with a key holding the scope (the data checked —
//! an import's per-row errors name the line, an export's file is downloaded and read back); a key
//! of the same city without the scope is refused (FORBIDDEN, no data); a key of another city is
//! refused (NOT_FOUND, nothing of the first city in the answer, nothing changed). The residents
//! connection returns each resident exactly once over its pages. The role matrix (every staff
//! role against these fields) is `surface::FIELDS` / `authz_matrix.rs`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, spawn_app};
use crate::surface::api_key;

fn code(answer: &Value) -> Option<&str> {
    answer["errors"][0]["extensions"]["code"].as_str()
}

/// A refused field: the code, and nothing of the city in `data`.
fn assert_refused(who: &str, answer: &Value, expected: &str, container: &str) {
    assert_eq!(code(answer), Some(expected), "{who}: {answer}");
    assert!(
        answer["data"].is_null() || answer["data"][container].is_null(),
        "{who}: no data: {answer}"
    );
}

async fn count(app: &TestApp, sql: &'static str, tenant: &tenants::Tenant) -> i64 {
    sqlx::query_scalar(sql)
        .bind(tenant.id.0)
        .fetch_one(&app.owner)
        .await
        .expect("count")
}

// ---- residents -----------------------------------------------------------------------------

const RESIDENTS: &str = "query($slug: String!, $after: String, $first: Int!, $search: String) { city(city: $slug) { \
    residents(first: $first, after: $after, search: $search) { totalCount edges { cursor node { id ticketNo kanaName } } \
    pageInfo { hasNextPage endCursor } } } }";

#[tokio::test]
async fn graphql_residents_are_paged_each_exactly_once_and_refused_without_scope_or_city() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    sqlx::query(
        "INSERT INTO residents (tenant_id, id, ticket_no, birth_date, kana_name, sex) \
         SELECT $1, gen_random_uuid(), (4000000000 + n)::text, date '1960-01-01' + n, 'ページング', 'unknown' \
         FROM generate_series(1, 450) n",
    )
    .bind(a.id.0)
    .execute(&app.owner)
    .await
    .expect("residents");
    let all: HashSet<Uuid> = sqlx::query_scalar("SELECT id FROM residents WHERE tenant_id = $1")
        .bind(a.id.0)
        .fetch_all(&app.owner)
        .await
        .expect("ids")
        .into_iter()
        .collect();
    assert!(all.len() > 450, "{}", all.len());
    let reader = api_key(&app, &a, &["residents:read"]).await;
    let no_scope = api_key(&app, &a, &["bookings:read", "venues:read"]).await;
    let other_city = api_key(&app, &b, &["residents:read"]).await;

    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    let mut last_ticket = String::new();
    loop {
        let answer = app
            .graphql_with_key(
                &reader,
                RESIDENTS,
                json!({ "slug": "yokohama", "after": after, "first": 200 }),
            )
            .await;
        assert!(answer["errors"].is_null(), "{answer}");
        let conn = &answer["data"]["city"]["residents"];
        if pages == 0 {
            assert_eq!(conn["totalCount"].as_u64(), Some(all.len() as u64));
        }
        for edge in conn["edges"].as_array().expect("edges") {
            let id = Uuid::try_parse(edge["node"]["id"].as_str().expect("id")).expect("uuid");
            *seen.entry(id).or_default() += 1;
            let ticket = edge["node"]["ticketNo"]
                .as_str()
                .expect("ticket")
                .to_owned();
            assert!(ticket > last_ticket, "ticket-number order: {ticket}");
            last_ticket = ticket;
        }
        pages += 1;
        if !conn["pageInfo"]["hasNextPage"].as_bool().expect("bool") {
            break;
        }
        after = Some(
            conn["pageInfo"]["endCursor"]
                .as_str()
                .expect("end")
                .to_owned(),
        );
    }
    assert!(seen.values().all(|n| *n == 1), "each resident once");
    assert_eq!(seen.keys().copied().collect::<HashSet<_>>(), all);
    assert_eq!(pages, all.len().div_ceil(200));
    // each page is a view of personal data: one audit entry per page, by the key
    let audited = count(
        &app,
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'residents.list' AND actor LIKE 'API key %'",
        &a,
    )
    .await;
    assert_eq!(audited, pages as i64);

    // search: digits are a ticket prefix, text part of the (folded) kana name
    let found = app
        .graphql_with_key(
            &reader,
            RESIDENTS,
            json!({ "slug": "yokohama", "first": 200, "search": "400000004" }),
        )
        .await;
    let edges = found["data"]["city"]["residents"]["edges"]
        .as_array()
        .expect("edges");
    assert_eq!(edges.len(), 10, "4000000040..=4000000049: {found}");
    let kana = app
        .graphql_with_key(
            &reader,
            RESIDENTS,
            json!({ "slug": "yokohama", "first": 1, "search": "ぺーじんぐ" }),
        )
        .await;
    assert_eq!(
        kana["data"]["city"]["residents"]["totalCount"].as_i64(),
        Some(450),
        "{kana}"
    );
    // a cursor that is not ours
    let bad = app
        .graphql_with_key(
            &reader,
            RESIDENTS,
            json!({ "slug": "yokohama", "first": 10, "after": "bm90LWEtY3Vyc29y" }),
        )
        .await;
    assert_eq!(code(&bad), Some("VALIDATION"), "{bad}");

    for (who, key, expected) in [
        ("key without residents:read", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(key, RESIDENTS, json!({ "slug": "yokohama", "first": 5 }))
            .await;
        assert_refused(who, &answer, expected, "city");
        assert!(!answer.to_string().contains("4000000001"), "{who}");
    }
}

// ---- intake and vaccination records --------------------------------------------------------

const INTAKE_LIST: &str = "query($slug: String!, $venue: UUID!) { city(city: $slug) { \
    intakeList(venueId: $venue, day: \"2031-03-03\") { bookingId residentId ticketNo dose status lotNumber \
    questionnaire { flagged } sideEffects { kind severity } } } }";

const STEP: &str = "mutation($slug: String!, $venue: UUID!, $booking: UUID!) { intakeStep(city: $slug, \
    input: { venueId: $venue, bookingId: $booking, step: CHECK_IN }) { status errors { code message field } } }";

const VACCINATE: &str = "mutation($slug: String!, $venue: UUID!, $booking: UUID!, $lot: String!) { \
    recordVaccination(city: $slug, input: { venueId: $venue, bookingId: $booking, lotNumber: $lot, doseMl: 0.3, \
    vaccinator: \"Dr. Sato\", vaccinatedAt: \"2031-03-03T01:05:00Z\" }) { \
    vaccination { id bookingId residentId lotNumber doseMl vaccinator vaccinatedAt dose recordedBy } \
    errors { code message field } } }";

const RECORDS: &str = "query($slug: String!, $resident: UUID) { city(city: $slug) { \
    vaccinations(first: 10, residentId: $resident) { totalCount edges { cursor node { id bookingId lotNumber venueName } } \
    pageInfo { hasNextPage } } } }";

async fn visit_status(app: &TestApp, booking: Uuid) -> String {
    sqlx::query_scalar::<_, String>(
        "SELECT COALESCE((SELECT status FROM booking_visits WHERE booking_id = $1), 'booked')",
    )
    .bind(booking)
    .fetch_one(&app.owner)
    .await
    .expect("status")
}

#[tokio::test]
async fn graphql_intake_list_steps_and_vaccination_records_for_keys_with_the_scope_only() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let venue: Uuid = sqlx::query_scalar(
        "SELECT id FROM venues WHERE tenant_id = $1 AND kind = 'mass' ORDER BY name LIMIT 1",
    )
    .bind(a.id.0)
    .fetch_one(&app.owner)
    .await
    .expect("venue");
    // a slot at a fixed time (10:00 in Tokyo on 2031-03-03) and a booking in it
    let slot = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity, booked) \
         VALUES ($1, $2, $3, '2031-03-03T01:00:00Z', '2031-03-03T01:30:00Z', 5, 1)",
    )
    .bind(a.id.0)
    .bind(slot)
    .bind(venue)
    .execute(&app.owner)
    .await
    .expect("slot");
    let (resident, ticket): (Uuid, String) = sqlx::query_as(
        "SELECT id, ticket_no FROM residents r WHERE tenant_id = $1 AND NOT EXISTS \
         (SELECT 1 FROM bookings b WHERE b.tenant_id = r.tenant_id AND b.resident_id = r.id) ORDER BY ticket_no LIMIT 1",
    )
    .bind(a.id.0)
    .fetch_one(&app.owner)
    .await
    .expect("resident");
    let booking = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO bookings (tenant_id, id, resident_id, slot_id, vaccine_id, dose, booked_by, group_id) \
         SELECT $1, $2, $3, $4, vaccine_id, 1, $3, $2 FROM venues WHERE id = $5",
    )
    .bind(a.id.0)
    .bind(booking)
    .bind(resident)
    .bind(slot)
    .bind(venue)
    .execute(&app.owner)
    .await
    .expect("booking");

    let reader = api_key(&app, &a, &["intake:read"]).await;
    let writer = api_key(&app, &a, &["intake:write"]).await;
    let records = api_key(&app, &a, &["records:read"]).await;
    let no_scope = api_key(&app, &a, &["residents:read", "venues:read"]).await;
    let other_city = api_key(&app, &b, &["intake:read", "intake:write", "records:read"]).await;
    let vars = json!({ "slug": "yokohama", "venue": venue, "booking": booking, "lot": "LOT-42" });

    // --- intakeList
    let answer = app
        .graphql_with_key(&reader, INTAKE_LIST, vars.clone())
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    let list = answer["data"]["city"]["intakeList"]
        .as_array()
        .expect("list");
    assert_eq!(list.len(), 1, "{answer}");
    assert_eq!(list[0]["bookingId"], json!(booking));
    assert_eq!(list[0]["ticketNo"], json!(ticket));
    assert_eq!(list[0]["status"], "BOOKED");
    assert_eq!(list[0]["dose"], "FIRST");
    let viewed = count(
        &app,
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'intake.list.view' AND actor LIKE 'API key %'",
        &a,
    )
    .await;
    assert_eq!(viewed, 1, "the view is audited");
    for (who, key, expected) in [
        ("key without intake:read", &no_scope, "FORBIDDEN"),
        ("records-only key", &records, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app.graphql_with_key(key, INTAKE_LIST, vars.clone()).await;
        assert_refused(who, &answer, expected, "city");
        assert!(!answer.to_string().contains(&ticket), "{who}");
    }

    // --- intakeStep and recordVaccination: refused callers change nothing
    for (who, key, expected) in [
        ("read-only key", &reader, "FORBIDDEN"),
        ("key without intake scopes", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        for op in [STEP, VACCINATE] {
            let answer = app.graphql_with_key(key, op, vars.clone()).await;
            assert_eq!(code(&answer), Some(expected), "{who}: {answer}");
            assert!(answer["data"].is_null(), "{who}: {answer}");
        }
    }
    // another city's key naming its own city with this city's ids: not found, nothing changed
    let cross = app
        .graphql_with_key(
            &other_city,
            STEP,
            json!({ "slug": "kawasaki", "venue": venue, "booking": booking }),
        )
        .await;
    assert_eq!(
        cross["data"]["intakeStep"]["errors"][0]["code"], "NOT_FOUND",
        "{cross}"
    );
    assert_eq!(visit_status(&app, booking).await, "booked");
    // intake:write opens intake, not the venue's configuration
    let capacity = app
        .graphql_with_key(
            &writer,
            "mutation($slug: String!, $venue: UUID!, $slot: UUID!) { setSlotCapacity(city: $slug, venueId: $venue, slotId: $slot, capacity: 9) { slot { capacity } errors { code } } }",
            json!({ "slug": "yokohama", "venue": venue, "slot": slot }),
        )
        .await;
    assert!(
        matches!(code(&capacity), Some("FORBIDDEN" | "NOT_FOUND")),
        "{capacity}"
    );

    // vaccinating before check-in is a conflict the caller can act on
    let early = app.graphql_with_key(&writer, VACCINATE, vars.clone()).await;
    let err = &early["data"]["recordVaccination"]["errors"][0];
    assert_eq!(err["code"], "CONFLICT", "{early}");
    assert_eq!(err["field"], "bookingId");
    assert!(
        err["message"].as_str().unwrap_or("").contains("BOOKED"),
        "{early}"
    );
    let step = app.graphql_with_key(&writer, STEP, vars.clone()).await;
    assert_eq!(step["data"]["intakeStep"]["status"], "CHECKED_IN", "{step}");
    assert_eq!(step["data"]["intakeStep"]["errors"], json!([]));
    // a second check-in: CONFLICT, nothing changed
    let again = app.graphql_with_key(&writer, STEP, vars.clone()).await;
    assert_eq!(
        again["data"]["intakeStep"]["errors"][0]["code"], "CONFLICT",
        "{again}"
    );
    // a bad lot number: VALIDATION naming the field
    let bad = app
        .graphql_with_key(
            &writer,
            VACCINATE,
            json!({ "slug": "yokohama", "venue": venue, "booking": booking, "lot": "" }),
        )
        .await;
    let err = &bad["data"]["recordVaccination"]["errors"][0];
    assert_eq!(
        (err["code"].as_str(), err["field"].as_str()),
        (Some("VALIDATION"), Some("lotNumber")),
        "{bad}"
    );
    assert_eq!(visit_status(&app, booking).await, "checked_in");
    // an unknown booking: NOT_FOUND on bookingId
    let unknown = app
        .graphql_with_key(
            &writer,
            STEP,
            json!({ "slug": "yokohama", "venue": venue, "booking": Uuid::now_v7() }),
        )
        .await;
    assert_eq!(
        unknown["data"]["intakeStep"]["errors"][0]["code"], "NOT_FOUND",
        "{unknown}"
    );

    let done = app.graphql_with_key(&writer, VACCINATE, vars.clone()).await;
    let v = &done["data"]["recordVaccination"]["vaccination"];
    assert_eq!(
        done["data"]["recordVaccination"]["errors"],
        json!([]),
        "{done}"
    );
    assert_eq!(v["bookingId"], json!(booking));
    assert_eq!(v["residentId"], json!(resident));
    assert_eq!(v["lotNumber"], "LOT-42");
    assert_eq!(v["doseMl"], "0.30");
    assert_eq!(v["dose"], "FIRST");
    assert_eq!(v["vaccinatedAt"], "2031-03-03T01:05:00+00:00");
    assert!(
        v["recordedBy"]
            .as_str()
            .unwrap_or("")
            .starts_with("API key"),
        "{done}"
    );
    let record = v["id"].as_str().expect("record id").to_owned();
    let audited = count(
        &app,
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action IN ('intake.checked_in', 'intake.vaccinated') AND actor LIKE 'API key %'",
        &a,
    )
    .await;
    assert_eq!(audited, 2, "each step audited with the key");
    let after = app
        .graphql_with_key(&reader, INTAKE_LIST, vars.clone())
        .await;
    assert_eq!(
        after["data"]["city"]["intakeList"][0]["status"], "VACCINATED",
        "{after}"
    );
    assert_eq!(
        after["data"]["city"]["intakeList"][0]["lotNumber"],
        "LOT-42"
    );

    // --- vaccinations
    let page = app
        .graphql_with_key(
            &records,
            RECORDS,
            json!({ "slug": "yokohama", "resident": resident }),
        )
        .await;
    assert!(page["errors"].is_null(), "{page}");
    let conn = &page["data"]["city"]["vaccinations"];
    assert_eq!(conn["totalCount"], 1, "{page}");
    assert_eq!(conn["edges"][0]["node"]["id"], json!(record));
    assert_eq!(conn["edges"][0]["node"]["lotNumber"], "LOT-42");
    assert_eq!(conn["pageInfo"]["hasNextPage"], false);
    let listed = count(
        &app,
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'vaccinations.list'",
        &a,
    )
    .await;
    assert_eq!(listed, 1);
    for (who, key, expected) in [
        ("intake-only key", &reader, "FORBIDDEN"),
        ("key without records:read", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(
                key,
                RECORDS,
                json!({ "slug": "yokohama", "resident": resident }),
            )
            .await;
        assert_refused(who, &answer, expected, "city");
        assert!(!answer.to_string().contains("LOT-42"), "{who}");
    }
    // the other city's key sees its own (empty) records, never this one
    let theirs = app
        .graphql_with_key(
            &other_city,
            RECORDS,
            json!({ "slug": "kawasaki", "resident": resident }),
        )
        .await;
    assert_eq!(
        theirs["data"]["city"]["vaccinations"]["totalCount"], 0,
        "{theirs}"
    );
}

// ---- imports ---------------------------------------------------------------------------------

const IMPORT: &str = "mutation($slug: String!, $csv: String!, $valid: Boolean!) { startResidentImport(city: $slug, \
    input: { csv: $csv, importValidRows: $valid, source: \"register-2031-03.csv\" }) { \
    residentImport { id status progress rows rowsDone inserted updated unchanged skippedInvalid source createdBy \
      errors(first: 10) { totalCount edges { cursor node { line field message } } pageInfo { hasNextPage } } } \
    errors { code message field } } }";

const IMPORT_READ: &str = "query($slug: String!, $id: UUID!) { city(city: $slug) { residentImport(id: $id) { \
    id status rows inserted errors(first: 1) { totalCount edges { node { line field } } pageInfo { hasNextPage endCursor } } } } }";

const CSV: &str = "ticket_no,birth_date,kana_name,sex\n\
    5000000001,1950-04-01,インポート イチ,female\n\
    5000000002,1950-04-02,インポート ニ,male\n\
    5000000003,1950-13-01,インポート サン,male\n";

#[tokio::test]
async fn graphql_resident_imports_report_rows_by_line_and_refuse_without_scope_or_city() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let importer = api_key(&app, &a, &["imports:write"]).await;
    let no_scope = api_key(&app, &a, &["residents:read", "exports:write"]).await;
    let other_city = api_key(&app, &b, &["imports:write"]).await;
    let residents = "SELECT count(*) FROM residents WHERE tenant_id = $1";
    let imports = "SELECT count(*) FROM resident_imports WHERE tenant_id = $1";
    let before = count(&app, residents, &a).await;

    for (who, key, expected) in [
        ("key without imports:write", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(
                key,
                IMPORT,
                json!({ "slug": "yokohama", "csv": CSV, "valid": true }),
            )
            .await;
        assert_eq!(code(&answer), Some(expected), "{who}: {answer}");
        assert!(answer["data"].is_null(), "{who}: {answer}");
    }
    assert_eq!(count(&app, residents, &a).await, before, "nothing imported");
    assert_eq!(count(&app, imports, &a).await, 0);

    // one invalid row: rejected, nothing written, the row named by its line and column
    let rejected = app
        .graphql_with_key(
            &importer,
            IMPORT,
            json!({ "slug": "yokohama", "csv": CSV, "valid": false }),
        )
        .await;
    let run = &rejected["data"]["startResidentImport"]["residentImport"];
    assert_eq!(
        rejected["data"]["startResidentImport"]["errors"],
        json!([]),
        "{rejected}"
    );
    assert_eq!(run["status"], "REJECTED", "{rejected}");
    assert_eq!(
        (run["rows"].as_i64(), run["rowsDone"].as_i64()),
        (Some(3), Some(0))
    );
    assert_eq!(run["errors"]["totalCount"], 1);
    let e = &run["errors"]["edges"][0]["node"];
    assert_eq!(
        (e["line"].as_i64(), e["field"].as_str()),
        (Some(4), Some("birth_date")),
        "{rejected}"
    );
    assert!(!e["message"].as_str().unwrap_or("").is_empty());
    assert_eq!(count(&app, residents, &a).await, before, "nothing imported");

    // with importValidRows: the valid rows are written, the invalid one reported
    let completed = app
        .graphql_with_key(
            &importer,
            IMPORT,
            json!({ "slug": "yokohama", "csv": CSV, "valid": true }),
        )
        .await;
    let run = &completed["data"]["startResidentImport"]["residentImport"];
    assert_eq!(run["status"], "COMPLETED", "{completed}");
    assert_eq!(run["progress"], 100);
    assert_eq!(
        (run["inserted"].as_i64(), run["skippedInvalid"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(run["source"], "register-2031-03.csv");
    assert!(
        run["createdBy"]
            .as_str()
            .unwrap_or("")
            .starts_with("API key")
    );
    assert_eq!(run["errors"]["edges"][0]["node"]["line"], 4);
    assert_eq!(count(&app, residents, &a).await, before + 2);
    let id = run["id"].as_str().expect("id").to_owned();

    // read back by id, errors paged
    let read = app
        .graphql_with_key(
            &importer,
            IMPORT_READ,
            json!({ "slug": "yokohama", "id": id }),
        )
        .await;
    let got = &read["data"]["city"]["residentImport"];
    assert_eq!(got["status"], "COMPLETED", "{read}");
    assert_eq!(got["inserted"], 2);
    assert_eq!(got["errors"]["edges"][0]["node"]["line"], 4);
    assert_eq!(got["errors"]["pageInfo"]["hasNextPage"], false);
    for (who, key, expected) in [
        ("key without imports:write", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(key, IMPORT_READ, json!({ "slug": "yokohama", "id": id }))
            .await;
        assert_refused(who, &answer, expected, "city");
    }
    // another city's key asking its own city for this city's import: there is none
    let theirs = app
        .graphql_with_key(
            &other_city,
            IMPORT_READ,
            json!({ "slug": "kawasaki", "id": id }),
        )
        .await;
    assert!(theirs["errors"].is_null(), "{theirs}");
    assert!(
        theirs["data"]["city"]["residentImport"].is_null(),
        "{theirs}"
    );

    // a file we cannot read: a user error on `csv`, nothing recorded
    let runs = count(&app, imports, &a).await;
    let unreadable = app
        .graphql_with_key(
            &importer,
            IMPORT,
            json!({ "slug": "yokohama", "csv": "ticket_no,birth_date\n1,2\n", "valid": false }),
        )
        .await;
    let err = &unreadable["data"]["startResidentImport"]["errors"][0];
    assert_eq!(
        (err["code"].as_str(), err["field"].as_str()),
        (Some("VALIDATION"), Some("csv")),
        "{unreadable}"
    );
    assert!(
        err["message"].as_str().unwrap_or("").contains("kana_name"),
        "{unreadable}"
    );
    assert!(unreadable["data"]["startResidentImport"]["residentImport"].is_null());
    assert_eq!(count(&app, imports, &a).await, runs);
}

// ---- exports ---------------------------------------------------------------------------------

const START_EXPORT: &str = "mutation($slug: String!, $kind: ExportKindValue!, $format: ExportFileFormat!) { \
    startExport(city: $slug, input: { kind: $kind, format: $format }) { \
    export { id kind format status downloadUrl } errors { code message field } } }";

const EXPORT: &str = "query($slug: String!, $id: UUID!) { city(city: $slug) { export(id: $id) { \
    id kind status progress rowsTotal rowsDone fileName byteSize createdBy expiresAt downloadUrl } } }";

const EXPORTS: &str = "query($slug: String!, $after: String) { city(city: $slug) { exports(first: 1, after: $after) { \
    totalCount edges { cursor node { id kind } } pageInfo { hasNextPage endCursor } } } }";

async fn wait_done(app: &TestApp, job: &str) {
    let job = Uuid::try_parse(job).expect("job id");
    let worker =
        platform::exports::ExportWorker::new(app.pool.clone(), chrono::Duration::hours(24));
    for _ in 0..600 {
        worker.run_once().await.expect("worker pass");
        let state: String = sqlx::query_scalar("SELECT state FROM export_jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&app.owner)
            .await
            .expect("job");
        if state == "done" || state == "failed" {
            assert_eq!(state, "done");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("export {job} did not finish");
}

#[tokio::test]
async fn graphql_exports_start_progress_and_download_with_the_key_and_refuse_others() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let writer = api_key(&app, &a, &["exports:write"]).await;
    let reader = api_key(&app, &a, &["exports:read"]).await;
    let no_scope = api_key(&app, &a, &["residents:read", "imports:write"]).await;
    let other_city = api_key(&app, &b, &["exports:read", "exports:write"]).await;
    let jobs = "SELECT count(*) FROM export_jobs WHERE tenant_id = $1";
    let vars = json!({ "slug": "yokohama", "kind": "UNBOOKED_RESIDENTS", "format": "CSV_UTF8" });

    for (who, key, expected) in [
        ("read-only key", &reader, "FORBIDDEN"),
        ("key without exports scopes", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app.graphql_with_key(key, START_EXPORT, vars.clone()).await;
        assert_eq!(code(&answer), Some(expected), "{who}: {answer}");
        assert!(answer["data"].is_null(), "{who}: {answer}");
    }
    assert_eq!(count(&app, jobs, &a).await, 0, "nothing queued");
    // a booked list needs its venue: a user error naming the field, nothing queued
    let missing = app
        .graphql_with_key(
            &writer,
            START_EXPORT,
            json!({ "slug": "yokohama", "kind": "BOOKED_LIST", "format": "XLSX" }),
        )
        .await;
    let err = &missing["data"]["startExport"]["errors"][0];
    assert_eq!(
        (err["code"].as_str(), err["field"].as_str()),
        (Some("VALIDATION"), Some("venueId")),
        "{missing}"
    );
    assert_eq!(count(&app, jobs, &a).await, 0);

    let started = app
        .graphql_with_key(&writer, START_EXPORT, vars.clone())
        .await;
    let export = &started["data"]["startExport"]["export"];
    assert_eq!(
        started["data"]["startExport"]["errors"],
        json!([]),
        "{started}"
    );
    assert_eq!(export["status"], "QUEUED");
    assert_eq!(export["kind"], "UNBOOKED_RESIDENTS");
    assert!(export["downloadUrl"].is_null());
    let id = export["id"].as_str().expect("id").to_owned();
    wait_done(&app, &id).await;

    let read = app
        .graphql_with_key(&reader, EXPORT, json!({ "slug": "yokohama", "id": id }))
        .await;
    let job = &read["data"]["city"]["export"];
    assert_eq!(job["status"], "DONE", "{read}");
    assert_eq!(job["progress"], 100);
    assert!(
        job["createdBy"]
            .as_str()
            .unwrap_or("")
            .starts_with("API key")
    );
    assert!(!job["expiresAt"].is_null());
    let url = job["downloadUrl"].as_str().expect("downloadUrl").to_owned();
    assert_eq!(url, format!("/graphql/exports/yokohama/{id}"));

    // the link takes the key; the file is read back and matches the database
    let res = app
        .client
        .get(app.url(&url))
        .bearer_auth(&reader)
        .send()
        .await
        .expect("download");
    assert_eq!(res.status().as_u16(), 200);
    assert!(
        res.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap_or("")
            .starts_with("text/csv"),
    );
    let bytes = res.bytes().await.expect("body").to_vec();
    let text = String::from_utf8(bytes).expect("utf-8");
    let text = text.strip_prefix('\u{feff}').expect("a BOM for Excel");
    let tickets: Vec<String> = sqlx::query_scalar(
        "SELECT ticket_no FROM residents r WHERE tenant_id = $1 AND NOT EXISTS (SELECT 1 FROM bookings b \
         WHERE b.tenant_id = r.tenant_id AND b.resident_id = r.id AND b.status = 'booked') ORDER BY ticket_no",
    )
    .bind(a.id.0)
    .fetch_all(&app.owner)
    .await
    .expect("unbooked");
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(lines.len(), tickets.len(), "one line per unbooked resident");
    for (line, ticket) in lines.iter().zip(&tickets) {
        assert!(line.starts_with(ticket.as_str()), "{line} / {ticket}");
    }
    assert_eq!(job["rowsDone"].as_i64(), Some(tickets.len() as i64));
    let downloads = count(
        &app,
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'export.download' AND actor LIKE 'API key %'",
        &a,
    )
    .await;
    assert_eq!(downloads, 1, "the download is audited");
    // the link refuses everyone else, with nothing of the file
    for (who, key, status) in [
        ("no key", None, 401),
        ("key without exports:read", Some(&no_scope), 403),
        ("key of another city", Some(&other_city), 404),
    ] {
        let mut req = app.client.get(app.url(&url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let res = req.send().await.expect("GET");
        assert_eq!(res.status().as_u16(), status, "{who}");
        let body = res.text().await.unwrap_or_default();
        assert!(!body.contains(&tickets[0]), "{who}");
    }
    let theirs = app
        .client
        .get(app.url(&format!("/graphql/exports/kawasaki/{id}")))
        .bearer_auth(&other_city)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        theirs.status().as_u16(),
        404,
        "another city's id is not found"
    );
    assert_eq!(
        downloads,
        count(
            &app,
            "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'export.download'",
            &a,
        )
        .await
    );

    // export(id) and exports refused without the scope or for another city
    for (who, key, expected) in [
        ("key without exports:read", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(key, EXPORT, json!({ "slug": "yokohama", "id": id }))
            .await;
        assert_refused(who, &answer, expected, "city");
        let answer = app
            .graphql_with_key(key, EXPORTS, json!({ "slug": "yokohama" }))
            .await;
        assert_refused(who, &answer, expected, "city");
        assert!(!answer.to_string().contains(&id), "{who}");
    }

    // the list, newest first, one per page
    let second = app
        .graphql_with_key(
            &writer,
            START_EXPORT,
            json!({ "slug": "yokohama", "kind": "BOOKING_LEDGER", "format": "XLSX" }),
        )
        .await;
    let second_id = second["data"]["startExport"]["export"]["id"].clone();
    let page1 = app
        .graphql_with_key(&reader, EXPORTS, json!({ "slug": "yokohama" }))
        .await;
    let conn = &page1["data"]["city"]["exports"];
    assert_eq!(conn["totalCount"], 2, "{page1}");
    assert_eq!(conn["edges"][0]["node"]["id"], second_id);
    assert_eq!(conn["pageInfo"]["hasNextPage"], true);
    let page2 = app
        .graphql_with_key(
            &reader,
            EXPORTS,
            json!({ "slug": "yokohama", "after": conn["pageInfo"]["endCursor"] }),
        )
        .await;
    let conn = &page2["data"]["city"]["exports"];
    assert_eq!(conn["edges"][0]["node"]["id"], json!(id), "{page2}");
    assert_eq!(conn["pageInfo"]["hasNextPage"], false);
}

// ---- webhook subscriptions -------------------------------------------------------------------

const CREATE_HOOK: &str = "mutation($slug: String!, $url: String!) { createWebhookSubscription(city: $slug, \
    input: { url: $url, description: \"CRM\", events: [BOOKING_CREATED, VACCINATION_RECORDED] }) { \
    subscription { id url events active secretHint } secret errors { code message field } } }";

const HOOKS: &str = "query($slug: String!) { city(city: $slug) { webhookSubscriptions { id url events active secretHint } } }";

const PAUSE_HOOK: &str = "mutation($slug: String!, $id: UUID!) { setWebhookSubscriptionActive(city: $slug, \
    input: { id: $id, active: false }) { subscription { id active } errors { code field } } }";

const DELETE_HOOK: &str = "mutation($slug: String!, $id: UUID!) { deleteWebhookSubscription(city: $slug, \
    input: { id: $id }) { deletedId errors { code field } } }";

#[tokio::test]
async fn graphql_webhook_subscriptions_show_the_secret_once_and_refuse_without_scope_or_city() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let writer = api_key(&app, &a, &["webhooks:write"]).await;
    let reader = api_key(&app, &a, &["webhooks:read"]).await;
    let no_scope = api_key(&app, &a, &["exports:write", "bookings:read"]).await;
    let other_city = api_key(&app, &b, &["webhooks:read", "webhooks:write"]).await;
    let subs = "SELECT count(*) FROM webhook_subscriptions WHERE tenant_id = $1";
    let url = "https://hooks.example.org/yoyaku?token=abc";
    let vars = json!({ "slug": "yokohama", "url": url });

    for (who, key, expected) in [
        ("read-only key", &reader, "FORBIDDEN"),
        ("key without webhook scopes", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app.graphql_with_key(key, CREATE_HOOK, vars.clone()).await;
        assert_eq!(code(&answer), Some(expected), "{who}: {answer}");
        assert!(answer["data"].is_null(), "{who}: {answer}");
    }
    assert_eq!(count(&app, subs, &a).await, 0, "nothing subscribed");
    // an endpoint that is not https: a user error on `url`, nothing subscribed
    let bad = app
        .graphql_with_key(
            &writer,
            CREATE_HOOK,
            json!({ "slug": "yokohama", "url": "ftp://example.org/x" }),
        )
        .await;
    let err = &bad["data"]["createWebhookSubscription"]["errors"][0];
    assert_eq!(
        (err["code"].as_str(), err["field"].as_str()),
        (Some("VALIDATION"), Some("url")),
        "{bad}"
    );
    assert!(bad["data"]["createWebhookSubscription"]["secret"].is_null());
    assert_eq!(count(&app, subs, &a).await, 0);

    let made = app
        .graphql_with_key(&writer, CREATE_HOOK, vars.clone())
        .await;
    let payload = &made["data"]["createWebhookSubscription"];
    assert_eq!(payload["errors"], json!([]), "{made}");
    let secret = payload["secret"]
        .as_str()
        .expect("secret shown once")
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let sub = &payload["subscription"];
    assert_eq!(
        sub["events"],
        json!(["BOOKING_CREATED", "VACCINATION_RECORDED"])
    );
    assert_eq!(sub["active"], true);
    let id = sub["id"].as_str().expect("id").to_owned();
    let audited = count(
        &app,
        "SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND action = 'webhook.create' AND actor LIKE 'API key %'",
        &a,
    )
    .await;
    assert_eq!(audited, 1);

    // the list shows the hint, never the secret
    let list = app
        .graphql_with_key(&reader, HOOKS, json!({ "slug": "yokohama" }))
        .await;
    let hooks = list["data"]["city"]["webhookSubscriptions"]
        .as_array()
        .expect("list");
    assert_eq!(hooks.len(), 1, "{list}");
    assert_eq!(hooks[0]["url"], url);
    assert!(
        hooks[0]["secretHint"]
            .as_str()
            .is_some_and(|h| secret.ends_with(&h[h.len() - 4..]))
    );
    assert!(!list.to_string().contains(&secret));
    for (who, key, expected) in [
        ("key without webhook scopes", &no_scope, "FORBIDDEN"),
        ("key of another city", &other_city, "NOT_FOUND"),
    ] {
        let answer = app
            .graphql_with_key(key, HOOKS, json!({ "slug": "yokohama" }))
            .await;
        assert_refused(who, &answer, expected, "city");
        assert!(!answer.to_string().contains("hooks.example.org"), "{who}");
    }

    // pause and delete: refused callers change nothing; another city's key with its own city
    // does not find this city's subscription
    for op in [PAUSE_HOOK, DELETE_HOOK] {
        for (who, key, expected) in [
            ("read-only key", &reader, "FORBIDDEN"),
            ("key of another city", &other_city, "NOT_FOUND"),
        ] {
            let answer = app
                .graphql_with_key(key, op, json!({ "slug": "yokohama", "id": id }))
                .await;
            assert_eq!(code(&answer), Some(expected), "{who}: {answer}");
            assert!(answer["data"].is_null(), "{who}: {answer}");
        }
        let cross = app
            .graphql_with_key(&other_city, op, json!({ "slug": "kawasaki", "id": id }))
            .await;
        let field = if op == PAUSE_HOOK {
            "setWebhookSubscriptionActive"
        } else {
            "deleteWebhookSubscription"
        };
        assert_eq!(
            cross["data"][field]["errors"][0]["code"], "NOT_FOUND",
            "{cross}"
        );
    }
    let active: bool = sqlx::query_scalar("SELECT active FROM webhook_subscriptions WHERE id = $1")
        .bind(Uuid::try_parse(&id).expect("uuid"))
        .fetch_one(&app.owner)
        .await
        .expect("active");
    assert!(active, "not paused by refused callers");

    let paused = app
        .graphql_with_key(&writer, PAUSE_HOOK, json!({ "slug": "yokohama", "id": id }))
        .await;
    assert_eq!(
        paused["data"]["setWebhookSubscriptionActive"]["subscription"]["active"], false,
        "{paused}"
    );
    let deleted = app
        .graphql_with_key(
            &writer,
            DELETE_HOOK,
            json!({ "slug": "yokohama", "id": id }),
        )
        .await;
    assert_eq!(
        deleted["data"]["deleteWebhookSubscription"]["deletedId"],
        json!(id),
        "{deleted}"
    );
    assert_eq!(count(&app, subs, &a).await, 0);
    let again = app
        .graphql_with_key(
            &writer,
            DELETE_HOOK,
            json!({ "slug": "yokohama", "id": id }),
        )
        .await;
    assert_eq!(
        again["data"]["deleteWebhookSubscription"]["errors"][0]["code"], "NOT_FOUND",
        "{again}"
    );
}
