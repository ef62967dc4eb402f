//! Parsed documents of `/graphql` ([`crate::web`]), by their text: a client sends the same few
//! documents again and again with other variables (a resident's app books with one mutation text,
//! the availability screen reads with one query text), and parsing one costs more than the rest of
//! a booking request on the server (docs/benchmarks.md, "Where the other 40 % went": the parser
//! was ~17 % of the server's CPU in the rush, paid twice per request). A document seen before is
//! cloned instead of parsed; what it is (only public `availability` fields, so its answer may be
//! remembered) is worked out once with it.
//!
//! Bounded: at most [`MAX_DOCUMENTS`] documents of at most [`MAX_DOCUMENT_BYTES`] each, the oldest
//! out first; a document that does not parse is never kept (it is parsed, and refused, each time,
//! as before). The parsed document goes through the same checks as a freshly parsed one (depth,
//! directives, limits.rs, validation), which run on every request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection,
};

/// Most documents kept; the oldest goes first.
pub const MAX_DOCUMENTS: usize = 256;
/// A longer document is parsed every time.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024;

/// A document as parsed, and whether it is made only of public `availability` fields.
pub(crate) struct Parsed {
    doc: ExecutableDocument,
    public_availability: bool,
}

impl Parsed {
    fn of(doc: ExecutableDocument) -> Self {
        let public_availability = only_public_availability(&doc);
        Self {
            doc,
            public_availability,
        }
    }

    /// Whether the answer depends on nothing but the request body, the language and the venue
    /// slots it reads (so it may be remembered).
    pub(crate) fn public_availability(&self) -> bool {
        self.public_availability
    }
}

#[derive(Default)]
struct Kept {
    map: HashMap<Arc<str>, Arc<Parsed>>,
    order: VecDeque<Arc<str>>,
}

/// The parsed documents of one `/graphql` router (held in its shared state).
#[derive(Default)]
pub(crate) struct Documents(Mutex<Kept>);

impl Documents {
    /// The document with this text, when it was parsed before.
    pub(crate) fn get(&self, query: &str) -> Option<Arc<Parsed>> {
        self.0.lock().ok()?.map.get(query).cloned()
    }

    /// Gives `req` its parsed document — `known` (from [`Self::get`]) cloned, else parsed now and
    /// kept — and says whether it is made only of public `availability` fields. `false` when the
    /// document does not parse (execution then refuses it with the parser's message).
    pub(crate) fn prepare(
        &self,
        req: &mut async_graphql::Request,
        known: Option<Arc<Parsed>>,
    ) -> bool {
        if let Some(p) = known {
            req.set_parsed_query(p.doc.clone());
            return p.public_availability;
        }
        let small = req.query.len() <= MAX_DOCUMENT_BYTES;
        let Ok(doc) = req.parsed_query() else {
            return false;
        };
        if !small {
            return only_public_availability(doc);
        }
        let parsed = Arc::new(Parsed::of(doc.clone()));
        let public = parsed.public_availability;
        self.keep(Arc::from(req.query.as_str()), parsed);
        public
    }

    fn keep(&self, query: Arc<str>, parsed: Arc<Parsed>) {
        let Ok(mut k) = self.0.lock() else {
            return;
        };
        if k.map.insert(query.clone(), parsed).is_none() {
            k.order.push_back(query);
        }
        while k.map.len() > MAX_DOCUMENTS {
            let Some(oldest) = k.order.pop_front() else {
                break;
            };
            k.map.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map(|k| k.map.len()).unwrap_or(0)
    }
}

/// A query made only of public `availability` fields: its answer depends on nothing but the
/// request body, the language and the venue slots it reads.
fn only_public_availability(doc: &ExecutableDocument) -> bool {
    let op = match &doc.operations {
        DocumentOperations::Single(op) => op,
        DocumentOperations::Multiple(ops) if ops.len() == 1 => match ops.values().next() {
            Some(op) => op,
            None => return false,
        },
        DocumentOperations::Multiple(_) => return false,
    };
    op.node.ty == OperationType::Query
        && !op.node.selection_set.node.items.is_empty()
        && op.node.selection_set.node.items.iter().all(
            |item| matches!(&item.node, Selection::Field(f) if f.node.name.node == "availability"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> async_graphql::Request {
        async_graphql::Request::new(query)
    }

    #[test]
    fn a_document_seen_before_is_not_parsed_again_and_keeps_what_it_is() {
        let docs = Documents::default();
        let q = "query($v: ID!) { availability(venueId: $v) { date } }";
        assert!(docs.get(q).is_none());
        let mut first = request(q);
        assert!(docs.prepare(&mut first, None));
        let known = docs.get(q).expect("kept after the first parse");
        assert!(known.public_availability());
        let mut again = request(q);
        assert!(docs.prepare(&mut again, Some(known)));
        // the request carries the same document as a fresh parse would give it
        let fresh = async_graphql::parser::parse_query(q).expect("parses");
        assert_eq!(
            format!("{:?}", again.parsed_query().expect("set").operations),
            format!("{:?}", fresh.operations)
        );
        let m = "mutation { book(input: {slotId: \"x\"}) { errors { code } } }";
        assert!(!docs.prepare(&mut request(m), None));
        assert!(!docs.get(m).expect("kept").public_availability());
    }

    #[test]
    fn broken_and_long_documents_are_not_kept_and_the_kept_ones_are_bounded() {
        let docs = Documents::default();
        assert!(!docs.prepare(&mut request("query { availability("), None));
        assert!(docs.get("query { availability(").is_none());
        let long = format!(
            "query {{ {} }}",
            "availability(venueId: \"v\") { date } ".repeat(200)
        );
        assert!(long.len() > MAX_DOCUMENT_BYTES);
        docs.prepare(&mut request(&long), None);
        assert!(docs.get(&long).is_none());
        for i in 0..MAX_DOCUMENTS + 10 {
            docs.prepare(
                &mut request(&format!("query {{ a{i}: availability }}")),
                None,
            );
        }
        assert_eq!(docs.len(), MAX_DOCUMENTS);
        assert!(
            docs.get("query { a0: availability }").is_none(),
            "oldest out first"
        );
        assert!(
            docs.get(&format!("query {{ a{}: availability }}", MAX_DOCUMENTS + 9))
                .is_some()
        );
    }
}
