//! The call centre (docs/callcenter.md): find a caller by kana name, birth date and ticket number,
//! see their bookings, and book / change / cancel on their behalf with the resident site's rules.
//!
//! * Search folds the operator's kana input with [`kana_fold`] (hiragana → katakana, half-width →
//!   full-width, no spaces) and matches it anywhere in `residents.kana_search`, the same folding done
//!   by the database (`yoyaku_kana_fold`) in a generated, trigram-indexed column.
//! * Booking goes through [`crate::booking`]'s `*_in` functions (same invariants: never overbook,
//!   dose rules, deadlines, idempotency, outbox) run in a savepoint of the staff scope, so the
//!   booking and the audit entry naming the staff member commit together or not at all.
//! * Every search and every view of a caller's details is a view of personal data: audited.
//! * Search input with a NUL or another control character is refused ([`QueryError::BadText`]);
//!   a resident id the city does not have is "not found" (never an internal error).
//! * The deadline override is a capability ([`DeadlineOverride`]) handed out only to actors the
//!   guard allows `booking_override` (city admins); using it is audited as such.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use sqlx::{PgPool, Row};
use tenants::Tenant;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::booking::{self, Booking, BookingError, Dose};
use crate::staff::audit;
use crate::staff::authz::{Act, Authz, Object, Scope};

/// Folds a kana name for searching: NFKC (half-width katakana such as `ﾔﾏﾀﾞ` become `ヤマダ`,
/// full-width letters and digits become ASCII), hiragana become katakana, white space (also the
/// full-width space) is dropped. The SQL function `yoyaku_kana_fold` does the same to stored names.
pub fn kana_fold(input: &str) -> String {
    input
        .nfkc()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            // ぁ (U+3041) … ゖ (U+3096) → ァ (U+30A1) … ヶ (U+30F6); ゝゞ → ヽヾ
            '\u{3041}'..='\u{3096}' | '\u{309D}' | '\u{309E}' => {
                char::from_u32(c as u32 + 0x60).unwrap_or(c)
            }
            _ => c,
        })
        .collect()
}

/// At most this many callers are listed; more means "narrow the search down".
pub const SEARCH_LIMIT: usize = 50;

/// What the operator typed, parsed at the edge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallerQuery {
    /// Folded kana (may be empty).
    pub kana: String,
    pub birth_date: Option<NaiveDate>,
    /// Ticket-number digits, matched as a prefix (may be empty).
    pub ticket_prefix: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("enter a kana name, a birth date or a ticket number")]
    Empty,
    #[error("the birth date must look like 1956-04-04")]
    BirthDate,
    #[error("the ticket number has only digits (up to 10)")]
    Ticket,
    /// A NUL or another control character ([`crate::text::clean_line`]).
    #[error("the search contains a control character (such as NUL); remove it and try again")]
    BadText,
}

impl QueryError {
    pub fn message_ja(&self) -> &'static str {
        match self {
            Self::Empty => "カナ氏名・生年月日・接種券番号のいずれかを入力してください。",
            Self::BirthDate => "生年月日は 1956-04-04 の形で入力してください。",
            Self::Ticket => "接種券番号は数字（10桁まで）で入力してください。",
            Self::BadText => {
                "使用できない文字（制御文字）が含まれています。取り除いてからもう一度検索してください。"
            }
        }
    }
}

