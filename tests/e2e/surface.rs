//! The surface the authorization tests walk, and who may use each part of it:
//! * every admin route, from `admin_ui::routes()` — the table the admin router is built from, where
//!   each route declares the access it needs ([`admin_ui::Access`]);
//! * every GraphQL field, from the running schema (introspection), each with an entry in
//!   [`FIELDS`]; a field without an entry (or an entry without a field) fails the test naming it.
//!
//! Expectations come from [`role_allows`], the role policy as docs/architecture.md states it,
//! written here independently of the rules the migrations seed.

use admin_ui::{Access, Method, RouteSpec};
use platform::staff::authz::{Act, Object, Role};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{AdminClient, TestApp};

/// Who asks. Staff sessions by role, a city admin of another city, and an integrator's API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Operator,
    CityAdmin,
    CityStaff,
    /// Assigned to the city's first venue (the one the routes name).
    VenueStaff,
    /// Assigned to the city's second venue.
    HospitalStaff,
    CallCenter,
    Auditor,
    /// A city admin of another city: holds no role here.
    Stranger,
    /// An API key of the city with [`KEY_SCOPES`].
    ApiKey,
}

pub const EVERYONE: [Who; 9] = [
    Who::Operator,
    Who::CityAdmin,
    Who::CityStaff,
    Who::VenueStaff,
    Who::HospitalStaff,
    Who::CallCenter,
    Who::Auditor,
    Who::Stranger,
    Who::ApiKey,
];

/// The scopes of the matrix's API key.
pub const KEY_SCOPES: [&str; 3] = ["vaccines:read", "venues:read", "statistics:read"];

/// What a suspended city's staff and keys are told (English; the clients ask for English).
pub const SUSPENDED_EN: &str = "This municipality is suspended; contact the platform operator.";

/// The role policy (docs/architecture.md, Authorization). `own_venue`: the venue in question is
/// the one assigned to venue / hospital staff.
pub fn role_allows(who: Who, object: Object, act: Act, own_venue: bool) -> bool {
    use Act::{Read, Write};
    use Object as O;
    match who {
        Who::Operator | Who::CityAdmin => true,
        Who::CityStaff => matches!(
            (object, act),
            (
                O::Vaccines
                    | O::Venues
                    | O::Residents
                    | O::Statistics
                    | O::DeliveryLog
                    | O::Records,
                Read
            ) | (
                O::Venue(_) | O::Intake | O::CallCenter | O::Exports | O::Bookings,
                _
            ) | (O::Imports, Write)
        ),
        Who::VenueStaff | Who::HospitalStaff => match object {
            O::Intake => true,
            O::Venue(_) => own_venue,
            _ => false,
        },
        Who::CallCenter => matches!(
            (object, act),
            (O::Venues | O::Venue(_) | O::Residents, Read) | (O::CallCenter | O::Bookings, _)
        ),
        Who::Auditor => act == Read,
        Who::Stranger => false,
        Who::ApiKey => matches!(
            (object, act),
            (O::Vaccines | O::Venues | O::Venue(_) | O::Statistics, Read)
        ),
    }
}

/// What should happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    /// 403 / FORBIDDEN: a member whose role is too small.
    Forbidden,
    /// 404 / NOT_FOUND: not a member, or a venue outside the assignment.
    NotFound,
    /// 403 / FORBIDDEN + TENANT_SUSPENDED with the suspension message, no data.
    Suspended,
    /// The admin UI sends whoever has no session to the login page (API keys are for GraphQL).
    Login,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Admin,
    Graphql,
}

/// The expected outcome of `who` using something that needs `access` in the city (`suspended`:
/// the city is suspended).
pub fn expected(who: Who, access: Access, suspended: bool, channel: Channel) -> Outcome {
    let venue = |act: Act| {
        let own = who == Who::VenueStaff;
        role_allows(who, Object::Venue(Uuid::nil()), act, own)
    };
    let city_level = !matches!(access, Access::Public | Access::Session | Access::Operator);
    match (channel, who) {
        (_, _) if access == Access::Public => return Outcome::Allowed,
        (Channel::Admin, Who::ApiKey) => return Outcome::Login,
        // a suspended city's key is refused when it is authenticated, whatever it asks
        (Channel::Graphql, Who::ApiKey) if suspended => return Outcome::Suspended,
        _ => {}
    }
    if !city_level {
        return match access {
            Access::Operator if who != Who::Operator => Outcome::NotFound,
            _ => Outcome::Allowed,
        };
    }
    if who == Who::Stranger {
        return Outcome::NotFound;
    }
    if suspended && who != Who::Operator {
        return Outcome::Suspended;
    }
    let allow = |o: Object, a: Act| role_allows(who, o, a, false);
    let yes = |b: bool, no: Outcome| if b { Outcome::Allowed } else { no };
    match access {
        Access::Member => Outcome::Allowed,
        Access::City(o, a) => yes(allow(o, a), Outcome::Forbidden),
        Access::CityEither((o1, a1), (o2, a2)) => {
            yes(allow(o1, a1) || allow(o2, a2), Outcome::Forbidden)
        }
        Access::Venue(a) => yes(venue(a), Outcome::NotFound),
        Access::Intake(a) => {
            if !allow(Object::Intake, a) {
                Outcome::Forbidden
            } else {
                yes(venue(a), Outcome::NotFound)
            }
        }
        Access::Public | Access::Session | Access::Operator => Outcome::Allowed,
    }
}

