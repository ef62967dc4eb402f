//! The authorization matrix.
//!
//! `every_role_meets_every_route_and_field_as_declared` is generated: its rows are every admin
//! route of `admin_ui::routes()` (the table the admin router is built from, each route with the
//! access it needs) and every GraphQL field of the running schema (an entry per field in
//! `surface::FIELDS`; a field without one fails the test naming it); its columns every role, a city
//! admin of another city and an API key; and it runs twice, for the city active and suspended.
//! What is checked: GET routes by request (200, or 403 / 404 / the login page as expected; with a
//! made-up id in the path an allowed GET may answer 404 for the object); POST routes for refusal
//! only — an allowed post is not sent, as succeeding would need a valid form and change the city;
//! GraphQL fields by request, mutations with deliberately invalid input (allowed = VALIDATION).
//! Resident-token fields are listed in `surface::FIELDS` with the reason they are skipped here.
//!
//! The hand-written test below it keeps what the generated one does not: another tenant's ids.

use platform::staff::authz::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{AdminClient, TestApp, spawn_app};
use crate::surface::{EVERYONE, Kind, Surface, Who, schema_fields};

#[tokio::test]
async fn every_role_meets_every_route_and_field_as_declared() {
    let app = spawn_app().await;
    let mut s = Surface::new(&app, "yokohama").await;
    let routes = admin_ui::routes();
    for (i, r) in routes.iter().enumerate() {
        assert!(
            !routes[..i]
                .iter()
                .any(|o| o.method == r.method && o.path == r.path),
            "{} {} is in the route table twice",
            r.method.as_str(),
            r.path
        );
    }
    let fields = schema_fields(&app).await;
    for f in &fields {
        if let Kind::Resident(reason) = f.kind {
            assert!(!reason.is_empty(), "{} is skipped without a reason", f.name);
        }
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for suspended in [false, true] {
        if suspended {
            let path = format!("/admin/tenants/{}/status", s.tenant.slug);
            let res = s
                .client(Who::Operator)
                .post(&path, &[("status", "suspended")])
                .await;
            assert_eq!(res.status(), 303, "the operator suspends the city");
        }
        for route in &routes {
            for who in EVERYONE {
                checked += 1;
                failures.extend(s.check_route(who, route, suspended).await);
            }
        }
        for field in &fields {
            for who in EVERYONE {
                checked += 1;
                failures.extend(s.check_field(who, field, suspended).await);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed ({} routes, {} fields):\n{}",
        failures.len(),
        routes.len(),
        fields.len(),
        failures.join("\n")
    );
}

/// Rows: who; columns below. 2 = 200, 3 = 403, 4 = 404.
const WHO: [&str; 7] = [
    "platform_operator",
    "city_admin",
    "city_staff",
    "venue_staff",
    "hospital_staff",
    "call_center",
    "auditor",
];

async fn venue_ids(app: &TestApp, tenant: &tenants::Tenant) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT id FROM venues WHERE tenant_id = $1 ORDER BY name")
        .bind(tenant.id.0)
        .fetch_all(&app.owner)
        .await
        .expect("venues")
}

async fn clients<'a>(
    app: &'a TestApp,
    a: &tenants::Tenant,
    venue_a: Uuid,
    venue_b: Uuid,
) -> Vec<AdminClient<'a>> {
    let mut out = Vec::new();
    for who in WHO {
        let email = format!("{who}@yokohama.example");
        let role = match who {
            "platform_operator" => None,
            other => Some(Role::parse(other).expect("role")),
        };
        let venues: Vec<Uuid> = match role {
            Some(Role::VenueStaff) => vec![venue_a],
            Some(Role::HospitalStaff) => vec![venue_b],
            _ => vec![],
        };
        out.push(
            app.staff_client(&email, role.map(|r| (a.id, r, venues.as_slice())))
                .await,
        );
    }
    out
}

fn code(v: &Value) -> Option<&str> {
    v["errors"][0]["extensions"]["code"].as_str()
}

