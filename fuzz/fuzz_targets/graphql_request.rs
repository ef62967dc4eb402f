//! What the API does with a request before anything runs: the JSON body (or a GET's query string)
//! decoded as a GraphQL request (`graphql::protocol`), the query parsed, the document limits
//! checked (`graphql::limits::check`, linear in the document however its fragments nest), the
//! remembered-answer key normalised. None panics; the normaliser is idempotent and keeps a
//! document that parses parseable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // the body as the handler reads it (a POST), and the query string of a GET
    if let Ok(mut req) = graphql::protocol::from_json_body(bytes) {
        let _ = graphql::protocol::operation_type(&mut req);
        check_query(&req.query);
    }
    if let Ok(query) = std::str::from_utf8(bytes) {
        if let Ok(req) = graphql::protocol::from_query_string(query) {
            check_query(&req.query);
        }
        // and the bytes as a query text of their own
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