/// The city under test and the people who use it.
pub struct Surface<'a> {
    pub app: &'a TestApp,
    pub tenant: tenants::Tenant,
    /// Assigned to venue staff; the routes and fields name this one.
    pub venue: Uuid,
    pub resident: Uuid,
    pub clients: Vec<(Who, AdminClient<'a>)>,
    pub key: String,
    /// Strings of the city's own data that a refusal must not show.
    pub secrets: Vec<String>,
}

impl<'a> Surface<'a> {
    /// Seeds `slug` (and "other-city" for the stranger), one session per role and an API key.
    pub async fn new(app: &'a TestApp, slug: &str) -> Self {
        let tenant = app.seeded_tenant(slug, "141003").await;
        let other = app.seeded_tenant("other-city", "141305").await;
        let venues: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM venues WHERE tenant_id = $1 ORDER BY name")
                .bind(tenant.id.0)
                .fetch_all(&app.owner)
                .await
                .expect("venues");
        let resident: Uuid = sqlx::query_scalar(
            "SELECT id FROM residents WHERE tenant_id = $1 ORDER BY ticket_no LIMIT 1",
        )
        .bind(tenant.id.0)
        .fetch_one(&app.owner)
        .await
        .expect("a resident");
        let mut secrets: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM venues WHERE tenant_id = $1 UNION ALL \
             SELECT name FROM vaccines WHERE tenant_id = $1 UNION ALL \
             SELECT kana_name FROM residents WHERE tenant_id = $1",
        )
        .bind(tenant.id.0)
        .fetch_all(&app.owner)
        .await
        .expect("the city's data");
        secrets.push(tenant.name.clone());
        let mut clients = Vec::new();
        for who in EVERYONE {
            let email = format!("{who:?}@{slug}.example").to_lowercase();
            let grant = match who {
                Who::Operator => None,
                Who::CityAdmin => Some((tenant.id, Role::CityAdmin, vec![])),
                Who::CityStaff => Some((tenant.id, Role::CityStaff, vec![])),
                Who::VenueStaff => Some((tenant.id, Role::VenueStaff, vec![venues[0]])),
                Who::HospitalStaff => Some((tenant.id, Role::HospitalStaff, vec![venues[1]])),
                Who::CallCenter => Some((tenant.id, Role::CallCenter, vec![])),
                Who::Auditor => Some((tenant.id, Role::Auditor, vec![])),
                Who::Stranger => Some((other.id, Role::CityAdmin, vec![])),
                Who::ApiKey => continue,
            };
            let client = app
                .staff_client(
                    &email,
                    grant.as_ref().map(|(t, r, v)| (*t, *r, v.as_slice())),
                )
                .await;
            clients.push((who, client));
        }
        let key = api_key(app, &tenant, &KEY_SCOPES).await;
        Self {
            app,
            tenant,
            venue: venues[0],
            resident,
            clients,
            key,
            secrets,
        }
    }

    pub fn client(&mut self, who: Who) -> &mut AdminClient<'a> {
        &mut self
            .clients
            .iter_mut()
            .find(|(w, _)| *w == who)
            .expect("a client for every staff role")
            .1
    }

    /// Fills in a route's path parameters; `true` when a parameter is a made-up id (an allowed
    /// request may then answer 404 for the object).
    pub fn fill(&self, path: &str) -> (String, bool) {
        let mut out = String::new();
        let mut made_up = false;
        let mut rest = path;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').expect("closing brace") + open;
            let name = &rest[open + 1..close];
            let value = match name {
                "slug" => self.tenant.slug.clone(),
                "venue" => self.venue.to_string(),
                "resident" => self.resident.to_string(),
                "kind" => "sms".into(),
                "event" => "booking_confirmed".into(),
                "lang" => "ja".into(),
                "token" => {
                    made_up = true;
                    "not-a-token".into()
                }
                "id" | "booking" | "account" | "slot" => {
                    made_up = true;
                    "00000000-0000-4000-8000-000000000001".into()
                }
                other => panic!(
                    "no value for path parameter {{{other}}} of {path}: add one to surface::fill"
                ),
            };
            out.push_str(&value);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        (out, made_up)
    }

    /// One admin request as `who`: status, Location header and body.
    pub async fn admin(&mut self, who: Who, method: Method, path: &str) -> (u16, String, String) {
        let res = if who == Who::ApiKey {
            let req = match method {
                Method::Get => self.app.client.get(self.app.url(path)),
                Method::Post => self.app.client.post(self.app.url(path)).form(&[("x", "")]),
            };
            req.bearer_auth(&self.key)
                .header("accept-language", "en")
                .send()
                .await
                .expect("request")
        } else {
            let client = self.client(who);
            match method {
                Method::Get => client.get(path).await,
                Method::Post => client.post(path, &[]).await,
            }
        };
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = res.text().await.unwrap_or_default();
        (status, location, body)
    }

    /// A GraphQL operation as `who`.
    pub async fn graphql(&mut self, who: Who, query: &str, vars: Value) -> Value {
        if who == Who::ApiKey {
            let key = self.key.clone();
            self.app.graphql_with_key(&key, query, vars).await
        } else {
            self.client(who).graphql(query, vars).await
        }
    }

    /// Checks one admin route for one person; returns a failure message, if any.
    pub async fn check_route(
        &mut self,
        who: Who,
        route: &RouteSpec,
        suspended: bool,
    ) -> Option<String> {
        let want = expected(who, route.access, suspended, Channel::Admin);
        let (path, made_up) = self.fill(route.path);
        if route.method == Method::Post && want == Outcome::Allowed {
            // a successful post needs a valid form and changes the city: only refusals are checked
            return None;
        }
        let (status, location, body) = self.admin(who, route.method, &path).await;
        let what = format!(
            "{who:?} {} {} (suspended: {suspended}): expected {want:?}, got {status}",
            route.method.as_str(),
            route.path
        );
        let leaked = self.secrets.iter().find(|s| body.contains(s.as_str()));
        let ok = match want {
            Outcome::Allowed if made_up => {
                status != 403 && status < 500 && !location.starts_with("/admin/login")
            }
            // 200, or a redirect elsewhere than the login page (a page that sends a role on to
            // what it may see, e.g. the notifications overview to the delivery log)
            Outcome::Allowed => {
                status == 200
                    || (status == 303 && !location.starts_with("/admin/login"))
                    || (route.access == Access::Public && status < 500)
            }
            Outcome::Forbidden => status == 403 && !body.contains(SUSPENDED_EN),
            Outcome::NotFound => status == 404,
            Outcome::Suspended => status == 403 && body.contains(SUSPENDED_EN) && leaked.is_none(),
            Outcome::Login => status == 303 && location == "/admin/login",
        };
        (!ok).then(|| format!("{what} {location} {leaked:?}"))
    }

    /// Checks one GraphQL field for one person; returns a failure message, if any.
    pub async fn check_field(
        &mut self,
        who: Who,
        field: &Field,
        suspended: bool,
    ) -> Option<String> {
        let access = match field.kind {
            Kind::Resident(_) => return None,
            Kind::Public => Access::Public,
            Kind::Staff(access) => access,
        };
        let want = expected(who, access, suspended, Channel::Graphql);
        let vars = json!({ "slug": self.tenant.slug, "venue": self.venue });
        let answer = self.graphql(who, field.query, vars).await;
        let error = &answer["errors"][0];
        let code = error["extensions"]["code"].as_str();
        let reason = error["extensions"]["reason"].as_str();
        let message = error["message"].as_str().unwrap_or("");
        let data = answer["data"].to_string();
        let leaked = self.secrets.iter().find(|s| data.contains(s.as_str()));
        let ok = match want {
            Outcome::Allowed => match field.allowed {
                None => code.is_none() && answer["data"].is_object(),
                // a mutation's refusal of the input is a user error of its payload
                Some((c, m)) => {
                    let user = answer["data"]
                        .as_object()
                        .and_then(|d| d.values().next())
                        .map(|p| &p["errors"][0]);
                    (code == Some(c) && message.contains(m))
                        || (code.is_none()
                            && user.is_some_and(|u| {
                                u["code"] == c
                                    && u["message"].as_str().is_some_and(|um| um.contains(m))
                            }))
                }
            },
            Outcome::Forbidden => code == Some("FORBIDDEN") && reason.is_none(),
            Outcome::NotFound => code == Some("NOT_FOUND"),
            Outcome::Suspended => {
                code == Some("FORBIDDEN")
                    && reason == Some("TENANT_SUSPENDED")
                    && message == SUSPENDED_EN
                    && leaked.is_none()
            }
            Outcome::Login => false,
        };
        (!ok).then(|| {
            format!(
                "{who:?} {} (suspended: {suspended}): expected {want:?}, got {answer}",
                field.name
            )
        })
    }
}

