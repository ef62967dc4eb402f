//! Metrics per GraphQL operation (docs/operations.md, "Metrics"):
//! `yoyaku_graphql_operations_total{operation, outcome}` and
//! `yoyaku_graphql_operation_duration_seconds{operation}`, where `operation` is the operation's type
//! and first root field (`mutation.book`, `query.availability`) — never the client's operation
//! name, which anyone can choose. Recorded only for documents that passed validation (so every
//! field named is one the schema has: the labels are bounded); refused documents show up in the
//! HTTP metrics of `/graphql`. An availability answer served from memory without execution
//! (graphql/src/web.rs) is counted there too, not here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
};
use async_graphql::{Response, ServerResult, Variables};

/// The extension factory: one recorder per request.
pub struct OperationMetrics;

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Recorder::default())
    }
}

#[derive(Default)]
struct Recorder {
    /// The label of each operation of the document, by name (`None`: the anonymous one).
    labels: Mutex<HashMap<Option<String>, String>>,
}

fn label(op: &OperationDefinition) -> String {
    let kind = match op.ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    };
    let first = op
        .selection_set
        .node
        .items
        .first()
        .map_or("(none)", |s| match &s.node {
            Selection::Field(f) => f.node.name.node.as_str(),
            Selection::FragmentSpread(_) | Selection::InlineFragment(_) => "(fragment)",
        });
    format!("{kind}.{first}")
}

#[async_graphql::async_trait::async_trait]
impl Extension for Recorder {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let labels: HashMap<Option<String>, String> = match &doc.operations {
            DocumentOperations::Single(op) => HashMap::from([(None, label(&op.node))]),
            DocumentOperations::Multiple(ops) => ops
                .iter()
                .map(|(name, op)| (Some(name.to_string()), label(&op.node)))
                .collect(),
        };
        if let Ok(mut l) = self.labels.lock() {
            *l = labels;
        }
        Ok(doc)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let started = Instant::now();
        let res = next.run(ctx, operation_name).await;
        let operation = self.labels.lock().ok().and_then(|l| {
            l.get(&operation_name.map(str::to_owned))
                .or_else(|| (l.len() == 1).then(|| l.values().next()).flatten())
                .cloned()
        });
        let operation = operation.unwrap_or_else(|| "(unknown)".to_owned());
        let outcome = if res.is_ok() { "ok" } else { "error" };
        metrics::counter!(
            "yoyaku_graphql_operations_total",
            "operation" => operation.clone(),
            "outcome" => outcome
        )
        .increment(1);
        metrics::histogram!("yoyaku_graphql_operation_duration_seconds", "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        res
    }
}
