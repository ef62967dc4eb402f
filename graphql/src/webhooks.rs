//! Event webhook subscriptions over GraphQL, through the admin page's platform functions
//! (`platform::webhooks`): `city { webhookSubscriptions }` (scope `webhooks:read`) and
//! `createWebhookSubscription` (the signing secret shown once), `setWebhookSubscriptionActive`,
//! `deleteWebhookSubscription`, `rotateWebhookSecret` (the new secret shown once) (scope
//! `webhooks:write`), and the delivery log `city { webhookDeliveries }` ([`crate::webhook_log`],
//! scope `webhooks:read`). Guard object `webhooks`: city admins and the operator write, auditors
//! read; the platform functions check it themselves too.

use crate::scalars::DateTime;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use platform::notifications::channels::SealingKey;
use platform::staff::authz::{Act, Authz, Object as Obj, Scope};
use platform::webhooks::{self, EndpointPolicy, EventType, NewSubscription, WebhookError};
use sqlx::PgPool;
use tenants::TenantId;
use uuid::Uuid;

use crate::ApiError;
use crate::auth;
use crate::city_bookings::UserError;
use crate::payload::{self, Payload, Refusal};

/// What the webhook mutations need from the server: the key that seals signing secrets at rest
/// and which endpoints may be subscribed (the admin UI's own settings).
#[derive(Clone)]
pub struct WebhookSettings {
    pub sealing_key: SealingKey,
    pub endpoints: EndpointPolicy,
}

/// An event a subscription can ask for (docs/webhooks.md shows each payload).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum WebhookEventType {
    /// `booking.created`: a booking was made.
    BookingCreated,
    /// `booking.changed`: a booking moved to another slot.
    BookingChanged,
    /// `booking.cancelled`: a booking was cancelled.
    BookingCancelled,
    /// `vaccination.recorded`: a vaccination was recorded at intake.
    VaccinationRecorded,
    /// `vaccination.removed`: a vaccination record was withdrawn.
    VaccinationRemoved,
    /// `export.ready`: an export's file is ready to download.
    ExportReady,
}

impl From<WebhookEventType> for EventType {
    fn from(e: WebhookEventType) -> Self {
        match e {
            WebhookEventType::BookingCreated => Self::BookingCreated,
            WebhookEventType::BookingChanged => Self::BookingChanged,
            WebhookEventType::BookingCancelled => Self::BookingCancelled,
            WebhookEventType::VaccinationRecorded => Self::VaccinationRecorded,
            WebhookEventType::VaccinationRemoved => Self::VaccinationRemoved,
            WebhookEventType::ExportReady => Self::ExportReady,
        }
    }
}

pub(crate) fn event_of(raw: &str) -> Option<WebhookEventType> {
    Some(match EventType::parse(raw)? {
        EventType::BookingCreated => WebhookEventType::BookingCreated,
        EventType::BookingChanged => WebhookEventType::BookingChanged,
        EventType::BookingCancelled => WebhookEventType::BookingCancelled,
        EventType::VaccinationRecorded => WebhookEventType::VaccinationRecorded,
        EventType::VaccinationRemoved => WebhookEventType::VaccinationRemoved,
        EventType::ExportReady => WebhookEventType::ExportReady,
    })
}

/// An endpoint subscribed to events (its signing secret only by its last characters).
#[derive(SimpleObject)]
pub struct WebhookSubscription {
    /// The subscription's id.
    id: Uuid,
    /// The endpoint (https).
    url: String,
    /// What it is for (free text).
    description: String,
    /// The events it receives.
    events: Vec<WebhookEventType>,
    /// The signing secret's last characters (e.g. `••••x9Qa`), to tell secrets apart.
    secret_hint: String,
    /// Receiving events (false: paused).
    active: bool,
    /// Who subscribed it.
    created_by: String,
    /// When.
    created_at: DateTime,
}

impl From<webhooks::Subscription> for WebhookSubscription {
    fn from(s: webhooks::Subscription) -> Self {
        Self {
            id: s.id,
            url: s.url,
            description: s.description,
            events: s.events.iter().filter_map(|e| event_of(e)).collect(),
            secret_hint: s.secret_hint,
            active: s.active,
            created_by: s.created_by,
            created_at: s.created_at.into(),
        }
    }
}

pub(crate) fn authz<'a>(ctx: &Context<'a>) -> Result<&'a Authz, ApiError> {
    ctx.data::<Authz>()
        .map_err(|e| ApiError::Internal(e.message))
}

