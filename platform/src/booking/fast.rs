//! The fast path: one person, dose 1, one slot, decided by one statement (`book_first_dose`).

use sqlx::{PgPool, Row};
use tenants::Tenant;
use uuid::Uuid;

use super::bookings::{Booking, load};
use super::dose::Dose;
use super::error::BookingError;
use super::keys::is_unique_violation;
use crate::notifications::outbox::{Notification, NotifyTask};

/// Who asks for a fast-path booking: a resident already identified (resident site), or the bearer
/// of a resident token (API), checked inside the same statement.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    Resident(Uuid),
    Token(&'a str),
}

/// What the fast path did.
#[derive(Debug)]
pub enum FastOutcome {
    /// Booked now, or the replay of an earlier request with the same key.
    Done(Vec<Booking>),
    /// The token names no live session.
    Unauthenticated,
    /// The single statement could not decide (a concurrent duplicate, or the person already holds a
    /// dose-1 booking): run the general path, which answers exactly.
    Fallback,
}

/// One first-dose request of the fast path, ready for `book_first_dose` or, with others,
/// `book_first_doses` (crate::booking::batch).
#[derive(Debug)]
pub(crate) struct FastRequest {
    pub token_hash: Option<Vec<u8>>,
    pub resident: Option<Uuid>,
    pub slot: Uuid,
    pub prefix: Option<&'static str>,
    pub key: String,
    pub booking: Uuid,
    /// The confirmation's task in the job runtime: id, `<tenant>/<key>`, arguments.
    pub job: String,
    pub job_key: String,
    pub payload: Vec<u8>,
}

/// Checks what can be checked without the database; `Err(outcome)` answers at once.
pub(crate) fn fast_request(
    tenant: &Tenant,
    caller: Caller<'_>,
    slot: Uuid,
    key: &str,
) -> Result<Result<FastRequest, FastOutcome>, BookingError> {
    let key = key.trim();
    let (token_hash, resident, prefix) = match caller {
        Caller::Resident(r) => (None, Some(r), None),
        Caller::Token(t) => {
            if crate::residents::auth::tenant_of_token(t) != Some(tenant.id) {
                return Ok(Err(FastOutcome::Unauthenticated));
            }
            (
                Some(crate::residents::auth::token_hash(t)),
                None,
                Some("api:"),
            )
        }
    };
    // the whole stored key (the statement adds `api:<resident>:` for a token) must fit the column
    super::keys::check_stored_key(key)?;
    let full_len = key.chars().count() + prefix.map_or(0, |p| p.len() + 37);
    if full_len > 200 {
        return Err(BookingError::BadKey);
    }
    let booking = Uuid::now_v7();
    let job_key = format!("booking-confirmed:{booking}");
    let payload = NotifyTask {
        tenant: tenant.id.0,
        key: job_key.clone(),
        note: Notification::BookingConfirmed {
            booking_id: booking,
        },
    }
    .encode()?;
    Ok(Ok(FastRequest {
        token_hash,
        resident,
        slot,
        prefix,
        key: key.to_owned(),
        booking,
        job: crate::jobs::new_task_id(),
        job_key: crate::jobs::tenant_key(tenant.id.0, &job_key),
        payload,
    }))
}

/// The fast path of [`book`]: one person, dose 1, one slot — one round trip to PostgreSQL (the
/// function `book_first_dose`, migrations/20261122000001_dose2_reserve_and_fast_path.sql, which
/// keeps every invariant of this module). `key` is the whole idempotency key for
/// [`Caller::Resident`] and the part after `api:<resident>:` for [`Caller::Token`]. Requests that
/// arrive together are better sent through [`crate::booking::batch::Batcher`], which decides many
/// in one statement.
pub async fn book_first_dose(
    pool: &PgPool,
    tenant: &Tenant,
    caller: Caller<'_>,
    slot: Uuid,
    key: &str,
) -> Result<FastOutcome, BookingError> {
    match fast_request(tenant, caller, slot, key)? {
        Ok(req) => book_one_first_dose(pool, tenant, &req).await,
        Err(early) => Ok(early),
    }
}