#[tokio::test]
async fn every_role_reaches_exactly_the_pages_and_operations_it_is_allowed() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    let b = app.seeded_tenant("kawasaki", "141305").await;
    let va = venue_ids(&app, &a).await;
    let vb = venue_ids(&app, &b).await;
    let (venue_a, venue_b) = (va[0], va[1]);
    let mut people = clients(&app, &a, venue_a, venue_b).await;

    let pages: Vec<(String, [u16; 7])> = vec![
        ("/admin/tenants".into(), [200, 404, 404, 404, 404, 404, 404]),
        (
            "/admin/t/yokohama/staff".into(),
            [200, 200, 403, 403, 403, 403, 200],
        ),
        (
            "/admin/t/yokohama/vaccines".into(),
            [200, 200, 200, 403, 403, 403, 200],
        ),
        (
            "/admin/t/yokohama/venues".into(),
            [200, 200, 200, 403, 403, 200, 200],
        ),
        (
            format!("/admin/t/yokohama/venues/{venue_a}"),
            [200, 200, 200, 200, 404, 200, 200],
        ),
        (
            format!("/admin/t/yokohama/venues/{venue_b}"),
            [200, 200, 200, 404, 200, 200, 200],
        ),
        (
            "/admin/t/yokohama/residents?ticket=1000000001".into(),
            [200, 200, 200, 403, 403, 200, 200],
        ),
        (
            "/admin/t/yokohama/import".into(),
            [200, 200, 200, 403, 403, 403, 403],
        ),
        (
            "/admin/t/yokohama/audit".into(),
            [200, 200, 403, 403, 403, 403, 200],
        ),
        (
            "/admin/t/yokohama/api-keys".into(),
            [200, 200, 403, 403, 403, 403, 200],
        ),
        // another tenant's pages and ids: not found for everyone who does not work there
        (
            "/admin/t/kawasaki/venues".into(),
            [200, 404, 404, 404, 404, 404, 404],
        ),
        (
            format!("/admin/t/yokohama/venues/{}", vb[0]),
            [404, 404, 404, 404, 404, 404, 404],
        ),
    ];
    for (path, expected) in &pages {
        for (i, client) in people.iter_mut().enumerate() {
            let status = client.get(path).await.status().as_u16();
            assert_eq!(status, expected[i], "{} GET {path}", WHO[i]);
        }
    }

    // a write: creating a vaccine (city_admin and the operator only; the auditor is read-only)
    let expected_write = [303, 303, 403, 403, 403, 403, 403];
    for (i, client) in people.iter_mut().enumerate() {
        let name = format!("V-{}", WHO[i]);
        let status = client
            .post(
                "/admin/t/yokohama/vaccines",
                &[
                    ("name", &name),
                    ("maker", "X"),
                    ("doses", "1"),
                    ("min_interval_days", "0"),
                    ("booster_interval_months", "0"),
                    ("days_until_effective", "0"),
                    ("validity_days", "100"),
                ],
            )
            .await
            .status()
            .as_u16();
        assert_eq!(status, expected_write[i], "{} creates a vaccine", WHO[i]);
    }

    // GraphQL with the same sessions: None = data, Some(code) = that error code
    let ops: Vec<(&str, Value, [Option<&str>; 7])> = vec![
        (
            "query { city(city: \"yokohama\") { vaccines { name } } }",
            json!({}),
            [
                None,
                None,
                None,
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                None,
            ],
        ),
        (
            "query($id: UUID!) { city(city: \"yokohama\") { venue(id: $id) { name } venueSlots(venueId: $id, first: 5) { edges { node { capacity } } } } }",
            json!({ "id": venue_a }),
            [None, None, None, None, Some("NOT_FOUND"), None, None],
        ),
        (
            "query { city(city: \"yokohama\") { resident(ticketNo: \"1000000001\") { kanaName } } }",
            json!({}),
            [
                None,
                None,
                None,
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                None,
                None,
            ],
        ),
        (
            "query { city(city: \"yokohama\") { auditEntries(first: 5) { edges { node { action } } } } }",
            json!({}),
            [
                None,
                None,
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                Some("FORBIDDEN"),
                None,
            ],
        ),
        (
            "query { city(city: \"kawasaki\") { venues { name } } }",
            json!({}),
            [
                None,
                Some("NOT_FOUND"),
                Some("NOT_FOUND"),
                Some("NOT_FOUND"),
                Some("NOT_FOUND"),
                Some("NOT_FOUND"),
                Some("NOT_FOUND"),
            ],
        ),
        (
            "query($id: UUID!) { city(city: \"yokohama\") { venue(id: $id) { name } } }",
            json!({ "id": vb[0] }),
            [Some("NOT_FOUND"); 7],
        ),
    ];
    for (query, vars, expected) in &ops {
        for (i, client) in people.iter_mut().enumerate() {
            let answer = client.graphql(query, vars.clone()).await;
            assert_eq!(code(&answer), expected[i], "{} {query}: {answer}", WHO[i]);
            if expected[i].is_none() {
                assert!(
                    answer["data"]["city"].is_object(),
                    "{} {query}: {answer}",
                    WHO[i]
                );
            }
        }
    }
}