pub(crate) fn webhook_error(e: WebhookError) -> ApiError {
    match e {
        WebhookError::Denied(d) => auth::denied(d),
        WebhookError::Database(e) => e.into(),
        WebhookError::NotFound => ApiError::NotFound("webhook subscription".into()),
        WebhookError::Invalid { field, reason } => {
            ApiError::Validation(format!("{field}: {reason}"))
        }
        WebhookError::Sealing => ApiError::Internal(WebhookError::Sealing.to_string()),
    }
}

/// `city { webhookSubscriptions }`: the city's subscriptions, oldest first (a city has at most 20).
pub async fn list(ctx: &Context<'_>, tenant: TenantId) -> Result<Vec<WebhookSubscription>> {
    let mut scope = auth::enter(ctx, tenant, Obj::Webhooks, Act::Read).await?;
    let subs = webhooks::list(authz(ctx)?, &mut scope)
        .await
        .map_err(webhook_error)?;
    scope.commit().await.map_err(ApiError::from)?;
    Ok(subs.into_iter().map(WebhookSubscription::from).collect())
}

/// Subscribe an endpoint.
#[derive(InputObject)]
pub struct CreateWebhookSubscriptionInput {
    /// The endpoint: https (plain http only to this machine, outside production).
    url: String,
    /// What it is for, at most 200 characters.
    #[graphql(default)]
    description: String,
    /// The events to send (at least one).
    events: Vec<WebhookEventType>,
}

/// Pause or resume a subscription.
#[derive(InputObject)]
pub struct SetWebhookSubscriptionActiveInput {
    /// The subscription.
    id: Uuid,
    /// false: pause (no new events are queued, queued ones are skipped); true: resume.
    active: bool,
}

/// Delete a subscription.
#[derive(InputObject)]
pub struct DeleteWebhookSubscriptionInput {
    /// The subscription.
    id: Uuid,
}

/// Give a subscription a new signing secret.
#[derive(InputObject)]
pub struct RotateWebhookSecretInput {
    /// The subscription.
    id: Uuid,
}

/// What `rotateWebhookSecret` did.
#[derive(SimpleObject)]
pub struct RotateWebhookSecretPayload {
    /// The subscription with its new `secretHint` (null when `errors` is not empty).
    subscription: Option<WebhookSubscription>,
    /// The new signing secret (`whsec_…`): shown only now. The old one stops at once: the next
    /// delivery, a retry included, is signed with this one.
    secret: Option<String>,
    /// Refusals the caller can act on: NOT_FOUND on `id`.
    errors: Vec<UserError>,
}

impl Payload for RotateWebhookSecretPayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            subscription: None,
            secret: None,
            errors,
        }
    }
}

/// A webhook refusal for [`payload::answer`]: NOT_FOUND of the id and VALIDATION of a field are
/// the caller's to act on; the guard's refusal and the rest are top-level.
fn refusal(e: WebhookError) -> Refusal {
    match e {
        WebhookError::NotFound => ApiError::NotFound("webhook subscription".into()).on(Some("id")),
        WebhookError::Invalid { field, reason } => {
            ApiError::Validation(format!("{field}: {reason}")).on(Some(field))
        }
        other => Refusal::top_level(webhook_error(other)),
    }
}

/// What `createWebhookSubscription` did.
#[derive(SimpleObject)]
pub struct CreateWebhookSubscriptionPayload {
    /// The new subscription (null when `errors` is not empty).
    subscription: Option<WebhookSubscription>,
    /// The signing secret (`whsec_…`): shown only now; verify each delivery's
    /// `Yoyaku-Signature` with it (docs/webhooks.md).
    secret: Option<String>,
    /// Refusals the caller can act on: VALIDATION on `url`, `description` or `events`.
    errors: Vec<UserError>,
}

/// What `setWebhookSubscriptionActive` did.
#[derive(SimpleObject)]
pub struct SetWebhookSubscriptionActivePayload {
    /// The subscription as it is now (null when `errors` is not empty).
    subscription: Option<WebhookSubscription>,
    /// Refusals the caller can act on: NOT_FOUND on `id`.
    errors: Vec<UserError>,
}

/// What `deleteWebhookSubscription` did.
#[derive(SimpleObject)]
pub struct DeleteWebhookSubscriptionPayload {
    /// The id of the deleted subscription (null when `errors` is not empty).
    deleted_id: Option<Uuid>,
    /// Refusals the caller can act on: NOT_FOUND on `id`.
    errors: Vec<UserError>,
}

impl Payload for CreateWebhookSubscriptionPayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            subscription: None,
            secret: None,
            errors,
        }
    }
}

impl Payload for SetWebhookSubscriptionActivePayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            subscription: None,
            errors,
        }
    }
}