/// Who decides a fast-path booking: the database itself ([`PgPool`]: one statement per request)
/// or a [`super::batch::Batcher`] (one statement per batch). [`super::book`] and
/// [`super::book_batched`] differ only in this.
pub trait FastPath {
    fn book_first_dose(
        &self,
        tenant: &Tenant,
        caller: Caller<'_>,
        slot: Uuid,
        key: &str,
    ) -> impl Future<Output = Result<FastOutcome, BookingError>> + Send;
}

impl FastPath for PgPool {
    fn book_first_dose(
        &self,
        tenant: &Tenant,
        caller: Caller<'_>,
        slot: Uuid,
        key: &str,
    ) -> impl Future<Output = Result<FastOutcome, BookingError>> + Send {
        book_first_dose(self, tenant, caller, slot, key)
    }
}

pub(crate) async fn book_one_first_dose(
    pool: &PgPool,
    tenant: &Tenant,
    req: &FastRequest,
) -> Result<FastOutcome, BookingError> {
    let row =
        sqlx::query("SELECT * FROM book_first_dose($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
            .bind(tenant.id.0)
            .bind(req.token_hash.as_deref())
            .bind(req.resident)
            .bind(req.slot)
            .bind(req.prefix)
            .bind(&req.key)
            .bind(req.booking)
            .bind(req.booking)
            .bind(&req.job)
            .bind(&req.job_key)
            .bind(&req.payload)
            .fetch_one(pool)
            .await;
    match row {
        Ok(r) => fast_outcome(pool, tenant, req.booking, &r).await,
        Err(e) if is_unique_violation(&e) => Ok(FastOutcome::Fallback),
        Err(e) => Err(e.into()),
    }
}

/// What a row of `book_first_dose` / `book_first_doses` says. `fallback` (batch only: run the
/// request alone) is answered as [`FastOutcome::Fallback`]; the batcher handles it before.
pub(crate) async fn fast_outcome(
    pool: &PgPool,
    tenant: &Tenant,
    id: Uuid,
    row: &sqlx::postgres::PgRow,
) -> Result<FastOutcome, BookingError> {
    let outcome: String = row.try_get("out_outcome")?;
    let resident: Option<Uuid> = row.try_get("out_resident")?;
    match outcome.as_str() {
        "booked" => Ok(FastOutcome::Done(vec![Booking {
            id,
            resident_id: resident.unwrap_or_default(),
            slot_id: row.try_get("out_slot")?,
            venue_id: row.try_get("out_venue")?,
            venue_name: row.try_get("out_venue_name")?,
            vaccine_name: row.try_get("out_vaccine_name")?,
            dose: Dose::First,
            status: "booked".into(),
            starts_at: row.try_get("out_starts_at")?,
            ends_at: row.try_get("out_ends_at")?,
            group_id: id,
            change_until: row.try_get("out_change_until")?,
        }])),
        "replay" => {
            let result: Option<serde_json::Value> = row.try_get("out_result")?;
            let ids = result
                .and_then(|r| serde_json::from_value::<Vec<Uuid>>(r).ok())
                .unwrap_or_default();
            let mut tx = tenants::begin(pool, tenant.id).await?;
            let found = load(&mut tx, tenant.id.0, &ids).await?;
            tx.commit().await?;
            Ok(FastOutcome::Done(found))
        }
        "unauthenticated" => Ok(FastOutcome::Unauthenticated),
        "fallback" => Ok(FastOutcome::Fallback),
        "key_reused" => Err(BookingError::KeyReused),
        "not_found" => Err(BookingError::NotFound),
        "deadline" => Err(BookingError::DeadlinePassed),
        "not_open" => Err(BookingError::NotOpenYet),
        _ => Err(BookingError::Full),
    }
}
