//! Usage and invoices, read-only: the platform operator for any tenant, a city's admins and auditors
//! for their own (another tenant's slug or invoice ids answer NOT_FOUND, as everywhere). There is
//! deliberately no billing mutation: invoices are built and finalised by the monthly job and the
//! operator's console, and a final invoice never changes (the database refuses it).

use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use chrono::Utc;
use platform::city::billing::InvoiceRead;
use platform::staff::authz::{Act, Object as Obj};
use sqlx::PgPool;
use tenants::billing;
use tenants::{Tenant, TenantId};
use uuid::Uuid;

use crate::ApiError;
use crate::auth;
use crate::scalars::{Date, DateTime};

/// Usage and invoices.
#[derive(Default)]
pub struct BillingQuery;

#[Object]
impl BillingQuery {
    /// A municipality's usage and invoices (NOT_FOUND unless the caller may see its billing).
    async fn billing(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The city's slug.")] city: String,
    ) -> Result<Billing> {
        let pool = ctx.data::<PgPool>()?;
        let tenant = tenants::find_by_slug(pool, &city)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("city".into()))?;
        auth::admit(ctx, tenant.id, "city").await?;
        Ok(Billing { tenant })
    }
}

/// A municipality's usage and invoices.
pub struct Billing {
    tenant: Tenant,
}

/// A billable kind of use, metered per month.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum MeteredKind {
    /// SMS segments sent (a long message is several).
    SmsSegment,
    /// E-mails sent.
    Email,
    /// Bookings made.
    Booking,
    /// Residents under management (the month's peak).
    Resident,
    /// Exports built.
    Export,
    /// GraphQL requests made with an API key.
    ApiCall,
}

impl From<billing::MeteredKind> for MeteredKind {
    fn from(k: billing::MeteredKind) -> Self {
        match k {
            billing::MeteredKind::SmsSegment => Self::SmsSegment,
            billing::MeteredKind::Email => Self::Email,
            billing::MeteredKind::Booking => Self::Booking,
            billing::MeteredKind::Resident => Self::Resident,
            billing::MeteredKind::Export => Self::Export,
            billing::MeteredKind::ApiCall => Self::ApiCall,
        }
    }
}

/// Whether a document bills or corrects.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum InvoiceKind {
    /// An invoice for a month.
    Invoice,
    /// A credit note correcting an invoice (`corrects`).
    CreditNote,
}

/// Whether an invoice may still change.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum InvoiceStatus {
    /// May still change until `graceUntil`; has no number yet.
    Draft,
    /// Final: numbered and never changed again (corrections are credit notes).
    Final,
}

/// One metered kind in a month.
#[derive(SimpleObject)]
pub struct Usage {
    /// What is metered.
    kind: MeteredKind,
    /// Summed (resident: the month's peak).
    used: i64,
    /// Included in the contract this month (prorated by day).
    included: i64,
    /// Price of one unit beyond the included quantity, in yen.
    unit_price_yen: i64,
    /// The included quantity is a hard cap (e.g. the SMS budget) rather than billed beyond.
    hard_cap: bool,
}

/// One line of an invoice.
#[derive(SimpleObject)]
pub struct InvoiceLine {
    /// What is billed (Japanese, as printed).
    description: String,
    /// How many units.
    quantity: i64,
    /// Price of one unit in yen.
    unit_price_yen: i64,
    /// The line's amount in yen.
    amount_yen: i64,
}

/// An invoice or credit note (amounts in integer yen).
#[derive(SimpleObject)]
pub struct Invoice {
    /// The invoice's id.
    id: Uuid,
    /// First day of the month billed.
    month: Date,
    /// An invoice or a credit note.
    kind: InvoiceKind,
    /// Draft or final.
    status: InvoiceStatus,
    /// The invoice number, once final (null for a draft).
    number: Option<String>,
    /// The invoice a credit note corrects.
    corrects: Option<Uuid>,
    /// Sum of the lines, before tax.
    subtotal_yen: i64,
    /// Consumption tax.
    tax_yen: i64,
    /// Subtotal plus tax.
    total_yen: i64,
    /// A draft becomes final at this moment.
    grace_until: DateTime,
    /// The billed lines.
    lines: Vec<InvoiceLine>,
}

impl From<billing::Invoice> for Invoice {
    fn from(i: billing::Invoice) -> Self {
        Self {
            id: i.id,
            month: Date(i.month),
            kind: if i.kind == "credit_note" {
                InvoiceKind::CreditNote
            } else {
                InvoiceKind::Invoice
            },
            status: if i.status == "final" {
                InvoiceStatus::Final
            } else {
                InvoiceStatus::Draft
            },
            number: i.number,
            corrects: i.corrects,
            subtotal_yen: i.totals.subtotal_yen,
            tax_yen: i.totals.tax_yen,
            total_yen: i.totals.total_yen,
            grace_until: DateTime(i.grace_until),
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

/// A municipality's usage and invoices.
#[Object]
impl Billing {
    /// The city's slug.
    async fn slug(&self) -> &str {
        &self.tenant.slug
    }

    /// Usage per metered kind in `month` (any day of it; default: this month in the city's time
    /// zone) against the included quantities. Recorded in the audit log.
    async fn usage(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Any day of the month (default: today in the city).")] month: Option<Date>,
    ) -> Result<Vec<Usage>> {
        let mut scope = auth::enter(ctx, self.id(), Obj::Billing, Act::Read).await?;
        let month = month.map(|d| d.0).unwrap_or_else(|| {
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
                kind: u.kind.into(),
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
    async fn invoice(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The invoice's id.")] id: Uuid,
    ) -> Result<Invoice> {
        let mut scope = auth::enter(ctx, self.id(), Obj::Billing, Act::Read).await?;
        let invoice = platform::city::billing::invoice(&mut scope, id, InvoiceRead::Api)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("invoice".into()))?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(invoice.into())
    }
}
