//! The webhook delivery log over GraphQL, through the admin page's platform function
//! (`platform::webhooks::deliveries_page`): `city { webhookDeliveries(first, after,
//! subscriptionId) }`, a connection newest first (scope `webhooks:read`; city admins, auditors,
//! the operator). Each attempt of each event to each endpoint is one entry; the log grows with
//! every event, so it is paged like the exports (an opaque cursor, VALIDATION for any other).

use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use platform::staff::authz::{Act, Object as Obj};
use platform::webhooks::{self, DeliveryEntry, DeliveryPosition};
use tenants::TenantId;
use uuid::Uuid;

use crate::ApiError;
use crate::auth;
use crate::city_bookings::PageInfo;
use crate::cursor;
use crate::scalars::DateTime;
use crate::webhooks::{WebhookEventType, authz, event_of, webhook_error};

/// How one delivery attempt ended.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum WebhookDeliveryOutcome {
    /// The endpoint answered 2xx: delivered.
    Delivered,
    /// It failed (an error status, a timeout, no connection); retried at `nextAttemptAt`.
    Failed,
    /// The last attempt failed: no more retries (docs/webhooks.md, the schedule).
    GaveUp,
    /// Not sent: the subscription was paused or no longer wants the event.
    Skipped,
}

fn outcome_of(raw: &str) -> Result<WebhookDeliveryOutcome, ApiError> {
    Ok(match raw {
        "delivered" => WebhookDeliveryOutcome::Delivered,
        "failed" => WebhookDeliveryOutcome::Failed,
        "gave_up" => WebhookDeliveryOutcome::GaveUp,
        "skipped" => WebhookDeliveryOutcome::Skipped,
        other => return Err(ApiError::Internal(format!("delivery outcome {other:?}"))),
    })
}

/// One attempt to deliver one event to one endpoint.
#[derive(SimpleObject, Clone)]
pub struct WebhookDelivery {
    /// The attempt's id.
    id: Uuid,
    /// When the attempt was made.
    at: DateTime,
    /// The subscription it was for.
    subscription_id: Uuid,
    /// The subscription's endpoint.
    url: String,
    /// The event (the `id` of the body and `Yoyaku-Event-Id`; the same on every attempt).
    event_id: Uuid,
    /// The event's type.
    event_type: WebhookEventType,
    /// Which attempt of this event to this endpoint (1 = the first).
    attempt: i32,
    /// How it ended.
    outcome: WebhookDeliveryOutcome,
    /// The endpoint's HTTP status, when it answered.
    http_status: Option<i32>,
    /// How long the endpoint took to answer, in milliseconds, when it was asked.
    latency_ms: Option<i64>,
    /// Why it failed (null when delivered).
    error: Option<String>,
    /// When it is tried again (FAILED only).
    next_attempt_at: Option<DateTime>,
}

impl TryFrom<DeliveryEntry> for WebhookDelivery {
    type Error = ApiError;

    fn try_from(d: DeliveryEntry) -> Result<Self, ApiError> {
        Ok(Self {
            id: d.id,
            at: d.at.into(),
            subscription_id: d.subscription_id,
            url: d.url,
            event_id: d.event_id,
            event_type: event_of(&d.event_type)
                .ok_or_else(|| ApiError::Internal(format!("event type {:?}", d.event_type)))?,
            attempt: i32::try_from(d.attempt).unwrap_or(i32::MAX),
            outcome: outcome_of(&d.outcome)?,
            http_status: d.http_status.and_then(|s| i32::try_from(s).ok()),
            latency_ms: d.latency_ms,
            error: d.error,
            next_attempt_at: d.next_attempt_at.map(DateTime),
        })
    }
}

/// One attempt of a page and the cursor to continue after it.
#[derive(SimpleObject)]
pub struct WebhookDeliveryEdge {
    /// Opaque; pass it as `after` to continue after this attempt.
    cursor: String,
    /// The attempt.
    node: WebhookDelivery,
}

/// A page of the city's webhook delivery log, newest first.
pub struct WebhookDeliveryConnection {
    edges: Vec<WebhookDeliveryEdge>,
    page_info: PageInfo,
}

/// A page of the city's webhook delivery log, newest first (by time, then id, which never
/// change: paging on with `endCursor` sees every attempt that existed when paging began exactly
/// once; newer ones come before the first page).
#[Object]
impl WebhookDeliveryConnection {
    /// The attempts of this page with their cursors, newest first.
    async fn edges(&self) -> &[WebhookDeliveryEdge] {
        &self.edges
    }

    /// The attempts of this page, newest first (`edges` without the cursors).
    async fn nodes(&self) -> Vec<&WebhookDelivery> {
        self.edges.iter().map(|e| &e.node).collect()
    }

    /// Where this page ends and whether older attempts follow.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }
}

const LIST: &str = "webhook-delivery";

fn cursor_of(p: DeliveryPosition) -> String {
    cursor::encode(LIST, &format!("{}:{}", cursor::micros(p.at), p.id))
}

fn parse_cursor(c: &str) -> Result<DeliveryPosition, ApiError> {
    cursor::decode(LIST, c, |t| {
        let (micros, id) = t.split_once(':')?;
        Some(DeliveryPosition {
            at: cursor::from_micros(micros)?,
            id: Uuid::try_parse(id).ok()?,
        })
    })
}

/// `city { webhookDeliveries(first, after, subscriptionId) }`.
pub async fn page(
    ctx: &Context<'_>,
    tenant: TenantId,
    first: i64,
    after: Option<String>,
    subscription: Option<Uuid>,
) -> Result<WebhookDeliveryConnection> {
    let mut scope = auth::enter(ctx, tenant, Obj::Webhooks, Act::Read).await?;
    cursor::page_size(first, 200)?;
    let after = after.as_deref().map(parse_cursor).transpose()?;
    let page = webhooks::deliveries_page(authz(ctx)?, &mut scope, subscription, after, first)
        .await
        .map_err(webhook_error)?;
    scope.commit().await.map_err(ApiError::from)?;
    let edges = page
        .entries
        .into_iter()
        .map(|d| {
            Ok(WebhookDeliveryEdge {
                cursor: cursor_of(d.position()),
                node: d.try_into()?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(WebhookDeliveryConnection {
        page_info: PageInfo {
            has_next_page: page.has_next,
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        },
        edges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_cursor_reads_back_exactly_and_only_as_its_own() {
        let p = DeliveryPosition {
            at: chrono::DateTime::<chrono::Utc>::from_timestamp_micros(1_796_000_000_123_456)
                .expect("instant"),
            id: Uuid::now_v7(),
        };
        assert_eq!(parse_cursor(&cursor_of(p)).ok(), Some(p));
        for bad in [
            "not a cursor".to_owned(),
            cursor::encode("export", &p.id.to_string()),
            cursor::encode(LIST, &format!("x:{}", p.id)),
            cursor::encode(LIST, "1"),
        ] {
            assert!(matches!(parse_cursor(&bad), Err(ApiError::Validation(_))));
        }
    }
}