impl CallerQuery {
    /// Birth dates are accepted as `1956-04-04`, `1956/4/4` or `19560404`; full-width digits too.
    pub fn parse(kana: &str, birth_date: &str, ticket: &str) -> Result<Self, QueryError> {
        for typed in [kana, birth_date, ticket] {
            crate::text::clean_line("search", typed).map_err(|_| QueryError::BadText)?;
        }
        let kana = kana_fold(kana);
        let birth: String = birth_date.nfkc().filter(|c| !c.is_whitespace()).collect();
        let birth_date = if birth.is_empty() {
            None
        } else {
            Some(parse_birth_date(&birth).ok_or(QueryError::BirthDate)?)
        };
        let ticket: String = ticket.nfkc().filter(|c| !c.is_whitespace()).collect();
        if ticket.len() > 10 || !ticket.chars().all(|c| c.is_ascii_digit()) {
            return Err(QueryError::Ticket);
        }
        if kana.is_empty() && birth_date.is_none() && ticket.is_empty() {
            return Err(QueryError::Empty);
        }
        Ok(Self {
            kana,
            birth_date,
            ticket_prefix: ticket,
        })
    }
}

fn parse_birth_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y/%m/%d"))
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y%m%d"))
        .ok()
}

/// `%`, `_` and `\` in user input are literal characters in a LIKE pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One line of the search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: Uuid,
    pub ticket_no: String,
    pub kana_name: String,
    pub birth_date: NaiveDate,
    pub sex: String,
}

/// Callers matching every given criterion (at most [`SEARCH_LIMIT`] + 1, so the page can say
/// "more"). Audited with the criteria and the residents shown.
pub async fn search(scope: &mut Scope, q: &CallerQuery) -> Result<Vec<Caller>, sqlx::Error> {
    // Only the filters that were given, so the planner sees plain predicates it can index.
    let mut sql = String::from(
        "SELECT id, ticket_no, kana_name, birth_date, sex FROM residents WHERE tenant_id = $1",
    );
    if !q.kana.is_empty() {
        sql.push_str(" AND kana_search LIKE '%' || $2 || '%'");
    }
    if q.birth_date.is_some() {
        sql.push_str(" AND birth_date = $3");
    }
    if !q.ticket_prefix.is_empty() {
        sql.push_str(" AND ticket_no LIKE $4 || '%'");
    }
    sql.push_str(" ORDER BY kana_search, birth_date, ticket_no LIMIT $5");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(scope.tenant_id().0)
        .bind(like_escape(&q.kana))
        .bind(q.birth_date)
        .bind(&q.ticket_prefix)
        .bind(SEARCH_LIMIT as i64 + 1)
        .fetch_all(&mut *scope.tx)
        .await?;
    let found = rows
        .iter()
        .map(|r| {
            Ok(Caller {
                id: r.try_get("id")?,
                ticket_no: r.try_get("ticket_no")?,
                kana_name: r.try_get("kana_name")?,
                birth_date: r.try_get("birth_date")?,
                sex: r.try_get("sex")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    audit::record(
        scope,
        "callcenter.search",
        "residents",
        json!({
            "kana": q.kana,
            "birth_date": q.birth_date,
            "ticket_prefix": q.ticket_prefix,
            "shown": found.iter().take(SEARCH_LIMIT).map(|c| c.id).collect::<Vec<_>>(),
        }),
    )
    .await?;
    Ok(found)
}

/// A caller's details as the operator sees them.
#[derive(Debug, Clone)]
pub struct CallerDetail {
    pub id: Uuid,
    pub ticket_no: String,
    pub kana_name: String,
    pub birth_date: NaiveDate,
    pub sex: String,
    pub phone: Option<String>,
    pub email: Option<String>,
}

/// A caller's details (audited as a personal-data view). `None` when there is no such resident in
/// the tenant.
pub async fn caller(scope: &mut Scope, id: Uuid) -> Result<Option<CallerDetail>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, ticket_no, kana_name, birth_date, sex, phone, email FROM residents \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(scope.tenant_id().0)
    .bind(id)
    .fetch_optional(&mut *scope.tx)
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let detail = CallerDetail {
        id: r.try_get("id")?,
        ticket_no: r.try_get("ticket_no")?,
        kana_name: r.try_get("kana_name")?,
        birth_date: r.try_get("birth_date")?,
        sex: r.try_get("sex")?,
        phone: r.try_get("phone")?,
        email: r.try_get("email")?,
    };
    audit::record(
        scope,
        "callcenter.view",
        &format!("resident/{id}"),
        json!({}),
    )
    .await?;
    Ok(Some(detail))
}

/// The caller's bookings (their own and those they made for others), live ones first.
pub async fn bookings(
    pool: &PgPool,
    tenant: &Tenant,
    resident: Uuid,
) -> Result<Vec<Booking>, sqlx::Error> {
    booking::my_bookings(pool, tenant, resident).await
}

/// A slot the operator can offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotChoice {
    pub id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub free: i32,
    /// Past the venue's booking deadline: bookable only with a [`DeadlineOverride`].
    pub past_deadline: bool,
}

/// The venue's slots on a local day that have free seats and have not started.
pub async fn free_slots(
    scope: &mut Scope,
    venue: Uuid,
    day: NaiveDate,
) -> Result<Vec<SlotChoice>, sqlx::Error> {
    type SlotRow = (Uuid, DateTime<Utc>, DateTime<Utc>, i32, bool);
    let rows: Vec<SlotRow> = sqlx::query_as(
        "SELECT s.id, s.starts_at, s.ends_at, s.capacity - s.booked, \
                s.starts_at - make_interval(hours => v.booking_deadline_hours) <= now() \
           FROM slots s \
           JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
           JOIN tenants t ON t.id = s.tenant_id \
         WHERE s.tenant_id = $1 AND s.venue_id = $2 AND (s.starts_at AT TIME ZONE t.time_zone)::date = $3 \
           AND s.booked < s.capacity AND s.starts_at > now() ORDER BY s.starts_at",
    )
    .bind(scope.tenant_id().0)
    .bind(venue)
    .bind(day)
    .fetch_all(&mut *scope.tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, starts_at, ends_at, free, past_deadline)| SlotChoice {
            id,
            starts_at,
            ends_at,
            free,
            past_deadline,
        })
        .collect())
}

