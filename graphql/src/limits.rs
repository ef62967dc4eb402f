//! What one document may cost, decided before async-graphql's own validation runs: that validation
//! (depth and complexity included) walks every fragment spread by expanding it, so a document whose
//! fragments each spread the previous one twice costs 2^levels before "Query is too complex".
//!
//! [`QueryLimits`] refuses, in `prepare_request` (before async-graphql's parse step, whose recursion
//! depth check also expands spreads), a query text above [`MAX_QUERY_BYTES`], more than
//! [`MAX_FRAGMENTS`] fragment definitions, more than [`MAX_ROOT_FIELDS`] top-level fields (aliases
//! count: 200 aliases of `availability` are 200 fields) or more than [`MAX_FIELDS`] fields in all
//! once fragments are expanded. The expanded count is computed with each fragment's count worked
//! out once and multiplied per spread (memoised, saturating), never by expanding: linear in the
//! document. Refusals answer `extensions.code = "VALIDATION"` with `extensions.reason =
//! "TOO_COMPLEX"` before anything is validated or executed (docs/api.md).
//!
//! List sizes count in the complexity (`MAX_COMPLEXITY`) through the `complexity` of list fields
//! that take a size (`availability(days:)`, `slots(first:)`, `auditLog(limit:)`), and the answer
//! itself is capped at [`MAX_RESPONSE_BYTES`] (`web.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Request, ServerError, ServerResult};

/// Longest query text (bytes) accepted; variables are separate (and under the body limit).
pub const MAX_QUERY_BYTES: usize = 32 * 1024;
/// Fragment definitions per document.
pub const MAX_FRAGMENTS: usize = 32;
/// Top-level fields (aliases included) per operation.
pub const MAX_ROOT_FIELDS: usize = 20;
/// Fields per operation with every fragment spread expanded.
pub const MAX_FIELDS: usize = 500;
/// Directives on one field.
pub const MAX_DIRECTIVES: usize = 4;
/// Nesting of selection sets (a fragment spread counts one) that async-graphql follows.
pub const MAX_RECURSION: usize = 32;
/// Largest answer (bytes of JSON) sent; a larger one is replaced by an error.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Refuses documents over the limits above, before validation.
pub struct QueryLimits;

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryLimits)
    }
}

/// A refusal for a document that would cost too much.
pub fn too_complex(message: String) -> ServerError {
    let mut e = ServerError::new(message, None);
    let ext = e.extensions.get_or_insert_with(Default::default);
    ext.set("code", "VALIDATION");
    ext.set("reason", "TOO_COMPLEX");
    e
}

#[async_graphql::async_trait::async_trait]
impl Extension for QueryLimits {
    /// Runs before parsing proper: async-graphql's own parse step also checks the recursion depth
    /// and directives by walking every spread expanded, so the limits must come first. The
    /// document parsed here is kept in the request (parsed once). A text that does not parse is
    /// left to the parse step, which says why (`VALIDATION`, input.rs).
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if request.query.len() > MAX_QUERY_BYTES {
            return Err(too_complex(format!(
                "The query is too large ({} bytes; at most {MAX_QUERY_BYTES}).",
                request.query.len()
            )));
        }
        if let Ok(doc) = request.parsed_query() {
            check(doc)?;
        }
        next.run(ctx, request).await
    }
}

/// Fields of a selection set: (top-level fields, all fields with spreads expanded).
#[derive(Clone, Copy, Default)]
struct Count {
    top: usize,
    all: usize,
}

impl Count {
    fn add(self, o: Count) -> Count {
        Count {
            top: self.top.saturating_add(o.top),
            all: self.all.saturating_add(o.all),
        }
    }
}

struct Counter<'a> {
    doc: &'a ExecutableDocument,
    done: HashMap<&'a Name, Count>,
    /// Fragments being counted (a cycle counts 0 here; validation refuses it afterwards).
    open: Vec<&'a Name>,
}

impl<'a> Counter<'a> {
    fn set(&mut self, set: &'a SelectionSet) -> Count {
        let mut c = Count::default();
        for item in &set.items {
            let one = match &item.node {
                Selection::Field(f) => Count {
                    top: 1,
                    all: self.set(&f.node.selection_set.node).all.saturating_add(1),
                },
                Selection::InlineFragment(i) => self.set(&i.node.selection_set.node),
                Selection::FragmentSpread(s) => self.fragment(&s.node.fragment_name.node),
            };
            c = c.add(one);
        }
        c
    }

    fn fragment(&mut self, name: &'a Name) -> Count {
        if let Some(c) = self.done.get(name) {
            return *c;
        }
        if self.open.contains(&name) {
            return Count::default();
        }
        let Some(def) = self.doc.fragments.get(name) else {
            return Count::default(); // unknown fragment: validation says so
        };
        self.open.push(name);
        let c = self.set(&def.node.selection_set.node);
        self.open.pop();
        self.done.insert(name, c);
        c
    }
}

