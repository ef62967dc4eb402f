//! What one document may cost, decided before async-graphql's own validation runs: that validation
//! (depth and complexity included) walks every fragment spread by expanding it, so a document whose
//! fragments each spread the previous one twice costs 2^levels before "Query is too complex".
//!
//! [`QueryLimits`] refuses, in `prepare_request` (before async-graphql's parse step, whose recursion
//! depth check also expands spreads), a query text above [`MAX_QUERY_BYTES`], more than
//! [`MAX_FRAGMENTS`] fragment definitions, more than [`MAX_ROOT_FIELDS`] top-level fields (aliases
//! count: 200 aliases of `availability` are 200 fields), more than [`MAX_FIELDS`] fields in all
//! once fragments are expanded, or fields nested deeper than [`crate::MAX_DEPTH`]. The counts are
//! computed with each fragment's figures worked out once and reused per spread (memoised,
//! saturating), never by expanding: linear in the document. Refusals answer `extensions.code =
//! "VALIDATION"` with `extensions.reason = "TOO_COMPLEX"` before anything is validated or executed
//! (docs/api.md).
//!
//! Introspection is counted on its own terms, so the standard introspection query (graphql-js
//! `getIntrospectionQuery()`, whose `TypeRef` fragment nests `ofType` nine times: 15 levels) is
//! always answered: below a `__schema` or `__type` field, nesting counts against
//! [`MAX_INTROSPECTION_DEPTH`] instead of [`crate::MAX_DEPTH`], and the fields are weighed by
//! what they can return — each list (`types`, `fields`, `args`, …) multiplies what is asked of
//! its items by its typical length ([`introspection_list_len`]) — against
//! [`MAX_INTROSPECTION_COST`], about twice what the standard query weighs. A singular `ofType`
//! chain is cheap; lists of lists of lists are not (`types { fields { type { fields { … } } } }`
//! with many aliases is refused). The size, fragment and field caps above hold for introspection
//! too.
//!
//! List sizes count in the complexity (`MAX_COMPLEXITY`) through the `complexity` of list fields
//! that take a size (`availability(days:)`, the connections' `first`, `auditLog(limit:)`), and the
//! answer itself is capped at [`MAX_RESPONSE_BYTES`] (`web.rs`).

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
/// Nesting of fields from a `__schema` or `__type` field down (that field counts one): the
/// standard introspection query needs 15 (`__schema types fields args type`, nine `ofType`, `name`).
pub const MAX_INTROSPECTION_DEPTH: usize = 16;
/// What an introspection selection may weigh: every field counts one, times the typical length
/// of each list above it ([`introspection_list_len`]). The standard introspection query weighs
/// about 520,000 (a unit test says exactly); two of them in one request are refused.
pub const MAX_INTROSPECTION_COST: u64 = 1_000_000;

/// The typical length of an introspection list field (what one item's fields are multiplied by);
/// 1 for the other fields. Generous for this schema (a few dozen types of a dozen fields or so).
pub fn introspection_list_len(field: &str) -> u64 {
    match field {
        "types" => 100,
        "fields" | "inputFields" | "enumValues" => 20,
        "directives" | "possibleTypes" => 10,
        "args" | "interfaces" => 5,
        _ => 1,
    }
}

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
    /// left to the parse step, which says why (`VALIDATION`, input.rs). Required variables that
    /// are missing are refused here too ([`crate::input::required_variables`]).
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
        // the variables aside while the parsed document is borrowed
        let operation = request.operation_name.clone();
        let variables = std::mem::take(&mut request.variables);
        let checked = match request.parsed_query() {
            Ok(doc) => check(doc).and_then(|()| {
                crate::input::required_variables(doc, &variables, operation.as_deref())
            }),
            Err(_) => Ok(()),
        };
        request.variables = variables;
        checked?;
        next.run(ctx, request).await
    }
}

/// Figures of a selection set.
#[derive(Clone, Copy, Default)]
struct Count {
    /// Fields at its own level (aliases included).
    top: usize,
    /// All fields, with spreads expanded.
    all: usize,
    /// Deepest nesting of fields outside introspection (a `__schema` / `__type` field counts one).
    depth: usize,
    /// Deepest nesting from a `__schema` / `__type` field down (that field included); within an
    /// introspection selection, the nesting of the selection itself.
    intro_depth: usize,
    /// Weight of the introspection fields ([`MAX_INTROSPECTION_COST`]).
    intro_cost: u64,
}

impl Count {
    /// Siblings: sizes add up, depths take the deeper.
    fn add(self, o: Count) -> Count {
        Count {
            top: self.top.saturating_add(o.top),
            all: self.all.saturating_add(o.all),
            depth: self.depth.max(o.depth),
            intro_depth: self.intro_depth.max(o.intro_depth),
            intro_cost: self.intro_cost.saturating_add(o.intro_cost),
        }
    }
}

/// Whether a selection set is counted as introspection (below `__schema` / `__type`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    Plain,
    Introspection,
}

