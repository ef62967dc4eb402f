//! The city's register of eligible residents, page by page, for staff and integrators (GraphQL
//! `city { residents }`; the admin UI looks residents up one at a time by ticket number).
//!
//! * **Order**: ticket number (unique in the city, never changed by an import, which upserts by
//!   it), as a keyset: a page is "the `first` residents whose ticket number follows the one
//!   `after` names". Paging to the end sees every resident that existed when paging began exactly
//!   once; residents imported meanwhile appear if their ticket number sorts after the page.
//! * **Search** (optional): digits are a ticket-number prefix; anything else is part of the kana
//!   name, folded like the call centre's search ([`crate::callcenter::kana_fold`]: hiragana,
//!   half-width and spaces do not matter).
//! * **Personal data**: every page is a view of it and goes to the audit log once
//!   (`residents.list`, with the search and the residents shown), whoever asks.

use chrono::NaiveDate;
use serde_json::json;
use sqlx::Row as _;
use uuid::Uuid;

use crate::city::setup::Resident;
use crate::staff::audit;
use crate::staff::authz::Scope;

/// The largest page.
pub const MAX_PAGE: i64 = 200;
/// The longest search text.
pub const MAX_SEARCH: usize = 100;

/// Why a page could not be read; each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(
        "`after` is not a cursor of this list: pass an `endCursor` or edge `cursor` exactly as it was returned"
    )]
    BadCursor,
    #[error("`first` must be between 1 and 200")]
    BadFirst,
    #[error("`search` must be one line of at most 100 characters")]
    BadSearch,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// One page of residents.
#[derive(Debug, Clone)]
pub struct ResidentPage {
    pub residents: Vec<Resident>,
    /// More residents follow the last one of this page (with the same search).
    pub has_next: bool,
}

const CURSOR_PREFIX: &str = "resident:";

/// The opaque cursor of a resident in [`page`]'s order: base64url of `resident:<ticket no>`.
pub fn cursor_of(ticket_no: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{ticket_no}"))
}

/// The ticket number inside a cursor from [`cursor_of`].
pub fn parse_cursor(cursor: &str) -> Result<String, RegisterError> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| RegisterError::BadCursor)?;
    let text = String::from_utf8(raw).map_err(|_| RegisterError::BadCursor)?;
    text.strip_prefix(CURSOR_PREFIX)
        .filter(|t| !t.is_empty() && t.len() <= 40 && !t.chars().any(char::is_control))
        .map(str::to_owned)
        .ok_or(RegisterError::BadCursor)
}

/// The search as the SQL takes it: (ticket prefix, escaped LIKE pattern of the folded kana).
fn search_terms(search: Option<&str>) -> Result<(Option<String>, Option<String>), RegisterError> {
    let Some(raw) = search else {
        return Ok((None, None));
    };
    let s = crate::text::clean_line("search", raw).map_err(|_| RegisterError::BadSearch)?;
    if s.chars().count() > MAX_SEARCH {
        return Err(RegisterError::BadSearch);
    }
    if s.is_empty() {
        return Ok((None, None));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok((Some(s), None));
    }
    let folded = crate::callcenter::kana_fold(&s)
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Ok((None, Some(format!("%{folded}%"))))
}

const FILTER: &str = "($2::text IS NULL OR starts_with(ticket_no, $2)) \
     AND ($3::text IS NULL OR kana_search LIKE $3)";

fn resident_from(r: &sqlx::postgres::PgRow) -> Result<Resident, sqlx::Error> {
    Ok(Resident {
        id: r.try_get("id")?,
        ticket_no: r.try_get("ticket_no")?,
        birth_date: r.try_get::<NaiveDate, _>("birth_date")?,
        kana_name: r.try_get("kana_name")?,
        sex: r.try_get("sex")?,
        phone: r.try_get("phone")?,
        email: r.try_get("email")?,
        postal_code: r.try_get("postal_code")?,
        preferred_locale: r.try_get("preferred_locale")?,
    })
}

/// A page of the city's residents in ticket-number order (audited: `residents.list`).
pub async fn page(
    scope: &mut Scope,
    search: Option<&str>,
    after: Option<&str>,
    first: i64,
) -> Result<ResidentPage, RegisterError> {
    if !(1..=MAX_PAGE).contains(&first) {
        return Err(RegisterError::BadFirst);
    }
    let after_ticket = after.map(parse_cursor).transpose()?;
    let (prefix, kana) = search_terms(search)?;
    let sql = format!(
        "SELECT id, ticket_no, birth_date, kana_name, sex, phone, email, postal_code, preferred_locale \
         FROM residents WHERE tenant_id = $1 AND {FILTER} AND ($4::text IS NULL OR ticket_no > $4) \
         ORDER BY ticket_no LIMIT $5"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_id().0)
        .bind(&prefix)
        .bind(&kana)
        .bind(&after_ticket)
        .bind(first + 1)
        .fetch_all(&mut *scope.tx)
        .await?;
    let mut residents = rows
        .iter()
        .map(resident_from)
        .collect::<Result<Vec<_>, _>>()?;
    let has_next = residents.len() as i64 > first;
    residents.truncate(first as usize);
    audit::record(
        scope,
        "residents.list",
        "residents",
        json!({
            "search": search,
            "after": after_ticket,
            "shown": residents.iter().map(|r| r.id).collect::<Vec<Uuid>>(),
        }),
    )
    .await?;
    Ok(ResidentPage {
        residents,
        has_next,
    })
}

/// How many residents match the search (all pages together); counts, names nobody.
pub async fn count(scope: &mut Scope, search: Option<&str>) -> Result<i64, RegisterError> {
    let (prefix, kana) = search_terms(search)?;
    let sql = format!("SELECT count(*) FROM residents WHERE tenant_id = $1 AND {FILTER}");
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_id().0)
        .bind(&prefix)
        .bind(&kana)
        .fetch_one(&mut *scope.tx)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        assert_eq!(
            parse_cursor(&cursor_of("1000000001")).ok().as_deref(),
            Some("1000000001")
        );
        assert!(matches!(
            parse_cursor("bm9wZQ"),
            Err(RegisterError::BadCursor)
        ));
        assert!(matches!(parse_cursor("%%%"), Err(RegisterError::BadCursor)));
    }

    #[test]
    fn digits_search_the_ticket_and_text_the_folded_kana_with_wildcards_escaped() {
        assert_eq!(
            search_terms(Some("10000")).ok(),
            Some((Some("10000".into()), None))
        );
        let (_, kana) = search_terms(Some("やまだ 100%_")).expect("ok");
        assert_eq!(kana.as_deref(), Some("%ヤマダ100\\%\\_%"));
        assert!(matches!(
            search_terms(Some("a\u{0}b")),
            Err(RegisterError::BadSearch)
        ));
    }
}