/// The limits on a parsed document (linear in its size).
pub fn check(doc: &ExecutableDocument) -> Result<(), ServerError> {
    if doc.fragments.len() > MAX_FRAGMENTS {
        return Err(too_complex(format!(
            "The query has too many fragments ({}; at most {MAX_FRAGMENTS}).",
            doc.fragments.len()
        )));
    }
    let mut counter = Counter {
        doc,
        done: HashMap::new(),
        open: Vec::new(),
    };
    for (_, op) in doc.operations.iter() {
        let c = counter.set(&op.node.selection_set.node);
        if c.top > MAX_ROOT_FIELDS {
            return Err(too_complex(format!(
                "The query asks for too many top-level fields ({}; at most {MAX_ROOT_FIELDS}, \
                 aliases included); send several requests instead.",
                c.top
            )));
        }
        if c.all > MAX_FIELDS {
            return Err(too_complex(format!(
                "The query is too complex: {} fields once fragments are expanded (at most \
                 {MAX_FIELDS}).",
                if c.all == usize::MAX {
                    "more".to_owned()
                } else {
                    c.all.to_string()
                }
            )));
        }
    }
    Ok(())
}

/// Slots a venue's day is counted as when estimating an `availability` answer (a busy mass venue:
/// 09:00–17:00 in 15-minute slots is ~30).
const SLOTS_PER_DAY: usize = 30;
/// Values an answer is estimated to hold at or above which it is executed off the runtime's
/// workers (`web.rs`): ~20,000 values take the better part of 20 ms to resolve and serialise.
pub const WIDE_VALUES: usize = 20_000;

/// An estimate of the values (objects, list items, fields) the answer to `op` of `doc` holds, from
/// the size arguments of its list fields: `availability` counts [`SLOTS_PER_DAY`] items per day of
/// its window (`days`, default 31; one day with `date`), `first` and `limit` their value, every
/// other field one. Fragments are counted once each and multiplied per spread (never expanded).
/// Only ever compared with [`WIDE_VALUES`]: it decides where a document runs, not whether.
pub fn estimated_values(doc: &ExecutableDocument, variables: &async_graphql::Variables) -> usize {
    let mut e = Estimator {
        doc,
        variables,
        done: HashMap::new(),
        open: Vec::new(),
    };
    doc.operations
        .iter()
        .map(|(_, op)| e.set(&op.node.selection_set.node))
        .max()
        .unwrap_or(0)
}

struct Estimator<'a> {
    doc: &'a ExecutableDocument,
    variables: &'a async_graphql::Variables,
    done: HashMap<&'a Name, usize>,
    open: Vec<&'a Name>,
}

impl<'a> Estimator<'a> {
    fn set(&mut self, set: &'a SelectionSet) -> usize {
        let mut n: usize = 0;
        for item in &set.items {
            let one = match &item.node {
                Selection::Field(f) => {
                    let inner = self.set(&f.node.selection_set.node);
                    self.size(&f.node).saturating_mul(inner.saturating_add(1))
                }
                Selection::InlineFragment(i) => self.set(&i.node.selection_set.node),
                Selection::FragmentSpread(s) => self.fragment(&s.node.fragment_name.node),
            };
            n = n.saturating_add(one);
        }
        n
    }

    fn fragment(&mut self, name: &'a Name) -> usize {
        if let Some(n) = self.done.get(name) {
            return *n;
        }
        if self.open.contains(&name) {
            return 0;
        }
        let Some(def) = self.doc.fragments.get(name) else {
            return 0;
        };
        self.open.push(name);
        let n = self.set(&def.node.selection_set.node);
        self.open.pop();
        self.done.insert(name, n);
        n
    }

    /// The items a field's answer is estimated to hold (1 for a field that is not a sized list).
    fn size(&self, f: &async_graphql::parser::types::Field) -> usize {
        // an argument's value with variables put in (None: absent, or a variable not sent)
        let arg = |name: &str| -> Option<async_graphql::Value> {
            f.get_argument(name)?
                .node
                .clone()
                .into_const_with(|var| self.variables.get(&var).cloned().ok_or(()))
                .ok()
        };
        let number = |name: &str| -> Option<usize> {
            match arg(name)? {
                async_graphql::Value::Number(n) => {
                    n.as_u64().map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                }
                _ => None,
            }
        };
        if f.name.node == "availability" {
            if arg("date").is_some_and(|d| d != async_graphql::Value::Null) {
                return SLOTS_PER_DAY;
            }
            let days = number("days").unwrap_or(31).clamp(1, 62);
            return days.saturating_mul(SLOTS_PER_DAY);
        }
        number("first")
            .or_else(|| number("limit"))
            .map_or(1, |n| n.clamp(1, 1_000))
    }
}

/// The query text with whitespace, commas and comments collapsed, so padded variants of one query
/// read the same: one space between tokens, none next to a one-character punctuator. Strings and
/// block strings are kept as written. Two texts with different tokens never give the same result.
pub fn normalise(query: &str) -> String {
    const PUNCT: &[char] = &[
        '{', '}', '(', ')', '[', ']', ':', '!', '=', '@', '|', '&', '$',
    ];
    let mut out = String::with_capacity(query.len().min(4096));
    let mut gap = false;
    let mut rest = query;
    while let Some(c) = rest.chars().next() {
        match c {
            ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => {
                gap = true;
                rest = &rest[c.len_utf8()..];
            }
            '#' => {
                let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
                rest = &rest[end..];
                gap = true;
            }
            _ => {
                if gap && !out.is_empty() && !PUNCT.contains(&c) && !out.ends_with(PUNCT) {
                    out.push(' ');
                }
                gap = false;
                let len = if c == '"' {
                    string_len(rest)
                } else {
                    c.len_utf8()
                };
                out.push_str(&rest[..len]);
                rest = &rest[len..];
            }
        }
    }
    out
}