fn is_introspection_root(field: &str) -> bool {
    field == "__schema" || field == "__type"
}

struct Counter<'a> {
    doc: &'a ExecutableDocument,
    done: HashMap<(&'a Name, Mode), Count>,
    /// Fragments being counted (a cycle counts 0 here; validation refuses it afterwards).
    open: Vec<&'a Name>,
}

impl<'a> Counter<'a> {
    fn set(&mut self, set: &'a SelectionSet, mode: Mode) -> Count {
        let mut c = Count::default();
        for item in &set.items {
            let one = match &item.node {
                Selection::Field(f) => {
                    let name = f.node.name.node.as_str();
                    let inner = match mode {
                        Mode::Plain if is_introspection_root(name) => Mode::Introspection,
                        other => other,
                    };
                    let sub = self.set(&f.node.selection_set.node, inner);
                    let all = sub.all.saturating_add(1);
                    match (mode, inner) {
                        (Mode::Plain, Mode::Plain) => Count {
                            top: 1,
                            all,
                            depth: sub.depth.saturating_add(1),
                            ..sub
                        },
                        // `__schema` / `__type`: one level of the operation, the rest counted
                        // as introspection
                        (Mode::Plain, Mode::Introspection) => Count {
                            top: 1,
                            all,
                            depth: 1,
                            intro_depth: sub.intro_depth.saturating_add(1),
                            intro_cost: sub.intro_cost.saturating_add(1),
                        },
                        (Mode::Introspection, _) => Count {
                            top: 1,
                            all,
                            depth: 0,
                            intro_depth: sub.intro_depth.saturating_add(1),
                            intro_cost: sub
                                .intro_cost
                                .saturating_mul(introspection_list_len(name))
                                .saturating_add(1),
                        },
                    }
                }
                Selection::InlineFragment(i) => self.set(&i.node.selection_set.node, mode),
                Selection::FragmentSpread(s) => self.fragment(&s.node.fragment_name.node, mode),
            };
            c = c.add(one);
        }
        c
    }

