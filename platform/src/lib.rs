//! The booking platform every tenant runs. Knows nothing of HTTP; every function takes a
//! tenant-scoped transaction ([`tenants::TenantTx`]) or a pool plus a tenant id.

pub mod api_keys;
pub mod audit;
pub mod authz;
pub mod availability;
pub mod billing;
pub mod booking;
pub mod booking_batch;
pub mod callcenter;
pub mod channels;
pub mod delivery_log;
pub mod demo;
pub mod export;
pub mod exports;
pub mod i18n;
pub mod identity;
pub mod import;
pub mod intake;
pub mod jobs;
pub mod overview;
pub mod residents;
pub mod setup;
pub mod staff;
pub mod stats;
pub mod templates;

/// What the resident-facing front ends (web site, GraphQL) share: the runtime pool, the hot
/// availability cache, the booking batches and the login-code secret. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ResidentServices {
    pub pool: sqlx::PgPool,
    pub availability: availability::AvailabilityCache,
    pub booker: booking_batch::Batcher,
    pub secret: residents::auth::CodeSecret,
}

impl ResidentServices {
    pub fn new(pool: sqlx::PgPool, secret: residents::auth::CodeSecret) -> Self {
        Self {
            booker: booking_batch::Batcher::new(pool.clone()),
            pool,
            availability: availability::AvailabilityCache::new(),
            secret,
        }
    }

    /// A tenant by slug, remembered for [`availability::CACHE_TTL`] so hot public reads do not
    /// touch the database for it (a suspension takes effect within that time).
    pub async fn tenant(&self, slug: &str) -> Result<Option<tenants::Tenant>, sqlx::Error> {
        if let Some(t) = self.availability.cached_tenant(slug) {
            return Ok(Some(t));
        }
        let found = tenants::find_by_slug(&self.pool, slug).await?;
        if let Some(t) = &found {
            self.availability.remember_tenant(t.clone());
        }
        Ok(found)
    }

    /// A tenant by id, remembered like [`ResidentServices::tenant`].
    pub async fn tenant_by_id(
        &self,
        id: tenants::TenantId,
    ) -> Result<Option<tenants::Tenant>, sqlx::Error> {
        if let Some(t) = self.availability.cached_tenant_by_id(id) {
            return Ok(Some(t));
        }
        let found = tenants::find_by_id(&self.pool, id).await?;
        if let Some(t) = &found {
            self.availability.remember_tenant(t.clone());
        }
        Ok(found)
    }
}