/// Length of the string or block string `s` starts with (to its end). An unterminated one (the
/// parser refuses those) takes the rest of the text as it is, so normalising twice changes nothing
/// (found by the `graphql_request` fuzz target).
fn string_len(s: &str) -> usize {
    if let Some(body) = s.strip_prefix("\"\"\"") {
        let mut i = 0;
        while i < body.len() {
            if body[i..].starts_with("\\\"\"\"") {
                i += 4;
            } else if body[i..].starts_with("\"\"\"") {
                return 3 + i + 3;
            } else {
                i += body[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
        return s.len();
    }
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return i + 1,
            '\n' | '\r' => return s.len(),
            _ => {}
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_twice_changes_nothing_even_with_an_unterminated_string() {
        for q in [
            "{ a(x: \"open\n  b  c) }",
            "query { \"qn\" demo\") { ...V }\n\"m\n\0..V }  v) { id } }",
            "{ a(x: \"\"\"never closed\n  b ) }",
            "{ a(x: \"closed\")   { b } }",
        ] {
            let once = normalise(q);
            assert_eq!(normalise(&once), once, "{q:?}");
        }
    }

    #[test]
    fn padding_does_not_change_the_normal_form() {
        let a = normalise("{ availability(tenant: \"demo\", venueId: $v) { id free } }");
        let b = normalise(
            "  {\n\n availability ( tenant :  \"demo\"  venueId:$v ) #x\n {id,,free}}   ",
        );
        assert_eq!(a, b);
        assert_eq!(a, "{availability(tenant:\"demo\" venueId:$v){id free}}");
    }

    #[test]
    fn strings_are_kept() {
        assert_eq!(normalise("{ a(x: \"a  b\") }"), "{a(x:\"a  b\")}");
        assert_eq!(normalise("{ a(x: \"a\\\"  b\") }"), "{a(x:\"a\\\"  b\")}");
        assert_eq!(
            normalise("{ a(x: \"\"\"a  \"b\"\"\") }"),
            "{a(x:\"\"\"a  \"b\"\"\")}"
        );
        assert_eq!(normalise("{ a(x: \"\") b }"), "{a(x:\"\")b}");
        assert_ne!(normalise("{ a b }"), normalise("{ ab }"));
    }

    #[test]
    fn fan_out_is_counted_without_expanding() {
        let mut q = String::from(
            "query { __schema { ...F30 } }\nfragment F0 on __Schema { description }\n",
        );
        for i in 1..=30 {
            q.push_str(&format!(
                "fragment F{i} on __Schema {{ ...F{p} ...F{p} }}\n",
                p = i - 1
            ));
        }
        let doc = async_graphql::parser::parse_query(&q).expect("parses");
        let e = check(&doc).expect_err("refused");
        assert!(e.message.contains("too complex"), "{}", e.message);
    }

    #[test]
    fn answers_are_estimated_from_the_sizes_lists_ask_for() {
        use async_graphql::Variables;
        let est = |q: &str, vars: serde_json::Value| {
            let doc = async_graphql::parser::parse_query(q).expect("parses");
            super::estimated_values(&doc, &Variables::from_json(vars))
        };
        let one = r#"{ availability(tenant: "demo", venueId: "x") { id free } }"#;
        // default window: 31 days of 30 slots, each with two fields
        assert_eq!(est(one, serde_json::json!({})), 31 * 30 * 3);
        let day = r#"query($d: NaiveDate) { availability(tenant: "demo", venueId: "x", date: $d) { id } }"#;
        assert_eq!(est(day, serde_json::json!({ "d": "2026-12-02" })), 30 * 2);
        assert_eq!(est(day, serde_json::json!({ "d": null })), 31 * 30 * 2);
        let widest = format!(
            "query($n: Int) {{ {} }}",
            (0..20)
                .map(|i| format!(r#"a{i}: availability(tenant: "demo", venueId: "x", days: $n) {{ id startsAt free mark }}"#))
                .collect::<String>()
        );
        let w = est(&widest, serde_json::json!({ "n": 62 }));
        assert_eq!(w, 20 * 62 * 30 * 5);
        assert!(w >= super::WIDE_VALUES);
        assert!(
            est(one, serde_json::json!({})) < super::WIDE_VALUES,
            "a month of one venue is not wide"
        );
        // a fragment spread twice counts twice, without being expanded
        let spread = r#"{ ...F ...F } fragment F on Query { city(slug: "demo") { slots(venueId: "x", first: 50) { id } } }"#;
        assert_eq!(est(spread, serde_json::json!({})), 2 * (1 + 50 * 2));
    }
}
