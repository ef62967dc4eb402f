//! Usage and invoices, read-only: the platform operator for any tenant, a city's admins and auditors
//! for their own (another tenant's slug or invoice ids answer NOT_FOUND, as everywhere). There is
//! deliberately no billing mutation: invoices are built and finalised by the monthly job and the
//! operator's console, and a final invoice never changes (the database refuses it).

use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use chrono::Utc;
use platform::city::billing::{InvoicePosition, InvoiceRead};
use platform::staff::authz::{Act, Object as Obj};
use sqlx::PgPool;
use tenants::billing;
use tenants::{Tenant, TenantId};
use uuid::Uuid;

use crate::ApiError;
use crate::auth;
use crate::city_bookings::PageInfo;
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

/// One invoice or credit note of a page and the cursor to continue after it.
#[derive(SimpleObject)]
pub struct InvoiceEdge {
    /// Opaque; pass it as `after` to continue after this document.
    cursor: String,
    /// The invoice or credit note.
    node: Invoice,
}

/// A page of the city's invoices and credit notes, newest month first (within a month in the
/// order issued): paging to the end with `endCursor` sees every document that existed when
/// paging began exactly once.
pub struct InvoiceConnection {
    tenant: TenantId,
    edges: Vec<InvoiceEdge>,
    page_info: PageInfo,
}

/// A page of the city's invoices and credit notes, newest month first (within a month in the
/// order issued): paging to the end with `endCursor` sees every document that existed when
/// paging began exactly once.
#[Object]
impl InvoiceConnection {
    /// The invoices and credit notes of this page, in order.
    async fn edges(&self) -> &[InvoiceEdge] {
        &self.edges
    }

    /// Where this page ends and whether more follow.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// How many invoices and credit notes the city has, all pages together (counted when asked
    /// for).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Billing, Act::Read).await?;
        let n = platform::city::billing::invoice_count(&mut scope)
            .await
            .map_err(ApiError::from)?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(n)
    }
}

fn cursor_of(at: InvoicePosition) -> String {
    crate::cursor::encode(
        "invoice",
        &format!(
            "{}:{}:{}",
            at.month,
            crate::cursor::micros(at.created_at),
            at.id
        ),
    )
}

fn parse_cursor(c: &str) -> Result<InvoicePosition, ApiError> {
    crate::cursor::decode("invoice", c, |p| {
        let mut parts = p.splitn(3, ':');
        let month = parts.next()?.parse().ok()?;
        let created_at = crate::cursor::from_micros(parts.next()?)?;
        let id = Uuid::try_parse(parts.next()?).ok()?;
        Some(InvoicePosition {
            month,
            created_at,
            id,
        })
    })
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

    /// Invoices and credit notes, newest month first. Deprecated: a plain list that grows by one
    /// a month; `invoiceHistory` is its connection.
    #[graphql(
        deprecation = "Use `invoiceHistory` (a connection: `first`, `after`) instead; removed after 2027-06-30."
    )]
    async fn invoices(&self, ctx: &Context<'_>) -> Result<Vec<Invoice>> {
        let mut scope = auth::enter(ctx, self.id(), Obj::Billing, Act::Read).await?;
        let list = platform::city::billing::invoices(&mut scope)
            .await
            .map_err(ApiError::from)?;
        Ok(list.into_iter().map(Invoice::from).collect())
    }

    /// Invoices and credit notes, a page at a time, newest month first (within a month in the
    /// order issued: the invoice before the credit notes correcting it). The order never changes:
    /// paging on with `after: pageInfo.endCursor` until `hasNextPage` is false sees every document
    /// that existed when paging began exactly once. `first` is 1–200 (default 24) and counts the
    /// fields once per started ten in the complexity.
    #[graphql(
        complexity = "2 + child_complexity.max(1) * (first.clamp(1, 200) as usize).div_ceil(10)"
    )]
    async fn invoice_history(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 24, desc = "Page size, 1–200.")] first: i64,
        #[graphql(desc = "Continue after this cursor (an edge's `cursor` or `endCursor`).")]
        after: Option<String>,
    ) -> Result<InvoiceConnection> {
        let mut scope = auth::enter(ctx, self.id(), Obj::Billing, Act::Read).await?;
        crate::cursor::page_size(first, 200)?;
        let after = after.as_deref().map(parse_cursor).transpose()?;
        let mut page = platform::city::billing::invoice_page(&mut scope, after, first)
            .await
            .map_err(ApiError::from)?;
        scope.commit().await.map_err(ApiError::from)?;
        let has_next = page.len() as i64 > first;
        page.truncate(first as usize);
        let edges: Vec<InvoiceEdge> = page
            .into_iter()
            .map(|(at, i)| InvoiceEdge {
                cursor: cursor_of(at),
                node: i.into(),
            })
            .collect();
        Ok(InvoiceConnection {
            tenant: self.id(),
            page_info: PageInfo {
                has_next_page: has_next,
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_cursor_reads_back_exactly() {
        let at = InvoicePosition {
            month: chrono::NaiveDate::from_ymd_opt(2026, 11, 1).expect("day"),
            created_at: chrono::DateTime::from_timestamp_micros(1_796_000_000_000_007)
                .expect("instant"),
            id: Uuid::now_v7(),
        };
        assert_eq!(parse_cursor(&cursor_of(at)).ok(), Some(at));
        assert!(parse_cursor(&crate::cursor::encode("invoice", "2026-11-01:1")).is_err());
    }
}
