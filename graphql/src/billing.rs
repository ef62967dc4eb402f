//! Usage and invoices, read-only: the platform operator for any tenant, a city's admins and auditors
//! for their own (another tenant's slug or invoice ids answer NOT_FOUND, as everywhere). There is
//! deliberately no billing mutation: invoices are built and finalised by the monthly job and the
//! operator's console, and a final invoice never changes (the database refuses it).

use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use platform::city::billing::InvoiceRead;
use platform::staff::authz::{Act, Object as Obj};
use sqlx::PgPool;
use tenants::billing;
use tenants::{Tenant, TenantId};
use uuid::Uuid;

use crate::ApiError;
use crate::auth;

#[derive(Default)]
pub struct BillingQuery;

#[Object]
impl BillingQuery {
    /// A municipality's usage and invoices (NOT_FOUND unless the caller may see its billing).
    async fn billing(&self, ctx: &Context<'_>, slug: String) -> Result<Billing> {
        let pool = ctx.data::<PgPool>()?;
        let tenant = tenants::find_by_slug(pool, &slug)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("city".into()))?;
        auth::admit(ctx, tenant.id, "city").await?;
        Ok(Billing { tenant })
    }
}

pub struct Billing {
    tenant: Tenant,
}

/// One metered kind in a month.
#[derive(SimpleObject)]
pub struct Usage {
    /// sms_segment, email, booking, resident or export.
    kind: String,
    /// Summed (resident: the month's peak).
    used: i64,
    /// Included in the contract this month (prorated by day).
    included: i64,
    unit_price_yen: i64,
    hard_cap: bool,
}

#[derive(SimpleObject)]
pub struct InvoiceLine {
    description: String,
    quantity: i64,
    unit_price_yen: i64,
    amount_yen: i64,
}

/// An invoice or credit note (amounts in integer yen).
#[derive(SimpleObject)]
pub struct Invoice {
    id: Uuid,
    /// First day of the month billed.
    month: NaiveDate,
    /// invoice or credit_note.
    kind: String,
    /// draft or final.
    status: String,
    number: Option<String>,
    /// The invoice a credit note corrects.
    corrects: Option<Uuid>,
    subtotal_yen: i64,
    tax_yen: i64,
    total_yen: i64,
    grace_until: DateTime<Utc>,
    lines: Vec<InvoiceLine>,
}

impl From<billing::Invoice> for Invoice {
    fn from(i: billing::Invoice) -> Self {
        Self {
            id: i.id,
            month: i.month,
            kind: i.kind,
            status: i.status,
            number: i.number,
            corrects: i.corrects,
            subtotal_yen: i.totals.subtotal_yen,
            tax_yen: i.totals.tax_yen,
            total_yen: i.totals.total_yen,
            grace_until: i.grace_until,
            lines: i
                .lines
                .into_iter()
                .map(|l| InvoiceLine {
                    description: l.description,
                    quantity: l.quantity,
                    unit_price_yen: l.unit_price_yen,
                    amount_yen: l.amount_yen,
                })
                .collect(),
        }
    }
}

fn billing_err(e: billing::BillingError) -> ApiError {
    match e {
        billing::BillingError::Database(e) => e.into(),
        billing::BillingError::NotFound(what) => ApiError::NotFound(what.into()),
        other => ApiError::Validation(other.to_string()),
    }
}

impl Billing {
    fn id(&self) -> TenantId {
        self.tenant.id
    }
}

#[Object]
impl Billing {
    async fn slug(&self) -> &str {
        &self.tenant.slug
    }

    /// Usage per metered kind in `month` (any day of it; default: this month in the city's time
    /// zone) against the included quantities. Recorded in the audit log.
    async fn usage(&self, ctx: &Context<'_>, month: Option<NaiveDate>) -> Result<Vec<Usage>> {
        let mut scope = auth::enter(ctx, self.id(), Obj::Billing, Act::Read).await?;
        let month = month.unwrap_or_else(|| {
            Utc::now()
                .with_timezone(&self.tenant.time_zone.0)
                .date_naive()
        });
        let list =
            platform::city::billing::month_usage(&mut scope, month, self.tenant.time_zone.name())
                .await
                .map_err(billing_err)?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(list
            .into_iter()
            .map(|u| Usage {
                kind: u.kind.as_str().into(),
                used: u.used,
                included: u.included,
                unit_price_yen: u.unit_price_yen,
                hard_cap: u.hard_cap,
            })
            .collect())
    }

    /// Invoices and credit notes, newest month first.
    async fn invoices(&self, ctx: &Context<'_>) -> Result<Vec<Invoice>> {
        let mut scope = auth::enter(ctx, self.id(), Obj::Billing, Act::Read).await?;
        let list = platform::city::billing::invoices(&mut scope)
            .await
            .map_err(ApiError::from)?;
        Ok(list.into_iter().map(Invoice::from).collect())
    }

    /// One invoice (NOT_FOUND for another tenant's id). Recorded in the audit log.
    async fn invoice(&self, ctx: &Context<'_>, id: Uuid) -> Result<Invoice> {
        let mut scope = auth::enter(ctx, self.id(), Obj::Billing, Act::Read).await?;
        let invoice = platform::city::billing::invoice(&mut scope, id, InvoiceRead::Api)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("invoice".into()))?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(invoice.into())
    }
}