/// An API key of the city with `scopes`, made by a city admin through the guard.
pub async fn api_key(app: &TestApp, tenant: &tenants::Tenant, scopes: &[&str]) -> String {
    let admin = app
        .staff(
            &format!("key-maker-{}@example.org", Uuid::new_v4().simple()),
            Some((tenant.id, Role::CityAdmin, &[])),
        )
        .await;
    let actor = platform::staff::authz::Actor::staff(admin.id, &admin.email, None);
    let mut scope = app
        .authz
        .enter(&actor, tenant.id, Object::ApiKeys, Act::Write)
        .await
        .expect("scope");
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    let (_, key) = platform::staff::api_keys::create(&mut scope, &app.authz, "matrix", &scopes)
        .await
        .expect("key");
    scope.commit().await.expect("commit");
    key
}

/// How a GraphQL field is reached.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// No credentials needed.
    Public,
    /// Staff sessions and API keys, through the guard with this access in the city `$slug`.
    Staff(Access),
    /// A resident's field (resident token), covered by the resident desk's tests: the reason.
    Resident(&'static str),
}

/// A field's entry: `Type.field`, how it is reached, an operation that uses it (variables
/// `$slug` and `$venue`), and what an allowed caller gets (None: data; or an error code and
/// part of its message, for operations whose input is deliberately invalid so nothing changes).
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub query: &'static str,
    pub allowed: Option<(&'static str, &'static str)>,
}

