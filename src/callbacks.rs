//! Delivery reports from SMS gateways: `POST /callbacks/sms/{tenant}` with the gateway's form fields
//! and `X-Twilio-Signature`. Only a report signed with the city's own token over its configured
//! callback URL is believed (403 otherwise); an unknown city is 404. Thin: verification and the update
//! live in `platform::notifications::channels`.

use axum::{
    Form, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use platform::notifications::channels::{self, SealingKey};
use sqlx::PgPool;

#[derive(Clone)]
struct Callbacks {
    pool: PgPool,
    key: SealingKey,
}

pub fn router(pool: PgPool, key: SealingKey) -> Router {
    Router::new()
        .route("/callbacks/sms/{tenant}", post(sms_status))
        .with_state(Callbacks { pool, key })
}

async fn sms_status(
    State(cb): State<Callbacks>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> StatusCode {
    let Ok(Some(tenant)) = tenants::find_by_slug(&cb.pool, &slug).await else {
        return StatusCode::NOT_FOUND;
    };
    tenants::record_in_span(tenant.id);
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let result = async {
        let mut tx = tenants::begin(&cb.pool, tenant.id).await?;
        if !channels::verify_sms_callback(&mut tx, &cb.key, &params, signature).await? {
            return Ok::<_, channels::ChannelError>(StatusCode::FORBIDDEN);
        }
        let (Some(sid), Some(state)) = (
            field("MessageSid"),
            field("MessageStatus").and_then(plugins::twilio::map_status),
        ) else {
            return Ok(StatusCode::BAD_REQUEST);
        };
        let reason = field("ErrorCode").map(|c| format!("gateway error code {c}"));
        channels::record_delivery(&mut tx, sid, state, reason.as_deref()).await?;
        tx.commit().await?;
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    match result {
        Ok(status) => status,
        Err(e) => {
            tracing::error!(error = %e, "SMS delivery report not recorded");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
