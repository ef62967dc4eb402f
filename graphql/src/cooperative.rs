//! GraphQL execution that takes turns with the rest of the server.
//!
//! async-graphql resolves a document as one future: a wide answer that is already in memory (20
//! aliases × 62 days of a year-long venue are ~36,000 slot objects) resolves without ever waiting,
//! so it holds its runtime worker for hundreds of milliseconds — and a request queued behind it on
//! that worker (tokio's LIFO slot is not stolen by the other worker) waits as long: `/healthz` at
//! 140–175 ms in the attack benchmark (docs/benchmarks.md, "Attack"). The execution deadline
//! (`web.rs`) cannot fire either, since a timer is only looked at when the future gives way.
//!
//! [`Cooperative`] charges every field and list item one unit of tokio's cooperative budget
//! (`tokio::task::coop::consume_budget`): after 128 units the execution yields, the worker runs what
//! waits, and the deadline gets its look. A small answer never reaches the budget and pays one
//! counter decrement per field.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{ServerResult, Value};

/// The extension factory (stateless: one shared instance).
pub struct Cooperative;

impl ExtensionFactory for Cooperative {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Cooperative)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for Cooperative {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        tokio::task::coop::consume_budget().await;
        next.run(ctx, info).await
    }
}
