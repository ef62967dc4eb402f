//! Who is calling `/graphql`: an integrator's API key (`Authorization: Bearer yk_…`) or a staff
//! session cookie. The handler puts the raw [`Credentials`] into the request; resolvers turn them
//! into an [`Actor`] once per request and then ask the one guard ([`Authz`]) for a scope.

use std::sync::Arc;

use async_graphql::Context;
use platform::staff::api_keys::KeyRefused;
use platform::staff::authz::{Act, Actor, Authz, Denied, Object, Scope};
use platform::staff::identity::AuthPolicy;
use sqlx::PgPool;
use tenants::TenantId;
use tokio::sync::OnceCell;

use crate::ApiError;

/// What the request presented, resolved lazily (public queries never touch the database for it).
#[derive(Default)]
pub struct Credentials {
    pub bearer: Option<String>,
    pub session: Option<String>,
    pub ip: Option<String>,
    resolved: OnceCell<Option<Actor>>,
}

impl Credentials {
    pub fn new(bearer: Option<String>, session: Option<String>, ip: Option<String>) -> Self {
        Self {
            bearer,
            session,
            ip,
            resolved: OnceCell::new(),
        }
    }

    /// Credentials already resolved: the API key the handler checked (and rate-limited) before
    /// execution, so resolvers do not look it up again.
    pub fn key_holder(holder: platform::staff::api_keys::KeyHolder, ip: Option<String>) -> Self {
        Self {
            bearer: None,
            session: None,
            ip,
            resolved: OnceCell::new_with(Some(Some(holder.actor))),
        }
    }
}

/// The session cookie the admin UI sets (same name, so a logged-in staff member can use GraphiQL).
pub const SESSION_COOKIE: &str = "yoyaku_staff";

async fn actor(ctx: &Context<'_>) -> Result<Actor, ApiError> {
    let creds = ctx
        .data::<Credentials>()
        .map_err(|_| ApiError::Unauthenticated)?;
    let pool = ctx
        .data::<PgPool>()
        .map_err(|e| ApiError::Internal(e.message))?;
    let policy = ctx
        .data::<Arc<AuthPolicy>>()
        .map_err(|e| ApiError::Internal(e.message))?;
    let authz = ctx
        .data::<Authz>()
        .map_err(|e| ApiError::Internal(e.message))?;
    let resolved = creds
        .resolved
        .get_or_try_init(|| async {
            if let Some(key) = &creds.bearer {
                // (the HTTP handler admits keys before execution, answering expiry and limits
                // with their status; this is for credentials it did not resolve)
                return match platform::staff::api_keys::check(
                    pool,
                    authz,
                    key,
                    creds.ip.clone(),
                    None,
                )
                .await
                {
                    Ok(holder) => Ok(Some(holder.actor)),
                    Err(refused) => refused_key(refused),
                };
            }
            if let Some(token) = &creds.session {
                return Ok(platform::staff::identity::session(pool, policy, token)
                    .await?
                    .map(|s| Actor::staff(s.account.id, &s.account.email, creds.ip.clone())));
            }
            Ok(None)
        })
        .await?;
    resolved.clone().ok_or(ApiError::Unauthenticated)
}

