//! Input the schema itself refuses — a document that does not parse, or a variable or argument of
//! the wrong type (e.g. `dose: "FOURTH"`, which is no value of the `Dose` enum), or a required
//! variable left out — answers with `extensions.code = "VALIDATION"` like every other refused
//! input (docs/api.md), instead of a bare message, with `extensions.reason`: `SYNTAX` for a
//! document that does not parse, `INVALID` for one that does not validate (or whose variables do
//! not fit), `TOO_COMPLEX` for async-graphql's own limits (complexity, recursion, directives). Such errors come before any
//! resolver runs: nothing was read or written. They are request errors: the answer has no `data`
//! and, with `application/graphql-response+json`, status 400 (`protocol.rs`), which is told by the
//! [`crate::protocol::Executed`] mark this extension sets when execution starts.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Value, Variables};

use crate::protocol::Executed;

/// Adds `code: VALIDATION` (and a `reason`) to parse and validation errors that carry no code,
/// and marks the request [`Executed`] when execution starts.
pub struct InputErrorsAreValidation;

impl ExtensionFactory for InputErrorsAreValidation {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(InputErrorsAreValidation)
    }
}

/// Whether an error is one of async-graphql's own limits (`limit_complexity`,
/// `limit_recursive_depth`, `limit_directives`), which answer like ours (`limits.rs`).
fn over_a_limit(message: &str) -> bool {
    message == "Query is too complex."
        || message.starts_with("The recursion depth of the query cannot be greater than")
        || message.starts_with("The number of directives on the field")
}

fn with_code(mut e: ServerError, reason: &'static str) -> ServerError {
    let reason = if over_a_limit(&e.message) {
        "TOO_COMPLEX"
    } else {
        reason
    };
    let ext = e.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", "VALIDATION");
        if ext.get("reason").is_none() {
            ext.set("reason", reason);
        }
    }
    e
}

/// A refusal of the request's variables (a request error, before validation).
fn invalid(message: String) -> ServerError {
    let mut e = ServerError::new(message, None);
    let ext = e.extensions.get_or_insert_with(Default::default);
    ext.set("code", "VALIDATION");
    ext.set("reason", "INVALID");
    e
}

/// The first step of coercing variables (GraphQL's CoerceVariableValues): every variable the
/// operation declares non-null without a default is given, and not `null`. The values' types are
/// checked by validation where they are used; async-graphql would otherwise find a missing one
/// only while resolving the field (a field error after execution started).
pub fn required_variables(
    doc: &ExecutableDocument,
    variables: &Variables,
    operation: Option<&str>,
) -> Result<(), ServerError> {
    let op = match (&doc.operations, operation) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => op,
            None => return Ok(()), // async-graphql says the operation is unknown
        },
        (DocumentOperations::Multiple(ops), None) => match ops.values().next() {
            Some(op) if ops.len() == 1 => op,
            _ => return Ok(()),
        },
    };
    for def in &op.node.variable_definitions {
        let def = &def.node;
        if def.var_type.node.nullable || def.default_value.is_some() {
            continue;
        }
        let name = &def.name.node;
        match variables.get(name) {
            None => {
                return Err(invalid(format!(
                    "Variable \"${name}\" of required type \"{}\" was not provided.",
                    def.var_type.node
                )));
            }
            Some(Value::Null) => {
                return Err(invalid(format!(
                    "Variable \"${name}\" of non-null type \"{}\" must not be null.",
                    def.var_type.node
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[async_graphql::async_trait::async_trait]
impl Extension for InputErrorsAreValidation {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|e| with_code(e, "SYNTAX"))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| with_code(e, "INVALID"))
                .collect()
        })
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let Some(mark) = ctx.data_opt::<Arc<Executed>>() {
            mark.mark();
        }
        next.run(ctx, operation_name).await
    }
}