    fn fragment(&mut self, name: &'a Name, mode: Mode) -> Count {
        if let Some(c) = self.done.get(&(name, mode)) {
            return *c;
        }
        if self.open.contains(&name) {
            return Count::default();
        }
        let Some(def) = self.doc.fragments.get(name) else {
            return Count::default(); // unknown fragment: validation says so
        };
        self.open.push(name);
        let c = self.set(&def.node.selection_set.node, mode);
        self.open.pop();
        self.done.insert((name, mode), c);
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
        let c = counter.set(&op.node.selection_set.node, Mode::Plain);
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
        if c.depth > crate::MAX_DEPTH {
            return Err(too_complex(format!(
                "The query is nested too deep ({} levels of fields; at most {}).",
                c.depth,
                crate::MAX_DEPTH
            )));
        }
        if c.intro_depth > MAX_INTROSPECTION_DEPTH {
            return Err(too_complex(format!(
                "The introspection query is nested too deep ({} levels of fields below \
                 __schema or __type; at most {MAX_INTROSPECTION_DEPTH}).",
                c.intro_depth
            )));
        }
        if c.intro_cost > MAX_INTROSPECTION_COST {
            return Err(too_complex(format!(
                "The introspection query asks for too much (it weighs {}, each list counting \
                 its typical length; at most {MAX_INTROSPECTION_COST}): nest fewer lists or ask \
                 for fewer fields.",
                if c.intro_cost == u64::MAX {
                    "more".to_owned()
                } else {
                    c.intro_cost.to_string()
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
/// Values an answer may be estimated to hold at most; a document estimated above is refused before
/// it runs (`TOO_LARGE`, as an answer over [`MAX_RESPONSE_BYTES`] is after it). Resolving ~36,000
/// slot objects (20 aliases of a 62-day window) held ~75 MB of the server's memory for one request;
/// at this ceiling the widest allowed document (10 such aliases) holds about half.
pub const MAX_VALUES: usize = 100_000;

/// An estimate of the values (objects, list items, fields) the answer to `op` of `doc` holds, from
/// the size arguments of its list fields: `availability` counts [`SLOTS_PER_DAY`] items per day of
/// its window (`days`, default 31; one day with `date`), `first` and `limit` their value, every
/// other field one. Fragments are counted once each and multiplied per spread (never expanded).
/// Compared with [`WIDE_VALUES`] (where a document runs) and [`MAX_VALUES`] (whether it runs).
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
        let a = normalise("{ availability(city: \"demo\", venueId: $v) { id free } }");
        let b =
            normalise("  {\n\n availability ( city :  \"demo\"  venueId:$v ) #x\n {id,,free}}   ");
        assert_eq!(a, b);
        assert_eq!(a, "{availability(city:\"demo\" venueId:$v){id free}}");
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
        let one = r#"{ availability(city: "demo", venueId: "x") { id free } }"#;
        // default window: 31 days of 30 slots, each with two fields
        assert_eq!(est(one, serde_json::json!({})), 31 * 30 * 3);
        let day =
            r#"query($d: Date) { availability(city: "demo", venueId: "x", date: $d) { id } }"#;
        assert_eq!(est(day, serde_json::json!({ "d": "2026-12-02" })), 30 * 2);
        assert_eq!(est(day, serde_json::json!({ "d": null })), 31 * 30 * 2);
        let widest = format!(
            "query($n: Int) {{ {} }}",
            (0..20)
                .map(|i| format!(r#"a{i}: availability(city: "demo", venueId: "x", days: $n) {{ id startsAt free mark }}"#))
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
        let spread = r#"{ ...F ...F } fragment F on Query { city(city: "demo") { slots(venueId: "x", first: 50) { id } } }"#;
        assert_eq!(est(spread, serde_json::json!({})), 2 * (1 + 50 * 2));
    }

    /// The weight of the introspection selections of a document (for the tests below).
    fn weight(query: &str) -> Count {
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        let mut counter = Counter {
            doc: &doc,
            done: HashMap::new(),
            open: Vec::new(),
        };
        let (_, op) = doc.operations.iter().next().expect("an operation");
        counter.set(&op.node.selection_set.node, Mode::Plain)
    }

    #[test]
    fn the_standard_introspection_query_is_within_every_limit() {
        for (name, q) in [
            (
                "graphql-js 16.15 getIntrospectionQuery()",
                include_str!("../fixtures/introspection.graphql"),
            ),
            (
                "the same with every option on",
                include_str!("../fixtures/introspection-all-options.graphql"),
            ),
        ] {
            let doc = async_graphql::parser::parse_query(q).expect("parses");
            check(&doc).unwrap_or_else(|e| panic!("{name}: {}", e.message));
            let c = weight(q);
            assert_eq!(c.depth, 1, "{name}");
            assert_eq!(c.intro_depth, 15, "{name}");
            assert!(c.all < MAX_FIELDS / 2, "{name}: {} fields", c.all);
            assert!(
                c.intro_cost > MAX_INTROSPECTION_COST / 3
                    && c.intro_cost <= MAX_INTROSPECTION_COST / 2 + MAX_INTROSPECTION_COST / 20,
                "{name}: weighs {}",
                c.intro_cost
            );
        }
        // twice in one request is too much
        let twice = "{ a: __schema { ...S } b: __schema { ...S } }
            fragment S on __Schema { types { ...FullType } directives { name args { ...InputValue } } }"
            .to_owned()
            + &include_str!("../fixtures/introspection.graphql")
                [include_str!("../fixtures/introspection.graphql").find("fragment FullType").expect("fragment")..];
        let doc = async_graphql::parser::parse_query(&twice).expect("parses");
        let e = check(&doc).expect_err("refused");
        assert!(e.message.contains("asks for too much"), "{}", e.message);
    }

    #[test]
    fn lists_of_lists_in_introspection_are_refused_and_of_type_chains_are_not() {
        let names: String = (0..60).map(|i| format!(" n{i}: name")).collect();
        let bomb =
            format!("{{ __schema {{ types {{ fields {{ type {{ fields {{{names} }} }} }} }} }} }}");
        let doc = async_graphql::parser::parse_query(&bomb).expect("parses");
        let e = check(&doc).expect_err("refused");
        assert!(e.message.contains("asks for too much"), "{}", e.message);

        // a long singular chain is cheap, up to the introspection depth
        let chain = |n: usize| {
            format!(
                "{{ __type(name: \"Query\") {{ fields {{ type {{ {}name{} }} }} }} }}",
                "ofType { ".repeat(n),
                " }".repeat(n)
            )
        };
        let ok = async_graphql::parser::parse_query(chain(12)).expect("parses");
        check(&ok).expect("within the limits");
        let deep = async_graphql::parser::parse_query(chain(13)).expect("parses");
        let e = check(&deep).expect_err("refused");
        assert!(e.message.contains("nested too deep"), "{}", e.message);
    }

    #[test]
    fn depth_outside_introspection_counts_fields_through_fragments() {
        let nest = |n: usize| format!("{{ {}x{} }}", "a { ".repeat(n - 1), " }".repeat(n - 1));
        let doc = async_graphql::parser::parse_query(nest(crate::MAX_DEPTH)).expect("parses");
        check(&doc).expect("at the limit");
        let doc = async_graphql::parser::parse_query(nest(crate::MAX_DEPTH + 1)).expect("parses");
        let e = check(&doc).expect_err("refused");
        assert!(e.message.contains("nested too deep"), "{}", e.message);
        // the same depth split over fragments
        let split = "{ a { ...F } } fragment F on A { b { c { d { e { f { ...G } } } } } }
            fragment G on F { g { h { i { j { k { l { m } } } } } } }";
        let doc = async_graphql::parser::parse_query(split).expect("parses");
        let e = check(&doc).expect_err("refused");
        assert!(e.message.contains("13 levels"), "{}", e.message);
    }
}
