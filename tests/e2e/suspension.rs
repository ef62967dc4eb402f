//! A suspended city (issue 14, acceptance 1 for staff sessions and API keys): the operator
//! suspends it through the admin UI; from the next request on, its staff sessions and API keys are
//! refused on every admin route under `/admin/t/{slug}/` (from `admin_ui::routes()`) and every
//! staff GraphQL field that takes the city (from the schema, `surface::FIELDS`) — with the
//! suspension message and none of the city's data — while the operator still manages it;
//! reactivation restores access at once. The guard (`platform::staff::authz`) decides; the front ends
//! only render its answer.

use admin_ui::Method;
use serde_json::{Value, json};

use crate::support::spawn_app;
use crate::surface::{Kind, SUSPENDED_EN, Surface, Who, api_key, schema_fields};

const CREATE_VACCINE: &str = "mutation($city: String!, $name: String!) { createVaccine(city: $city, input: { name: $name, maker: \"M\", doses: 2, minIntervalDays: 21, boosterIntervalMonths: 6, daysUntilEffective: 7, validityDays: 180 }) { vaccine { id } errors { code } } }";

fn suspended_answer(answer: &Value) -> bool {
    let e = &answer["errors"][0];
    e["extensions"]["code"] == "FORBIDDEN"
        && e["extensions"]["reason"] == "TENANT_SUSPENDED"
        && e["message"] == SUSPENDED_EN
}

#[tokio::test]
async fn a_suspended_city_is_closed_to_its_staff_and_keys_and_open_to_the_operator() {
    let app = spawn_app().await;
    let mut s = Surface::new(&app, "yokohama").await;
    let slug = s.tenant.slug.clone();
    let writer = api_key(&app, &s.tenant, &["config:write", "venues:read"]).await;
    let tenant_id = s.tenant.id.0;
    let vaccines = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM vaccines WHERE tenant_id = $1 AND name LIKE 'Key vaccine%'",
        )
        .bind(tenant_id)
        .fetch_one(&app.owner)
        .await
        .expect("count")
    };

    // while the city is open, the key writes and the admin reads (and the guard caches the status)
    let first = app
        .graphql_with_key(
            &writer,
            CREATE_VACCINE,
            json!({ "city": slug, "name": "Key vaccine 1" }),
        )
        .await;
    assert!(
        first["data"]["createVaccine"]["vaccine"]["id"].is_string(),
        "{first}"
    );
    let venues_page = format!("/admin/t/{slug}/venues");
    assert_eq!(
        s.admin(Who::CityAdmin, Method::Get, &venues_page).await.0,
        200
    );

    // the operator suspends the city through the admin UI
    let status_path = format!("/admin/tenants/{slug}/status");
    let res = s
        .client(Who::Operator)
        .post(&status_path, &[("status", "suspended")])
        .await;
    assert_eq!(res.status(), 303);

    // at once: the key's write is refused and writes nothing
    let refused = app
        .graphql_with_key(
            &writer,
            CREATE_VACCINE,
            json!({ "city": slug, "name": "Key vaccine 2" }),
        )
        .await;
    assert!(suspended_answer(&refused), "{refused}");
    assert!(refused["data"].is_null(), "{refused}");
    assert_eq!(vaccines().await, 1, "the refused write changed nothing");

    // every admin route of the city, for the city admin: 403 with the message, no data
    let routes: Vec<_> = admin_ui::routes()
        .into_iter()
        .filter(|r| r.path.starts_with("/admin/t/{slug}"))
        .collect();
    assert!(routes.len() > 40, "the city's routes: {}", routes.len());
    for route in &routes {
        let (path, _) = s.fill(route.path);
        let (status, _, body) = s.admin(Who::CityAdmin, route.method, &path).await;
        assert_eq!(status, 403, "{} {path}", route.method.as_str());
        assert!(
            body.contains(SUSPENDED_EN),
            "{} {path}: {body}",
            route.method.as_str()
        );
        if let Some(leak) = s.secrets.iter().find(|x| body.contains(x.as_str())) {
            panic!("{} {path} shows {leak:?}", route.method.as_str());
        }
    }
    // in Japanese too
    let ja = app
        .client
        .get(app.url(&venues_page))
        .header("cookie", s.client(Who::CityAdmin).cookie_header())
        .header("accept-language", "ja")
        .send()
        .await
        .expect("GET");
    assert_eq!(ja.status(), 403);
    let body = ja.text().await.expect("body");
    assert!(
        body.contains(platform::staff::authz::SUSPENDED_MESSAGE.0),
        "{body}"
    );

    // every staff GraphQL field that takes the city, for the city admin's session and both keys
    let fields = schema_fields(&app).await;
    let staff_fields: Vec<_> = fields
        .iter()
        .filter(|f| matches!(f.kind, Kind::Staff(_)))
        .collect();
    assert!(staff_fields.len() >= 15, "{}", staff_fields.len());
    for field in &staff_fields {
        let vars = json!({ "slug": slug, "venue": s.venue });
        let session = s.graphql(Who::CityAdmin, field.query, vars.clone()).await;
        assert!(
            suspended_answer(&session),
            "session {}: {session}",
            field.name
        );
        for key in [s.key.clone(), writer.clone()] {
            let answer = app.graphql_with_key(&key, field.query, vars.clone()).await;
            assert!(suspended_answer(&answer), "key {}: {answer}", field.name);
            let data = answer["data"].to_string();
            assert!(
                !s.secrets.iter().any(|x| data.contains(x.as_str())),
                "{}: {data}",
                field.name
            );
        }
    }

    // the operator still sees and manages the city
    for route in routes.iter().filter(|r| r.method == Method::Get) {
        let (path, made_up) = s.fill(route.path);
        let (status, _, _) = s.admin(Who::Operator, Method::Get, &path).await;
        assert!(
            status == 200 || (made_up && status == 404),
            "operator GET {path}: {status}"
        );
    }
    let seen = s
        .graphql(
            Who::Operator,
            "query($slug: String!) { city(city: $slug) { venues { name } } }",
            json!({ "slug": slug }),
        )
        .await;
    assert_eq!(
        seen["data"]["city"]["venues"].as_array().map(Vec::len),
        Some(3),
        "{seen}"
    );
    let page = s
        .client(Who::Operator)
        .get(&format!("/admin/tenants/{slug}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("suspended"), "the operator sees the status");

    // reactivation restores access at once
    let res = s
        .client(Who::Operator)
        .post(&status_path, &[("status", "active")])
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        s.admin(Who::CityAdmin, Method::Get, &venues_page).await.0,
        200
    );
    let again = app
        .graphql_with_key(
            &writer,
            CREATE_VACCINE,
            json!({ "city": slug, "name": "Key vaccine 3" }),
        )
        .await;
    assert!(
        again["data"]["createVaccine"]["vaccine"]["id"].is_string(),
        "{again}"
    );
    assert_eq!(vaccines().await, 2);
}
