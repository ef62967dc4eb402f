//! Residents as the booking site knows them: identified by ticket number + birth date, proven by an
//! SMS code ([`auth`]), served by the resident desk ([`desk`]) — the one door the resident site and
//! the resident GraphQL fields go through; the city's register of eligible residents is loaded by
//! [`import`].
//!
//! Rules: a resident is found only by ticket number AND birth date (one answer for every wrong
//! combination); the login code is never stored; a front end reaches residents only through the
//! desk, which checks the tenant's status and the resident's session before anything else.

pub mod auth;
pub mod desk;
pub mod desk_error;
pub mod import;
pub mod import_runs;
pub mod register;
pub mod sessions;

use chrono::NaiveDate;
use sqlx::PgConnection;
use uuid::Uuid;

/// The resident with this ticket number and birth date, if both match. One answer (`None`) for every
/// wrong combination, so the response tells an attacker nothing about which half was wrong.
pub async fn find_by_ticket(
    conn: &mut PgConnection,
    ticket_no: &str,
    birth_date: NaiveDate,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM residents WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid \
         AND ticket_no = $1 AND birth_date = $2",
    )
    .bind(ticket_no.trim())
    .bind(birth_date)
    .fetch_optional(conn)
    .await
}

/// A birth date as residents type it: `1980-04-01`, `1980/4/1`, `1980.4.1` or `19800401`.
pub fn parse_birth_date(raw: &str) -> Option<NaiveDate> {
    let cleaned: String = raw
        .trim()
        .chars()
        .map(|c| if c == '/' || c == '.' { '-' } else { c })
        .collect();
    NaiveDate::parse_from_str(&cleaned, "%Y-%m-%d")
        .ok()
        .or_else(|| NaiveDate::parse_from_str(&cleaned, "%Y%m%d").ok())
}