impl Payload for DeleteWebhookSubscriptionPayload {
    fn refused(errors: Vec<UserError>) -> Self {
        Self {
            deleted_id: None,
            errors,
        }
    }
}

async fn enter_write(ctx: &Context<'_>, city: &str) -> Result<Scope, ApiError> {
    let pool = ctx
        .data::<PgPool>()
        .map_err(|e| ApiError::Internal(e.message))?;
    let tenant = tenants::find_by_slug(pool, city)
        .await?
        .ok_or_else(|| ApiError::NotFound("city".into()))?;
    auth::enter(ctx, tenant.id, Obj::Webhooks, Act::Write).await
}

/// Webhook subscriptions (API key scope `webhooks:write`; city admins).
#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Subscribes an endpoint to events; answers the signing secret once (stored sealed).
    /// Audited (`webhook.create`).
    async fn create_webhook_subscription(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The endpoint and its events.")] input: CreateWebhookSubscriptionInput,
    ) -> Result<CreateWebhookSubscriptionPayload> {
        let mut scope = enter_write(ctx, &city).await?;
        let settings = ctx
            .data::<WebhookSettings>()
            .map_err(|e| ApiError::Internal(e.message))?;
        let new = NewSubscription {
            url: input.url,
            description: input.description,
            events: input
                .events
                .into_iter()
                .map(|e| EventType::from(e).as_str().to_owned())
                .collect(),
        };
        let authz = authz(ctx)?;
        let outcome = async move {
            let (sub, secret) = webhooks::create(
                authz,
                &mut scope,
                &settings.sealing_key,
                settings.endpoints,
                &new,
            )
            .await
            .map_err(refusal)?;
            scope.commit().await?;
            Ok(CreateWebhookSubscriptionPayload {
                subscription: Some(sub.into()),
                secret: Some(secret),
                errors: Vec::new(),
            })
        }
        .await;
        payload::answer(outcome)
    }

    /// Pauses or resumes a subscription. Audited (`webhook.pause` / `webhook.resume`).
    async fn set_webhook_subscription_active(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The subscription and its new state.")]
        input: SetWebhookSubscriptionActiveInput,
    ) -> Result<SetWebhookSubscriptionActivePayload> {
        let mut scope = enter_write(ctx, &city).await?;
        let authz = authz(ctx)?;
        let outcome = async move {
            webhooks::set_active(authz, &mut scope, input.id, input.active)
                .await
                .map_err(refusal)?;
            let now = webhooks::list(authz, &mut scope)
                .await
                .map_err(|e| Refusal::top_level(webhook_error(e)))?
                .into_iter()
                .find(|s| s.id == input.id);
            scope.commit().await?;
            Ok(SetWebhookSubscriptionActivePayload {
                subscription: now.map(Into::into),
                errors: Vec::new(),
            })
        }
        .await;
        payload::answer(outcome)
    }

    /// Deletes a subscription and its delivery log. Audited (`webhook.delete`).
    async fn delete_webhook_subscription(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The subscription.")] input: DeleteWebhookSubscriptionInput,
    ) -> Result<DeleteWebhookSubscriptionPayload> {
        let mut scope = enter_write(ctx, &city).await?;
        let authz = authz(ctx)?;
        let outcome = async move {
            webhooks::delete(authz, &mut scope, input.id)
                .await
                .map_err(refusal)?;
            scope.commit().await?;
            Ok(DeleteWebhookSubscriptionPayload {
                deleted_id: Some(input.id),
                errors: Vec::new(),
            })
        }
        .await;
        payload::answer(outcome)
    }

    /// Gives a subscription a new signing secret and answers it once (stored sealed); the old
    /// secret stops at once. Audited (`webhook.rotate_secret`).
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
        #[graphql(desc = "The subscription.")] input: RotateWebhookSecretInput,
    ) -> Result<RotateWebhookSecretPayload> {
        let mut scope = enter_write(ctx, &city).await?;
        let settings = ctx
            .data::<WebhookSettings>()
            .map_err(|e| ApiError::Internal(e.message))?;
        let authz = authz(ctx)?;
        let outcome = async move {
            let secret =
                webhooks::rotate_secret(authz, &mut scope, &settings.sealing_key, input.id)
                    .await
                    .map_err(refusal)?;
            let now = webhooks::list(authz, &mut scope)
                .await
                .map_err(refusal)?
                .into_iter()
                .find(|s| s.id == input.id);
            scope.commit().await?;
            Ok(RotateWebhookSecretPayload {
                subscription: now.map(Into::into),
                secret: Some(secret),
                errors: Vec::new(),
            })
        }
        .await;
        payload::answer(outcome)
    }
}
