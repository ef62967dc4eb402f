//! `city { residents(first, after, search) }`: the city's register of eligible residents as a
//! Relay-style connection over the platform's keyset page (`platform::residents::register`), in
//! ticket-number order. Guard object `residents` (API key scope `residents:read`); every page is
//! audited by the platform (`residents.list`).

use async_graphql::{Context, Object, Result, SimpleObject};
use platform::city::setup;
use platform::residents::register::{self, RegisterError};
use platform::staff::authz::{Act, Object as Obj};
use tenants::TenantId;
use uuid::Uuid;

use crate::ApiError;
use crate::auth;
use crate::city_bookings::PageInfo;
use crate::enums::Sex;
use crate::scalars::Date;

/// One resident of a page and the cursor to continue after them.
#[derive(SimpleObject)]
pub struct ResidentEdge {
    /// Opaque; pass it as `after` to continue after this resident.
    cursor: String,
    /// The resident (personal data: the page is recorded in the audit log).
    node: Resident,
}

/// A page of the city's residents in ticket-number order: paging to the end with `endCursor`
/// sees every resident that existed when paging began exactly once.
pub struct ResidentConnection {
    tenant: TenantId,
    search: Option<String>,
    edges: Vec<ResidentEdge>,
    page_info: PageInfo,
}

/// A page of the city's residents in ticket-number order.
#[Object]
impl ResidentConnection {
    /// The residents of this page, in ticket-number order.
    async fn edges(&self) -> &[ResidentEdge] {
        &self.edges
    }

    /// Where this page ends and whether more follow.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// How many residents match the search, all pages together (counted when asked for).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Residents, Act::Read).await?;
        let n = register::count(&mut scope, self.search.as_deref())
            .await
            .map_err(register_error)?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(n)
    }
}

fn register_error(e: RegisterError) -> ApiError {
    match e {
        RegisterError::Database(e) => e.into(),
        other => ApiError::Validation(other.to_string()),
    }
}

/// One audited page (the guard first: another city or a missing scope sees no validation hint).
pub async fn page(
    ctx: &Context<'_>,
    tenant: TenantId,
    first: i64,
    after: Option<String>,
    search: Option<String>,
) -> Result<ResidentConnection> {
    let mut scope = auth::enter(ctx, tenant, Obj::Residents, Act::Read).await?;
    let page = register::page(&mut scope, search.as_deref(), after.as_deref(), first)
        .await
        .map_err(register_error)?;
    scope.commit().await.map_err(ApiError::from)?;
    let end_cursor = page
        .residents
        .last()
        .map(|r| register::cursor_of(&r.ticket_no));
    Ok(ResidentConnection {
        tenant,
        search,
        edges: page
            .residents
            .into_iter()
            .map(|r| ResidentEdge {
                cursor: register::cursor_of(&r.ticket_no),
                node: r.into(),
            })
            .collect(),
        page_info: PageInfo {
            has_next_page: page.has_next,
            end_cursor,
        },
    })
}

/// An eligible resident; every lookup is recorded in the audit log.
#[derive(SimpleObject)]
pub struct Resident {
    /// The resident's id.
    id: Uuid,
    /// Vaccination ticket number.
    ticket_no: String,
    /// Date of birth.
    birth_date: Date,
    /// Name in katakana, as on the ticket.
    kana_name: String,
    /// Sex as the register records it.
    sex: Sex,
    /// Mobile number, when known.
    phone: Option<String>,
    /// E-mail address, when known.
    email: Option<String>,
    /// Postal code, when known.
    postal_code: Option<String>,
    /// The language the resident chose (BCP 47), when they chose one.
    preferred_locale: Option<String>,
}

impl From<setup::Resident> for Resident {
    fn from(r: setup::Resident) -> Self {
        Self {
            id: r.id,
            ticket_no: r.ticket_no,
            birth_date: Date(r.birth_date),
            kana_name: r.kana_name,
            sex: Sex::from_platform(&r.sex),
            phone: r.phone,
            email: r.email,
            postal_code: r.postal_code,
            preferred_locale: r.preferred_locale,
        }
    }
}
