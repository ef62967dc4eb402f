//! Input the schema itself refuses — a document that does not parse, or a variable or argument of
//! the wrong type (e.g. `dose: "FOURTH"`, which is no value of the `Dose` enum) — answers with
//! `extensions.code = "VALIDATION"` like every other refused input (docs/api.md), instead of a bare
//! message. Such errors come before any resolver runs: nothing was read or written.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerError, ServerResult, ValidationResult, Variables};

/// Adds `code: VALIDATION` to parse and validation errors that carry no code.
pub struct InputErrorsAreValidation;

impl ExtensionFactory for InputErrorsAreValidation {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(InputErrorsAreValidation)
    }
}

fn with_code(mut e: ServerError) -> ServerError {
    let ext = e.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", "VALIDATION");
    }
    e
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
        next.run(ctx, query, variables).await.map_err(with_code)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx)
            .await
            .map_err(|errors| errors.into_iter().map(with_code).collect())
    }
}