/// Permission to pass a deadline or cut-off on a resident's behalf. Only [`may_override`] makes one.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineOverride(());

/// The override capability, if the scope's actor may use it (guard object `booking_override`).
pub async fn may_override(authz: &Authz, scope: &Scope) -> Option<DeadlineOverride> {
    authz
        .check(
            &scope.actor,
            scope.tenant_id(),
            Object::BookingOverride,
            Act::Write,
        )
        .await
        .ok()
        .filter(|allowed| *allowed)
        .map(|_| DeadlineOverride(()))
}

/// Tries `op` with the residents' rules; if it was refused only for a deadline or the cut-off and
/// the operator holds a [`DeadlineOverride`], tries again passing them. Returns whether the override
/// was needed.
macro_rules! with_override {
    ($scope:expr, $override:expr, |$conn:ident, $pass:ident| $op:expr) => {{
        let first: Result<_, BookingError> = {
            let $pass = booking::Pass::NONE;
            crate::booking::in_savepoint!($scope, |$conn| $op)
        };
        match first {
            Ok(v) => Ok((v, false)),
            Err(BookingError::DeadlinePassed | BookingError::CutoffPassed)
                if $override.is_some() =>
            {
                let $pass = booking::Pass::DEADLINES;
                let v: Result<_, BookingError> = crate::booking::in_savepoint!($scope, |$conn| $op);
                v.map(|v| (v, true))
            }
            Err(e) => Err(e),
        }
    }};
}

/// A resident id from the operator's form: one the city does not have (another city's, or none) is
/// "not found" before anything is written — never a foreign-key violation (an internal error).
async fn known_resident(scope: &mut Scope, resident: Uuid) -> Result<(), BookingError> {
    let known: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM residents WHERE tenant_id = $1 AND id = $2)",
    )
    .bind(scope.tenant_id().0)
    .bind(resident)
    .fetch_one(&mut *scope.tx)
    .await?;
    if known {
        Ok(())
    } else {
        Err(BookingError::NotFound)
    }
}

