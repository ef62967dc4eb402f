//! Event webhooks (issue 17, docs/webhooks.md): a city subscribes HTTPS endpoints to events
//! (booking created / changed / cancelled, vaccination recorded / removed, export ready), and each
//! event is delivered to each subscribed endpoint, signed, by the job runtime.
//!
//! Rules:
//! * **Queued with what it announces.** An event is queued in the transaction of the booking,
//!   change, cancellation, vaccination record or finished export it announces ([`events`]; the
//!   SQL function `webhook_event`): committed ⇒ its tasks exist, rolled back ⇒ no event. The
//!   one-statement booking functions queue theirs in the same function call. One task per
//!   (event, subscription) in `apalis.jobs` (queue [`crate::jobs::WEBHOOKS`]), keyed
//!   `<tenant>/webhook:<event>:<subscription>`, carrying ids only: the event's data is written
//!   once, in `webhook_events`, under row-level security. Nothing is written for an event no
//!   active subscription of the city wants.
//! * **At least once, with an id to de-duplicate by.** The [`worker`] sends outside any
//!   transaction and retries failures on a fixed schedule (10 s, 30 s, 2 min … 24 h; 12
//!   attempts); every attempt carries the same event id (`Yoyaku-Event-Id`, `Idempotency-Key`,
//!   the body's `id`) and the same body, so a receiver that keeps the ids it has processed sees
//!   each event exactly once.
//! * **Signed.** `Yoyaku-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>`, made
//!   by the webhook plugin ([`plugins::webhook::EventSender`]); receivers check it with the
//!   documented rule ([`plugins::webhook::verify`]: signature and a 5-minute replay window).
//! * **Secrets shown once, sealed at rest** (ChaCha20-Poly1305 under the key that seals channel
//!   credentials, [`crate::notifications::channels::SealingKey`]).
//! * **Endpoints** are https (plain http to the loopback interface only outside production:
//!   [`subscriptions::EndpointPolicy`]); redirects are not followed.
//! * **Guarded and audited.** Managing subscriptions needs `Object::Webhooks` write (city admin,
//!   operator); reading them and the delivery log, read (also the auditor). Every change is in the
//!   audit log, written here in the change's transaction.

pub mod events;
pub mod subscriptions;
pub mod worker;

pub use events::EventType;
pub use subscriptions::{
    DeliveryEntry, DeliveryPage, DeliveryPosition, EndpointPolicy, NewSubscription, Subscription,
    WebhookError, create, delete, deliveries, deliveries_page, list, rotate_secret, set_active,
};
pub use worker::{MAX_ATTEMPTS, RETRY_DELAYS, WebhookTask, WebhookWorker, retry_delay};