/// How a key refused before any field is told: the HTTP status, `extensions.code`,
/// `extensions.reason`, the message and the seconds to wait (docs/api.md, "Errors"). One wording
/// for the handler's answer ([`crate::web`]) and the resolvers' ([`refused_key`]).
pub(crate) struct KeyRefusal {
    pub status: axum::http::StatusCode,
    pub code: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

/// The telling of an expired, capped or over-budget key (None for the others: an unknown key is
/// no caller, a guard's refusal is the guard's).
pub(crate) fn key_refusal(refused: &KeyRefused) -> Option<KeyRefusal> {
    use axum::http::StatusCode;
    match refused {
        KeyRefused::Expired(at) => Some(KeyRefusal {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHENTICATED",
            reason: "KEY_EXPIRED",
            message: format!(
                "This API key expired at {}; ask the city's administrator to rotate it or create a new one.",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            retry_after_secs: None,
        }),
        // the plan's monthly cap on API calls (platform::caps): refused until it resets
        KeyRefused::PlanLimit(reached) => Some(KeyRefusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "PLAN_LIMIT_REACHED",
            reason: "API_CALL_CAP",
            message: format!("{} / {}", reached, reached.ja()),
            retry_after_secs: Some(reached.retry_after_secs(chrono::Utc::now())),
        }),
        // the key's budget of requests per minute: refused, not counted
        KeyRefused::OverBudget { wait, per_minute } => {
            let secs = wait.as_secs().max(1);
            Some(KeyRefusal {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "RATE_LIMITED",
                reason: "KEY_BUDGET",
                message: format!(
                    "This API key has used its budget of {per_minute} requests per minute; try again in {secs} s."
                ),
                retry_after_secs: Some(secs),
            })
        }
        KeyRefused::Unknown | KeyRefused::Denied(_) => None,
    }
}

/// An API key's refusal as a resolver tells it; an unknown key is no caller at all.
fn refused_key(refused: KeyRefused) -> Result<Option<Actor>, ApiError> {
    if let Some(r) = key_refusal(&refused) {
        return Err(ApiError::Refused {
            code: r.code,
            message: r.message,
            retry_after_secs: r.retry_after_secs.and_then(|s| i64::try_from(s).ok()),
            reason: Some(r.reason),
        });
    }
    match refused {
        KeyRefused::Denied(d) => Err(denied(d)),
        _ => Ok(None),
    }
}

/// The guard's refusal as GraphQL tells it (docs/api.md).
pub fn denied(d: Denied) -> ApiError {
    match d {
        Denied::NotFound => ApiError::NotFound("object".into()),
        Denied::Forbidden => ApiError::Forbidden,
        Denied::Suspended => ApiError::Suspended,
        Denied::Database(e) => e.into(),
    }
}

/// The guard, for resolvers: a scope on `object` in `tenant`, or NOT_FOUND / FORBIDDEN (with
/// `reason: TENANT_SUSPENDED` for a suspended city).
pub async fn enter(
    ctx: &Context<'_>,
    tenant: TenantId,
    object: Object,
    act: Act,
) -> Result<Scope, ApiError> {
    let actor = actor(ctx).await?;
    let authz = ctx
        .data::<Authz>()
        .map_err(|e| ApiError::Internal(e.message))?;
    authz
        .enter(&actor, tenant, object, act)
        .await
        .map_err(denied)
}

/// For fields that only name the city (`city`, `billing`): the caller works for the tenant and the
/// tenant is open to them (the guard's [`Authz::admit`]); `what` names it in NOT_FOUND.
pub async fn admit(ctx: &Context<'_>, tenant: TenantId, what: &str) -> Result<(), ApiError> {
    let actor = actor(ctx).await?;
    let authz = ctx
        .data::<Authz>()
        .map_err(|e| ApiError::Internal(e.message))?;
    authz.admit(&actor, tenant).await.map_err(|d| match d {
        Denied::NotFound => ApiError::NotFound(what.into()),
        other => denied(other),
    })
}

/// The intake guard (`platform::intake::enter`: intake rights for the role AND the venue), for
/// resolvers: a scope, or NOT_FOUND (another city, a venue outside the assignment) / FORBIDDEN.
pub async fn enter_intake(
    ctx: &Context<'_>,
    tenant: TenantId,
    venue: uuid::Uuid,
    act: Act,
) -> Result<Scope, ApiError> {
    let actor = actor(ctx).await?;
    let authz = ctx
        .data::<Authz>()
        .map_err(|e| ApiError::Internal(e.message))?;
    platform::intake::enter(authz, &actor, tenant, venue, act)
        .await
        .map_err(denied)
}