/// Books for a caller with the resident site's rules ([`booking::book_in`]: seats, dose rules,
/// deadlines, idempotency, outbox) in the scope's transaction, and records who did it there: the
/// booking and its audit entry commit together when the caller commits the scope. With a
/// [`DeadlineOverride`], a slot past its booking deadline (not yet over) can be booked; that is
/// audited as `callcenter.book_override`. Returns the bookings and whether the override was used.
pub async fn book_for(
    scope: &mut Scope,
    tenant: &Tenant,
    resident: Uuid,
    slot: Uuid,
    dose: Dose,
    idempotency_key: &str,
    override_deadline: Option<DeadlineOverride>,
) -> Result<(Vec<Booking>, bool), BookingError> {
    known_resident(scope, resident).await?;
    let req = booking::BookRequest {
        resident_id: resident,
        slot_id: slot,
        dose,
        companions: Vec::new(),
        second_dose_slot: None,
        idempotency_key: idempotency_key.to_owned(),
    };
    let decided = with_override!(scope, override_deadline, |conn, pass| {
        booking::book_in(conn, tenant, &req, false, pass)
    });
    booking::record_decision(
        tenant.id,
        booking::Door::CallCentre,
        decided
            .as_ref()
            .map_or_else(BookingError::outcome, |_| "booked"),
    );
    let (booked, overridden) = decided?;
    audit::record(
        scope,
        if overridden {
            "callcenter.book_override"
        } else {
            "callcenter.book"
        },
        &format!("resident/{resident}"),
        json!({
            "slot": slot,
            "dose": dose.number(),
            "bookings": booked.iter().map(|b| b.id).collect::<Vec<_>>(),
        }),
    )
    .await?;
    Ok((booked, overridden))
}

/// Moves a caller's booking to another slot ([`booking::change_in`]) in the scope's transaction,
/// audited there. With a [`DeadlineOverride`], past the change cut-off or into a slot past its
/// booking deadline (`callcenter.change_override`).
pub async fn change_for(
    scope: &mut Scope,
    tenant: &Tenant,
    resident: Uuid,
    booking_id: Uuid,
    new_slot: Uuid,
    idempotency_key: &str,
    override_deadline: Option<DeadlineOverride>,
) -> Result<(Booking, bool), BookingError> {
    known_resident(scope, resident).await?;
    let (moved, overridden) = with_override!(scope, override_deadline, |conn, pass| {
        booking::change_in(
            conn,
            tenant,
            resident,
            booking_id,
            new_slot,
            idempotency_key,
            pass,
        )
    })?;
    audit::record(
        scope,
        if overridden {
            "callcenter.change_override"
        } else {
            "callcenter.change"
        },
        &format!("booking/{booking_id}"),
        json!({ "resident": resident, "slot": new_slot }),
    )
    .await?;
    Ok((moved, overridden))
}

/// Cancels a caller's booking ([`booking::cancel_in`]: seat released, notification queued) in the
/// scope's transaction, audited there. Past the cut-off only with a [`DeadlineOverride`]
/// (`callcenter.cancel_override`). Returns the booking and whether the override was used.
pub async fn cancel_for(
    scope: &mut Scope,
    tenant: &Tenant,
    resident: Uuid,
    booking_id: Uuid,
    idempotency_key: &str,
    override_cutoff: Option<DeadlineOverride>,
) -> Result<(Booking, bool), BookingError> {
    known_resident(scope, resident).await?;
    let (cancelled, overridden) = with_override!(scope, override_cutoff, |conn, pass| {
        booking::cancel_in(conn, tenant, resident, booking_id, idempotency_key, pass)
    })?;
    let (action, detail) = if overridden {
        (
            "callcenter.cancel_override",
            json!({ "resident": resident, "reason": "change/cancel cut-off passed; overridden by staff" }),
        )
    } else {
        ("callcenter.cancel", json!({ "resident": resident }))
    };
    audit::record(scope, action, &format!("booking/{booking_id}"), detail).await?;
    Ok((cancelled, overridden))
}

