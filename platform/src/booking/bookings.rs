//! A booking as residents and integrators see it, and reading bookings back (by id, or a resident's own).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};
use tenants::Tenant;
use uuid::Uuid;

use super::dose::{BadDose, Dose};

/// A booking as residents and integrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Booking {
    pub id: Uuid,
    pub resident_id: Uuid,
    pub slot_id: Uuid,
    pub venue_id: Uuid,
    pub venue_name: String,
    pub vaccine_name: String,
    pub dose: Dose,
    pub status: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub group_id: Uuid,
    /// The last moment the resident may change or cancel it.
    pub change_until: DateTime<Utc>,
}

/// The columns of [`Booking`], shared by every query that returns bookings.
macro_rules! booking_select {
    () => {
        concat!(
            "SELECT b.id, b.resident_id, b.slot_id, s.venue_id, v.name AS venue_name, x.name AS vaccine_name, ",
            "b.dose, b.status, s.starts_at, s.ends_at, b.group_id, ",
            "s.starts_at - make_interval(days => v.cancel_cutoff_days) AS change_until ",
            "FROM bookings b JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id ",
            "JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id ",
            "JOIN vaccines x ON x.tenant_id = b.tenant_id AND x.id = b.vaccine_id ",
        )
    };
}

pub(crate) fn booking_from_row(r: &sqlx::postgres::PgRow) -> Result<Booking, sqlx::Error> {
    Ok(Booking {
        id: r.try_get("id")?,
        resident_id: r.try_get("resident_id")?,
        slot_id: r.try_get("slot_id")?,
        venue_id: r.try_get("venue_id")?,
        venue_name: r.try_get("venue_name")?,
        vaccine_name: r.try_get("vaccine_name")?,
        dose: {
            let n: i16 = r.try_get("dose")?;
            Dose::from_number(n)
                .ok_or_else(|| sqlx::Error::Decode(BadDose(n.to_string()).into()))?
        },
        status: r.try_get("status")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
        group_id: r.try_get("group_id")?,
        change_until: r.try_get("change_until")?,
    })
}

pub(crate) async fn load(
    conn: &mut PgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Booking>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        booking_select!(),
        "WHERE b.tenant_id = $1 AND b.id = ANY($2) ORDER BY s.starts_at, b.id"
    ))
    .bind(tenant)
    .bind(ids)
    .fetch_all(conn)
    .await?;
    rows.iter().map(booking_from_row).collect()
}

/// The resident's bookings (their own and those they made for others), live ones first.
pub async fn my_bookings(
    pool: &PgPool,
    tenant: &Tenant,
    resident: Uuid,
) -> Result<Vec<Booking>, sqlx::Error> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    let rows = sqlx::query(concat!(
        booking_select!(),
        "WHERE b.tenant_id = $1 AND (b.resident_id = $2 OR b.booked_by = $2) ",
        "ORDER BY b.status = 'booked' DESC, s.starts_at"
    ))
    .bind(tenant.id.0)
    .bind(resident)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter().map(booking_from_row).collect()
}
