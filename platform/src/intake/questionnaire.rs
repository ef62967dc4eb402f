//! The pre-vaccination questionnaire: saved by staff at the venue, or by the resident with the
//! booking (in the booking's transaction, through the resident desk).

use serde_json::json;
use sqlx::PgConnection;
use tenants::TenantId;
use uuid::Uuid;

use super::day::row_at_venue;
use super::types::{Answers, IntakeError};
use crate::staff::audit;
use crate::staff::authz::Scope;

pub(crate) async fn upsert_answers(
    conn: &mut PgConnection,
    tenant: Uuid,
    resident: Uuid,
    a: &Answers,
    by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO health_questionnaires (tenant_id, resident_id, conditions, allergies, anaphylaxis, answered_by) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, resident_id) DO UPDATE SET conditions = EXCLUDED.conditions, \
           allergies = EXCLUDED.allergies, anaphylaxis = EXCLUDED.anaphylaxis, \
           answered_by = EXCLUDED.answered_by, answered_at = now()",
    )
    .bind(tenant)
    .bind(resident)
    .bind(a.conditions.trim())
    .bind(a.allergies.trim())
    .bind(a.anaphylaxis)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

/// Staff take (or correct) the questionnaire at check-in.
pub async fn save_questionnaire(
    scope: &mut Scope,
    venue: Uuid,
    booking_id: Uuid,
    a: &Answers,
) -> Result<(), IntakeError> {
    a.validate()?;
    let tid = scope.tenant_id().0;
    let row = row_at_venue(&mut scope.tx, tid, venue, booking_id).await?;
    let by = scope.actor.label.clone();
    upsert_answers(&mut scope.tx, tid, row.resident_id, a, &by).await?;
    audit::record(
        scope,
        "intake.questionnaire",
        &format!("resident/{}", row.resident_id),
        json!({ "venue": venue, "booking": booking_id, "flagged": !a.is_empty() }),
    )
    .await?;
    Ok(())
}

/// The resident's own answers, declared when booking, written in the caller's transaction (the
/// booking's: [`crate::residents::desk`] saves them together with the booking, so both commit or
/// neither does). Empty answers store nothing.
pub(crate) async fn save_resident_answers(
    conn: &mut PgConnection,
    tenant: TenantId,
    resident: Uuid,
    a: &Answers,
) -> Result<(), IntakeError> {
    if a.is_empty() {
        return Ok(());
    }
    a.validate()?;
    upsert_answers(conn, tenant.0, resident, a, "resident").await?;
    Ok(())
}