#[tokio::test]
async fn an_api_key_reaches_its_scopes_in_its_own_tenant_only_until_revoked() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    app.seeded_tenant("kawasaki", "141305").await;
    let mut admin = app
        .staff_client("admin@yokohama.example", Some((a.id, Role::CityAdmin, &[])))
        .await;
    let page = admin
        .post(
            "/admin/t/yokohama/api-keys",
            &[("name", "portal"), ("scope_venues:read", "1")],
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
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE key_hash = sha256($1::bytea)")
            .bind(key.as_bytes())
            .fetch_one(&app.owner)
            .await
            .expect("hash");
    assert_eq!(stored, 1, "stored as its SHA-256 only");
    assert!(
        !admin
            .get("/admin/t/yokohama/api-keys")
            .await
            .text()
            .await
            .expect("list")
            .contains(&key)
    );

    let venues = app
        .graphql_with_key(
            &key,
            "{ city(city: \"yokohama\") { venues { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        venues["data"]["city"]["venues"].as_array().map(Vec::len),
        Some(3),
        "{venues}"
    );
    let resident = app
        .graphql_with_key(
            &key,
            "{ city(city: \"yokohama\") { resident(ticketNo: \"1000000001\") { kanaName } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&resident), Some("FORBIDDEN"), "{resident}");
    let other = app
        .graphql_with_key(
            &key,
            "{ city(city: \"kawasaki\") { venues { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&other), Some("NOT_FOUND"), "{other}");
    let used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE name = 'portal'")
            .fetch_one(&app.owner)
            .await
            .expect("last use");
    assert!(used.is_some(), "last use is recorded");

    let id: Uuid = sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'portal'")
        .fetch_one(&app.owner)
        .await
        .expect("id");
    assert_eq!(
        admin
            .post(&format!("/admin/t/yokohama/api-keys/{id}/revoke"), &[])
            .await
            .status(),
        303
    );
    let after = app
        .graphql_with_key(
            &key,
            "{ city(city: \"yokohama\") { venues { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        code(&after),
        Some("FORBIDDEN"),
        "a revoked key is refused: {after}"
    );
    let anonymous = app
        .graphql(
            "{ city(city: \"yokohama\") { venues { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&anonymous), Some("FORBIDDEN"));
}

#[tokio::test]
async fn an_integrator_with_config_write_sets_up_a_venue_through_graphql_and_is_audited() {
    let app = spawn_app().await;
    let a = app.seeded_tenant("yokohama", "141003").await;
    app.seeded_tenant("kawasaki", "141305").await;
    let admin = app
        .staff("admin@yokohama.example", Some((a.id, Role::CityAdmin, &[])))
        .await;
    let actor = platform::staff::authz::Actor::staff(admin.id, &admin.email, None);
    let mut keys = Vec::new();
    for (name, scope_name) in [("writer", "config:write"), ("reader", "venues:read")] {
        let mut scope = app
            .authz
            .enter(
                &actor,
                a.id,
                platform::staff::authz::Object::ApiKeys,
                platform::staff::authz::Act::Write,
            )
            .await
            .expect("scope");
        let (_, key) =
            platform::staff::api_keys::create(&mut scope, &app.authz, name, &[scope_name.into()])
                .await
                .expect("key");
        scope.commit().await.expect("commit");
        keys.push(key);
    }
    let (writer, reader) = (&keys[0], &keys[1]);
    let create_vaccine = "mutation($city: String!) { createVaccine(city: $city, input: { name: \"API vaccine\", maker: \"M\", doses: 2, minIntervalDays: 21, boosterIntervalMonths: 6, daysUntilEffective: 7, validityDays: 180 }) { vaccine { id name } errors { code message field } } }";

    let denied = app
        .graphql_with_key(reader, create_vaccine, json!({ "city": "yokohama" }))
        .await;
    assert_eq!(code(&denied), Some("FORBIDDEN"), "{denied}");
    let elsewhere = app
        .graphql_with_key(writer, create_vaccine, json!({ "city": "kawasaki" }))
        .await;
    assert_eq!(code(&elsewhere), Some("NOT_FOUND"), "{elsewhere}");

    let vaccine = app
        .graphql_with_key(writer, create_vaccine, json!({ "city": "yokohama" }))
        .await;
    assert_eq!(
        vaccine["data"]["createVaccine"]["errors"],
        json!([]),
        "{vaccine}"
    );
    assert_eq!(
        vaccine["data"]["createVaccine"]["vaccine"]["name"],
        "API vaccine"
    );
    let vaccine_id = vaccine["data"]["createVaccine"]["vaccine"]["id"]
        .as_str()
        .expect("vaccine id")
        .to_owned();
    let venue = app
        .graphql_with_key(
            writer,
            "mutation($v: UUID!) { createVenue(city: \"yokohama\", input: { name: \"API hall\", kind: MASS, vaccineId: $v }) { venue { id kind } errors { code } } }",
            json!({ "v": vaccine_id }),
        )
        .await;
    assert_eq!(
        venue["data"]["createVenue"]["venue"]["kind"], "MASS",
        "{venue}"
    );
    let venue_id = venue["data"]["createVenue"]["venue"]["id"]
        .as_str()
        .expect("venue id")
        .to_owned();
    let bad = app
        .graphql_with_key(
            writer,
            "mutation($v: UUID!) { createSchedule(city: \"yokohama\", input: { venueId: $v, weekdays: [MONDAY], startTime: \"10:00\", endTime: \"09:00\", slotMinutes: 30, capacity: 5, validFrom: \"2031-03-03\", validUntil: \"2031-03-09\" }) { schedule { id } slotsCreated errors { code field } } }",
            json!({ "v": venue_id }),
        )
        .await;
    // bad input is a user error of the payload: nothing saved
    assert_eq!(code(&bad), None, "{bad}");
    assert_eq!(
        bad["data"]["createSchedule"]["schedule"],
        Value::Null,
        "{bad}"
    );
    assert_eq!(
        bad["data"]["createSchedule"]["errors"][0]["code"], "VALIDATION",
        "{bad}"
    );
    let schedule = app
        .graphql_with_key(
            writer,
            "mutation($v: UUID!) { createSchedule(city: \"yokohama\", input: { venueId: $v, weekdays: [MONDAY, TUESDAY], startTime: \"09:00\", endTime: \"10:00\", slotMinutes: 30, capacity: 5, validFrom: \"2031-03-03\", validUntil: \"2031-03-09\" }) { schedule { weekdays validFrom } slotsCreated errors { code } } }",
            json!({ "v": venue_id }),
        )
        .await;
    assert_eq!(
        schedule["data"]["createSchedule"]["slotsCreated"], 4,
        "{schedule}"
    );
    assert_eq!(
        schedule["data"]["createSchedule"]["schedule"],
        json!({ "weekdays": ["MONDAY", "TUESDAY"], "validFrom": "2031-03-03" }),
        "{schedule}"
    );

    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE tenant_id = $1 AND actor = 'API key writer' ORDER BY at, id",
    )
    .bind(a.id.0)
    .fetch_all(&app.owner)
    .await
    .expect("audit");
    assert_eq!(
        audited,
        ["vaccine.create", "venue.create", "schedule.create"]
    );
}