/// The resident a booking of the city is for; "not found" for another city's id or none.
async fn resident_of_booking(scope: &mut Scope, booking_id: Uuid) -> Result<Uuid, BookingError> {
    sqlx::query_scalar("SELECT resident_id FROM bookings WHERE tenant_id = $1 AND id = $2")
        .bind(scope.tenant_id().0)
        .bind(booking_id)
        .fetch_optional(&mut *scope.tx)
        .await?
        .ok_or(BookingError::NotFound)
}

/// [`change_for`] for callers who know the booking but not the resident (GraphQL's
/// `changeBookingOnBehalf`): the booking names its resident.
pub async fn change_booking(
    scope: &mut Scope,
    tenant: &Tenant,
    booking_id: Uuid,
    new_slot: Uuid,
    idempotency_key: &str,
    override_deadline: Option<DeadlineOverride>,
) -> Result<(Booking, bool), BookingError> {
    let resident = resident_of_booking(scope, booking_id).await?;
    change_for(
        scope,
        tenant,
        resident,
        booking_id,
        new_slot,
        idempotency_key,
        override_deadline,
    )
    .await
}

/// [`cancel_for`] by the booking alone (GraphQL's `cancelBookingOnBehalf`).
pub async fn cancel_booking(
    scope: &mut Scope,
    tenant: &Tenant,
    booking_id: Uuid,
    idempotency_key: &str,
    override_cutoff: Option<DeadlineOverride>,
) -> Result<(Booking, bool), BookingError> {
    let resident = resident_of_booking(scope, booking_id).await?;
    cancel_for(
        scope,
        tenant,
        resident,
        booking_id,
        idempotency_key,
        override_cutoff,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hiragana_katakana_and_half_width_fold_to_one_form() {
        assert_eq!(kana_fold("ヤマダ タロウ"), "ヤマダタロウ");
        assert_eq!(kana_fold("やまだ　たろう"), "ヤマダタロウ");
        assert_eq!(kana_fold("ﾔﾏﾀﾞ ﾀﾛｳ"), "ヤマダタロウ");
        assert_eq!(kana_fold("ﾊﾟﾊﾟ"), "パパ");
        assert_eq!(kana_fold("ゔぁ"), "ヴァ");
        assert_eq!(kana_fold("ｽｽﾞｷ ｰ"), "スズキー");
        assert_eq!(kana_fold("ＡＢｃ１２"), "ABc12");
        assert_eq!(kana_fold("いすゞ"), "イスヾ");
        assert_eq!(kana_fold("  "), "");
    }

    #[test]
    fn queries_are_parsed_at_the_edge() {
        let q = CallerQuery::parse("やまだ", "1956/4/4", "").expect("valid");
        assert_eq!(q.kana, "ヤマダ");
        assert_eq!(q.birth_date, NaiveDate::from_ymd_opt(1956, 4, 4));
        let q = CallerQuery::parse("", "１９５６０４０４", "１０００").expect("full-width digits");
        assert_eq!(q.birth_date, NaiveDate::from_ymd_opt(1956, 4, 4));
        assert_eq!(q.ticket_prefix, "1000");
        assert_eq!(CallerQuery::parse(" ", "", ""), Err(QueryError::Empty));
        assert_eq!(
            CallerQuery::parse("ヤ", "1956-13-01", ""),
            Err(QueryError::BirthDate)
        );
        assert_eq!(CallerQuery::parse("", "", "12a"), Err(QueryError::Ticket));
    }

    #[test]
    fn like_wildcards_in_input_are_literal() {
        assert_eq!(like_escape("a%b_c\\"), "a\\%b\\_c\\\\");
    }
}
