//! Idempotency keys (claimed first in the booking's transaction, answered by replay) and the
//! savepoint every staff booking runs in.

use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::dose::Dose;
use super::error::BookingError;

/// The longest front-end key stored as typed; longer ones (up to 200) are stored as their SHA-256, so
/// that with a front end's prefix (`web:<resident>:`, 41 characters) the stored key stays within the
/// column's 8–200.
const STORED_AS_TYPED: usize = 150;

/// A front end's idempotency key, checked before anything is read or written: one line
/// ([`crate::text::clean_line`]: trimmed, no NUL or other control characters) of 8–200 characters
/// (docs/api.md), else [`BookingError::BadKey`] (`VALIDATION`). Returns the key part to store after
/// the front end's prefix: the key itself, or `sha256:<hex>` for keys over 150 characters (the same
/// key always gives the same part, so replays still match).
pub(crate) fn client_key(raw: &str) -> Result<String, BookingError> {
    let key = crate::text::clean_line("idempotency_key", raw).map_err(|_| BookingError::BadKey)?;
    let chars = key.chars().count();
    if !(8..=200).contains(&chars) {
        return Err(BookingError::BadKey);
    }
    if chars > STORED_AS_TYPED {
        return Ok(format!(
            "sha256:{}",
            hex::encode(Sha256::digest(key.as_bytes()))
        ));
    }
    Ok(key)
}

/// A whole stored key (prefix included) as the column takes it: one line of 8–200 characters.
pub(crate) fn check_stored_key(key: &str) -> Result<&str, BookingError> {
    let key = key.trim();
    let chars = key.chars().count();
    if !(8..=200).contains(&chars) || key.chars().any(char::is_control) {
        return Err(BookingError::BadKey);
    }
    Ok(key)
}

/// Claims the idempotency key for this transaction. `Some(result)` when the key was used before
/// (by a committed request): the caller returns that result and books nothing.
pub(crate) async fn claim_key(
    conn: &mut PgConnection,
    tenant: Uuid,
    key: &str,
    resident: Uuid,
) -> Result<Option<Vec<Uuid>>, BookingError> {
    let key = check_stored_key(key)?;
    let fresh = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, key, resident_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING RETURNING key",
    )
    .bind(tenant)
    .bind(key)
    .bind(resident)
    .fetch_optional(&mut *conn)
    .await?;
    if fresh.is_some() {
        return Ok(None);
    }
    let (owner, result): (Uuid, Option<serde_json::Value>) = sqlx::query_as(
        "SELECT resident_id, result FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_one(conn)
    .await?;
    if owner != resident {
        return Err(BookingError::KeyReused);
    }
    let ids = result
        .and_then(|r| serde_json::from_value::<Vec<Uuid>>(r).ok())
        .unwrap_or_default();
    Ok(Some(ids))
}

pub(crate) async fn store_result(
    conn: &mut PgConnection,
    tenant: Uuid,
    key: &str,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE idempotency_keys SET result = $3 WHERE tenant_id = $1 AND key = $2")
        .bind(tenant)
        .bind(key.trim())
        .bind(serde_json::json!(ids))
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) fn unique_violation_to_already(e: sqlx::Error, dose: Dose) -> BookingError {
    let is_dup = e
        .as_database_error()
        .and_then(|d| d.constraint())
        .is_some_and(|c| c == "bookings_one_live_per_dose");
    if is_dup {
        BookingError::AlreadyBooked { dose }
    } else {
        e.into()
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23505")
}

/// Runs one booking operation (`*_in`) in a savepoint of a staff scope's transaction: on success the savepoint
/// is released (the booking commits with the scope, together with its audit entry); on an error it
/// is rolled back, so nothing half-done can be committed by the caller.
macro_rules! in_savepoint {
    ($scope:expr, |$conn:ident| $op:expr) => {{
        let mut sp = sqlx::Connection::begin(&mut *$scope.tx).await?;
        let $conn: &mut sqlx::PgConnection = &mut sp;
        let result = $op.await;
        match result {
            Ok(v) => {
                sp.commit().await?;
                Ok(v)
            }
            Err(e) => {
                sp.rollback().await?;
                Err(e)
            }
        }
    }};
}
pub(crate) use in_savepoint;
