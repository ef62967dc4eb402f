//! The GraphQL API at `/graphql`: one schema for integrators, chat-style front ends and the platform
//! operator. Thin by design: resolvers parse input, call `tenants`/`platform`, and shape the answer.
//! The SDL is checked in at `graphql/schema.graphql`; a test fails when code and file differ.

mod admin;
mod admin_input;
mod answers;
mod audit;
pub mod auth;
mod billing;
mod booking;
mod city_bookings;
mod cursor;
mod documents;
mod download;
mod enums;
mod error;
mod exports;
mod imports;
mod input;
mod intake;
mod intake_visit;
pub mod limits;
mod metrics;
mod mutation;
mod payload;
pub mod protocol;
mod query;
mod residents;
pub mod scalars;
mod slots;
mod stats;
mod web;
mod webhook_log;
mod webhooks;
mod wide;

use async_graphql::{EmptySubscription, Schema};
pub use booking::{BookingMutation, BookingQuery, RequestInfo};
pub use error::ApiError;
pub use mutation::Mutation;
pub use query::{Query, TenantQuery};
pub use web::{
    AnswerCache, AnswerCacheStats, MAX_REMEMBERED, MAX_REMEMBERED_BYTES, MAX_REMEMBERED_KEY,
    router, router_with_cache,
};
pub use webhooks::WebhookSettings;

/// The executable schema. The pool lives in its data; per-request data is added in the handler.
pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// Bounds that keep one request from costing the server more than a page view (see also
/// [`limits`]: size, fragments, top-level and expanded fields, checked before these). The depth is
/// checked by [`limits`] too, before validation, with introspection counted on its own terms
/// (async-graphql's `limit_depth` would count the standard introspection query's `ofType` chain
/// and refuse it).
pub const MAX_DEPTH: usize = 12;
pub const MAX_COMPLEXITY: usize = 1_000;

/// The executable schema with everything resolvers need: the pool, the resident services (hot
/// availability, login-code secret), the guard and the staff session policy. Without
/// [`WebhookSettings`] the webhook mutations answer INTERNAL (see [`schema_with_webhooks`]).
pub fn schema(
    pool: sqlx::PgPool,
    residents: platform::ResidentDesk,
    authz: platform::staff::authz::Authz,
    policy: std::sync::Arc<platform::staff::identity::AuthPolicy>,
) -> AppSchema {
    builder(pool, residents, authz, policy).finish()
}

/// [`schema`] with the webhook settings the server runs with (the admin UI's own: the sealing key
/// and the endpoint policy), so subscriptions can be managed over GraphQL.
pub fn schema_with_webhooks(
    pool: sqlx::PgPool,
    residents: platform::ResidentDesk,
    authz: platform::staff::authz::Authz,
    policy: std::sync::Arc<platform::staff::identity::AuthPolicy>,
    webhooks: WebhookSettings,
) -> AppSchema {
    builder(pool, residents, authz, policy)
        .data(webhooks)
        .finish()
}

fn builder(
    pool: sqlx::PgPool,
    residents: platform::ResidentDesk,
    authz: platform::staff::authz::Authz,
    policy: std::sync::Arc<platform::staff::identity::AuthPolicy>,
) -> async_graphql::SchemaBuilder<Query, Mutation, EmptySubscription> {
    hardened(scalars::describe(Schema::build(
        Query::default(),
        Mutation::default(),
        EmptySubscription,
    )))
    .data(pool)
    .data(residents)
    .data(authz)
    .data(policy)
}

/// The limits and extensions every schema served carries (one list, also used by the tests).
fn hardened<Q, M, S>(
    builder: async_graphql::SchemaBuilder<Q, M, S>,
) -> async_graphql::SchemaBuilder<Q, M, S> {
    builder
        // outermost first: the limits run on the parsed document before validation expands it
        .extension(input::InputErrorsAreValidation)
        .extension(limits::QueryLimits)
        .extension(metrics::OperationMetrics)
        .limit_recursive_depth(limits::MAX_RECURSION)
        .limit_directives(limits::MAX_DIRECTIVES)
        .limit_complexity(MAX_COMPLEXITY)
}

/// The SDL of the schema, as checked in at `graphql/schema.graphql`.
pub fn sdl() -> String {
    scalars::describe(Schema::build(
        Query::default(),
        Mutation::default(),
        EmptySubscription,
    ))
    .finish()
    .sdl()
}

#[cfg(test)]
mod tests {
    /// Regenerate with `cargo run -- graphql-schema > graphql/schema.graphql` (or run this test with
    /// `UPDATE_SCHEMA=1`) and review the diff like any other API change.
    #[test]
    fn the_checked_in_sdl_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
        let code = super::sdl();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &code).expect("write schema.graphql");
        }
        let file = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            file == code,
            "graphql/schema.graphql differs from the schema in code; regenerate it with \
             `cargo run -- graphql-schema > graphql/schema.graphql` and review the change"
        );
    }

    /// Every type, field, argument, enum value and input field of the schema says what it is
    /// (issue 17): integrators read the schema in GraphiQL and codegen tools, not our code.
    #[test]
    fn everything_in_the_schema_has_a_description() {
        use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
        let doc = async_graphql::parser::parse_schema(super::sdl()).expect("the SDL parses");
        let mut missing = Vec::new();
        let mut check = |what: String, d: &Option<async_graphql::Positioned<String>>| {
            if d.as_ref().is_none_or(|d| d.node.trim().is_empty()) {
                missing.push(what);
            }
        };
        for def in &doc.definitions {
            let TypeSystemDefinition::Type(t) = def else {
                continue; // the schema root and the built-in directives
            };
            let t = &t.node;
            let name = t.name.node.as_str();
            check(format!("type {name}"), &t.description);
            match &t.kind {
                TypeKind::Object(o) => {
                    for f in &o.fields {
                        let f = &f.node;
                        check(format!("{name}.{}", f.name.node), &f.description);
                        for a in &f.arguments {
                            check(
                                format!("{name}.{}({}:)", f.name.node, a.node.name.node),
                                &a.node.description,
                            );
                        }
                    }
                }
                TypeKind::Interface(i) => {
                    for f in &i.fields {
                        check(format!("{name}.{}", f.node.name.node), &f.node.description);
                    }
                }
                TypeKind::Enum(e) => {
                    for v in &e.values {
                        check(format!("{name}.{}", v.node.value.node), &v.node.description);
                    }
                }
                TypeKind::InputObject(i) => {
                    for f in &i.fields {
                        check(format!("{name}.{}", f.node.name.node), &f.node.description);
                    }
                }
                TypeKind::Scalar | TypeKind::Union(_) => {}
            }
        }
        assert!(
            missing.is_empty(),
            "these have no description (add a doc comment, or `desc = \"…\"` on an argument):\n  {}",
            missing.join("\n  ")
        );
    }

    /// Issue 17: no Rust type names in the API.
    #[test]
    fn the_schema_speaks_no_rust() {
        let sdl = super::sdl();
        for rust in ["NaiveDate", "DateTime<Utc>", "Utc", "chrono"] {
            assert!(!sdl.contains(rust), "the SDL mentions {rust}");
        }
        assert!(sdl.contains("scalar Date\n"), "{sdl}");
        assert!(sdl.contains(super::scalars::UUID_DESCRIPTION));
    }
}
