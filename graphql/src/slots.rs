//! A venue's slots for staff and integrators: `city { venueSlots(venueId, from, first, after) }`,
//! a Relay-style connection over the platform's keyset page (`platform::city::setup::slot_page`),
//! earliest first; and the deprecated `city { slots(venueId, from, first) }` list. Guard object:
//! the venue (API key scope `venues:read`).

use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::Utc;
use platform::city::setup::{self, SlotPosition};
use platform::staff::authz::{Act, Object as Obj};
use tenants::TenantId;
use uuid::Uuid;

use crate::ApiError;
use crate::auth;
use crate::city_bookings::PageInfo;
use crate::cursor;
use crate::scalars::DateTime;

/// One time slot of a venue and how many of its seats are booked.
#[derive(SimpleObject)]
pub struct Slot {
    /// The slot's id.
    id: Uuid,
    /// When the slot starts.
    starts_at: DateTime,
    /// When the slot ends.
    ends_at: DateTime,
    /// Seats in the slot.
    capacity: i32,
    /// Seats booked.
    booked: i32,
}

impl From<setup::Slot> for Slot {
    fn from(s: setup::Slot) -> Self {
        Self {
            id: s.id,
            starts_at: DateTime(s.starts_at),
            ends_at: DateTime(s.ends_at),
            capacity: s.capacity,
            booked: s.booked,
        }
    }
}

/// One slot of a page and the cursor to continue after it.
#[derive(SimpleObject)]
pub struct SlotEdge {
    /// Opaque; pass it as `after` to continue after this slot.
    cursor: String,
    /// The slot.
    node: Slot,
}

/// A page of a venue's slots, earliest first (by start, then id: an order that never changes, so
/// paging to the end with `endCursor` sees every slot that existed when paging began exactly once).
pub struct SlotConnection {
    tenant: TenantId,
    venue_id: Uuid,
    from: chrono::DateTime<Utc>,
    edges: Vec<SlotEdge>,
    page_info: PageInfo,
}

/// A page of a venue's slots, earliest first (by start, then id: an order that never changes, so
/// paging to the end with `endCursor` sees every slot that existed when paging began exactly once).
#[Object]
impl SlotConnection {
    /// The slots of this page, earliest first.
    async fn edges(&self) -> &[SlotEdge] {
        &self.edges
    }

    /// Where this page ends and whether more follow.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// How many slots of the venue start at or after `from`, all pages together (counted when
    /// asked for).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let mut scope = auth::enter(ctx, self.tenant, Obj::Venue(self.venue_id), Act::Read).await?;
        let n = setup::slot_count(&mut scope, self.venue_id, self.from)
            .await
            .map_err(ApiError::from)?;
        scope.commit().await.map_err(ApiError::from)?;
        Ok(n)
    }
}

fn cursor_of(at: SlotPosition) -> String {
    cursor::encode(
        "slot",
        &format!("{}:{}", cursor::micros(at.starts_at), at.id),
    )
}

fn parse_cursor(c: &str) -> Result<SlotPosition, ApiError> {
    cursor::decode("slot", c, |p| {
        let (starts_at, id) = p.split_once(':')?;
        Some(SlotPosition {
            starts_at: cursor::from_micros(starts_at)?,
            id: Uuid::try_parse(id).ok()?,
        })
    })
}

/// `city { venueSlots(…) }`: one page (the guard first: another city's venue or a missing scope
/// sees no validation hint; then a bad size or cursor is VALIDATION before anything is read).
pub async fn page(
    ctx: &Context<'_>,
    tenant: TenantId,
    venue_id: Uuid,
    from: Option<DateTime>,
    first: i64,
    after: Option<String>,
) -> Result<SlotConnection> {
    let mut scope = auth::enter(ctx, tenant, Obj::Venue(venue_id), Act::Read).await?;
    cursor::page_size(first, 500)?;
    let after = after.as_deref().map(parse_cursor).transpose()?;
    let from = from.map_or_else(Utc::now, |t| t.0);
    let mut slots = setup::slot_page(&mut scope, venue_id, from, after, first)
        .await
        .map_err(ApiError::from)?;
    scope.commit().await.map_err(ApiError::from)?;
    let has_next = slots.len() as i64 > first;
    slots.truncate(first as usize);
    let edges: Vec<SlotEdge> = slots
        .into_iter()
        .map(|s| SlotEdge {
            cursor: cursor_of(s.position()),
            node: s.into(),
        })
        .collect();
    Ok(SlotConnection {
        tenant,
        venue_id,
        from,
        page_info: PageInfo {
            has_next_page: has_next,
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        },
        edges,
    })
}

/// The deprecated `city { slots(venueId, from, first) }`: at most `first` (1–500) slots.
pub async fn list(
    ctx: &Context<'_>,
    tenant: TenantId,
    venue_id: Uuid,
    from: Option<DateTime>,
    first: i64,
) -> Result<Vec<Slot>> {
    if !(1..=500).contains(&first) {
        return Err(ApiError::Validation("first must be between 1 and 500".into()).into());
    }
    let mut scope = auth::enter(ctx, tenant, Obj::Venue(venue_id), Act::Read).await?;
    let from = from.map_or_else(Utc::now, |t| t.0);
    let list = setup::list_slots(&mut scope, venue_id, from, first)
        .await
        .map_err(ApiError::from)?;
    Ok(list.into_iter().map(Slot::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_cursor_reads_back_exactly() {
        let at = SlotPosition {
            starts_at: chrono::DateTime::from_timestamp_micros(1_796_000_000_000_000)
                .expect("instant"),
            id: Uuid::now_v7(),
        };
        assert_eq!(parse_cursor(&cursor_of(at)).ok(), Some(at));
        assert!(parse_cursor(&cursor::encode("audit", &format!("1:{}", at.id))).is_err());
    }
}