pub use crate::surface_fields::FIELDS;

/// The staff containers: root fields whose object's own fields each go through the guard.
const CONTAINERS: [&str; 2] = ["Query.city", "Query.billing"];

/// Every field the schema has at the top and in the containers, as `Type.field` (deprecated ones
/// too: they answer until they are removed); panics naming every field without an entry in
/// [`FIELDS`] and every entry without a field.
pub async fn schema_fields(app: &TestApp) -> Vec<&'static Field> {
    let answer = app
        .graphql(
            "{ __schema { queryType { fields(includeDeprecated: true) { name type { ...T } } } \
               mutationType { fields(includeDeprecated: true) { name type { ...T } } } \
               types { name fields(includeDeprecated: true) { name } } } } \
             fragment T on __Type { name ofType { name ofType { name ofType { name } } } }",
            json!({}),
        )
        .await;
    let schema = &answer["data"]["__schema"];
    fn named(t: &Value) -> String {
        let mut t = t;
        while t["name"].is_null() && !t["ofType"].is_null() {
            t = &t["ofType"];
        }
        t["name"].as_str().unwrap_or("").to_owned()
    }
    let mut names = Vec::new();
    for (root, key) in [("Query", "queryType"), ("Mutation", "mutationType")] {
        for f in schema[key]["fields"].as_array().expect("root fields") {
            let name = format!("{root}.{}", f["name"].as_str().expect("name"));
            if CONTAINERS.contains(&name.as_str()) {
                let ty = named(&f["type"]);
                let t = schema["types"]
                    .as_array()
                    .expect("types")
                    .iter()
                    .find(|t| t["name"] == ty.as_str())
                    .expect("container type");
                for inner in t["fields"].as_array().expect("container fields") {
                    names.push(format!("{ty}.{}", inner["name"].as_str().expect("name")));
                }
            }
            names.push(name);
        }
    }
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !FIELDS.iter().any(|f| f.name == n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "GraphQL fields without an entry in tests/e2e/surface.rs FIELDS (say who may use them): {missing:?}"
    );
    let stale: Vec<&str> = FIELDS
        .iter()
        .map(|f| f.name)
        .filter(|n| !names.iter().any(|m| m == n))
        .collect();
    assert!(
        stale.is_empty(),
        "entries in FIELDS for fields the schema does not have: {stale:?}"
    );
    FIELDS.iter().collect()
}
