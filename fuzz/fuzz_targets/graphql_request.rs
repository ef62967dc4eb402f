//! What the API does with a request before anything runs: the JSON body decoded as a GraphQL
//! request, the query parsed, the document limits checked (`graphql::limits::check`, linear in the
//! document however its fragments nest), the remembered-answer key normalised. None panics; the
//! normaliser is idempotent and keeps a document that parses parseable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // the body as the handler reads it
    if let Ok(req) = serde_json::from_slice::<async_graphql::Request>(bytes) {
        check_query(&req.query);
    }
    // and the bytes as a query text of their own
    if let Ok(query) = std::str::from_utf8(bytes) {
        check_query(query);
    }
});

fn check_query(query: &str) {
    if query.len() > graphql::limits::MAX_QUERY_BYTES {
        return;
    }
    let normalised = graphql::limits::normalise(query);
    assert_eq!(graphql::limits::normalise(&normalised), normalised);
    if let Ok(doc) = async_graphql::parser::parse_query(query) {
        let _ = graphql::limits::check(&doc);
        assert!(
            async_graphql::parser::parse_query(&normalised).is_ok(),
            "normalising broke a document: {query:?} -> {normalised:?}"
        );
    }
}
