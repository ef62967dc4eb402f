//! The GraphQL half of the surface ([`crate::surface`]): every field that can be asked for at the
//! top, and every field of the objects the staff containers return, with who may use it.

use admin_ui::Access;
use platform::staff::authz::{Act, Object};

use crate::surface::{Field, Kind};

const RESIDENT: Kind = Kind::Resident(
    "resident token fields: the resident desk (branch desk) tests them; staff sessions and API keys are not resident credentials",
);
const fn city(o: Object, a: Act) -> Kind {
    Kind::Staff(Access::City(o, a))
}

/// Every GraphQL field that can be asked for at the top, and every field of the objects the staff
/// containers (`city`, `billing`) return.
pub const FIELDS: &[Field] = &[
    Field {
        name: "Query.tenant",
        kind: Kind::Public,
        query: "query($slug: String!) { tenant(city: $slug) { status } }",
        allowed: None,
    },
    Field {
        name: "Query.city",
        kind: Kind::Staff(Access::Member),
        query: "query($slug: String!) { city(city: $slug) { slug } }",
        allowed: None,
    },
    Field {
        name: "City.slug",
        kind: Kind::Staff(Access::Member),
        query: "query($slug: String!) { city(city: $slug) { slug } }",
        allowed: None,
    },
    Field {
        name: "City.vaccines",
        kind: city(Object::Vaccines, Act::Read),
        query: "query($slug: String!) { city(city: $slug) { vaccines { name } } }",
        allowed: None,
    },
    Field {
        name: "City.venues",
        kind: city(Object::Venues, Act::Read),
        query: "query($slug: String!) { city(city: $slug) { venues { name } } }",
        allowed: None,
    },
    Field {
        name: "City.venue",
        kind: Kind::Staff(Access::Venue(Act::Read)),
        query: "query($slug: String!, $venue: UUID!) { city(city: $slug) { venue(id: $venue) { name } } }",
        allowed: None,
    },
    Field {
        name: "City.schedules",
        kind: Kind::Staff(Access::Venue(Act::Read)),
        query: "query($slug: String!, $venue: UUID!) { city(city: $slug) { schedules(venueId: $venue) { id } } }",
        allowed: None,
    },
    Field {
        name: "City.slots",
        kind: Kind::Staff(Access::Venue(Act::Read)),
        query: "query($slug: String!, $venue: UUID!) { city(city: $slug) { slots(venueId: $venue, first: 3) { capacity } } }",
        allowed: None,
    },
    Field {
        name: "City.venueSlots",
        kind: Kind::Staff(Access::Venue(Act::Read)),
        query: "query($slug: String!, $venue: UUID!) { city(city: $slug) { venueSlots(venueId: $venue, first: 3) { totalCount edges { cursor node { capacity } } pageInfo { hasNextPage } } } }",
        allowed: None,
    },
    Field {
        name: "City.resident",
        kind: city(Object::Residents, Act::Read),
        query: "query($slug: String!) { city(city: $slug) { resident(ticketNo: \"1000000001\") { kanaName } } }",
        allowed: None,
    },
    Field {
        name: "City.auditLog",
        kind: city(Object::Audit, Act::Read),
        query: "query($slug: String!) { city(city: $slug) { auditLog(limit: 3) { action } } }",
        allowed: None,
    },
    Field {
        name: "City.auditEntries",
        kind: city(Object::Audit, Act::Read),
        query: "query($slug: String!) { city(city: $slug) { auditEntries(first: 3) { edges { cursor node { action } } pageInfo { hasNextPage endCursor } } } }",
        allowed: None,
    },
    Field {
        name: "City.bookings",
        kind: city(Object::Bookings, Act::Read),
        query: "query($slug: String!) { city(city: $slug) { bookings(first: 3) { totalCount edges { cursor node { id } } pageInfo { hasNextPage } } } }",
        allowed: None,
    },
    Field {
        name: "City.residents",
        kind: city(Object::Residents, Act::Read),
        query: "query($slug: String!) { city(city: $slug) { residents(first: 3) { totalCount edges { cursor node { id } } pageInfo { hasNextPage } } } }",
        allowed: None,
    },
    Field {
        name: "City.intakeList",
        kind: Kind::Staff(Access::Intake(Act::Read)),
        query: "query($slug: String!, $venue: UUID!) { city(city: $slug) { intakeList(venueId: $venue, day: \"2031-03-03\") { bookingId status } } }",
        allowed: None,
    },
    Field {
        name: "City.intakeVisit",
        kind: Kind::Staff(Access::Intake(Act::Read)),
        query: "query($slug: String!, $venue: UUID!) { city(city: $slug) { intakeVisit(venueId: $venue, bookingId: $venue) { sideEffectNotes { kind note } } } }",
        allowed: None,
    },
    Field {
        name: "City.vaccinations",
        kind: city(Object::Records, Act::Read),
        query: "query($slug: String!) { city(city: $slug) { vaccinations(first: 3) { totalCount edges { node { id lotNumber } } } } }",
        allowed: None,
    },
    Field {
        name: "City.residentImport",
        kind: city(Object::Imports, Act::Write),
        query: "query($slug: String!, $venue: UUID!) { city(city: $slug) { residentImport(id: $venue) { id status } } }",
        allowed: None,
    },
    Field {
        name: "City.export",
        kind: city(Object::Exports, Act::Read),
        query: "query($slug: String!, $venue: UUID!) { city(city: $slug) { export(id: $venue) { id status } } }",
        allowed: None,
    },
    Field {
        name: "City.exports",
        kind: city(Object::Exports, Act::Read),
        query: "query($slug: String!) { city(city: $slug) { exports(first: 3) { totalCount edges { node { id status } } } } }",
        allowed: None,
    },
    Field {
        name: "City.webhookSubscriptions",
        kind: city(Object::Webhooks, Act::Read),
        query: "query($slug: String!) { city(city: $slug) { webhookSubscriptions { id url events } } }",
        allowed: None,
    },
    Field {
        name: "City.webhookDeliveries",
        kind: city(Object::Webhooks, Act::Read),
        query: "query($slug: String!) { city(city: $slug) { webhookDeliveries(first: 3) { nodes { id outcome } pageInfo { hasNextPage } } } }",
        allowed: None,
    },
    Field {
        name: "Query.billing",
        kind: Kind::Staff(Access::Member),
        query: "query($slug: String!) { billing(city: $slug) { slug } }",
        allowed: None,
    },
    Field {
        name: "Billing.slug",
        kind: Kind::Staff(Access::Member),
        query: "query($slug: String!) { billing(city: $slug) { slug } }",
        allowed: None,
    },
    Field {
        name: "Billing.usage",
        kind: city(Object::Billing, Act::Read),
        query: "query($slug: String!) { billing(city: $slug) { usage { kind } } }",
        allowed: None,
    },
    Field {
        name: "Billing.invoices",
        kind: city(Object::Billing, Act::Read),
        query: "query($slug: String!) { billing(city: $slug) { invoices { id } } }",
        allowed: None,
    },
    Field {
        name: "Billing.invoiceHistory",
        kind: city(Object::Billing, Act::Read),
        query: "query($slug: String!) { billing(city: $slug) { invoiceHistory(first: 3) { totalCount edges { cursor node { id } } pageInfo { hasNextPage } } } }",
        allowed: None,
    },
    Field {
        name: "Billing.invoice",
        kind: city(Object::Billing, Act::Read),
        query: "query($slug: String!) { billing(city: $slug) { invoice(id: \"00000000-0000-4000-8000-000000000001\") { id } } }",
        allowed: Some(("NOT_FOUND", "invoice not found")),
    },
    Field {
        name: "Query.bookingStatistics",
        kind: city(Object::Statistics, Act::Read),
        query: "query($slug: String!) { bookingStatistics(city: $slug, period: MONTH) { count } }",
        allowed: None,
    },
    Field {
        name: "Mutation.createVaccine",
        kind: city(Object::Vaccines, Act::Write),
        query: "mutation($slug: String!) { createVaccine(city: $slug, input: { name: \"\", maker: \"M\", doses: 1, minIntervalDays: 0, boosterIntervalMonths: 0, daysUntilEffective: 0, validityDays: 1 }) { vaccine { id } errors { code message field } } }",
        allowed: Some(("VALIDATION", "name")),
    },
    Field {
        name: "Mutation.createVenue",
        kind: city(Object::Venues, Act::Write),
        query: "mutation($slug: String!, $venue: UUID!) { createVenue(city: $slug, input: { name: \"\", kind: MASS, vaccineId: $venue }) { venue { id } errors { code message field } } }",
        allowed: Some(("VALIDATION", "name")),
    },
    Field {
        name: "Mutation.createSchedule",
        kind: Kind::Staff(Access::Venue(Act::Write)),
        query: "mutation($slug: String!, $venue: UUID!) { createSchedule(city: $slug, input: { venueId: $venue, weekdays: [MONDAY], startTime: \"10:00\", endTime: \"09:00\", slotMinutes: 30, capacity: 5, validFrom: \"2031-03-03\", validUntil: \"2031-03-09\" }) { schedule { id } errors { code message field } } }",
        allowed: Some(("VALIDATION", "")),
    },
    Field {
        name: "Mutation.setSlotCapacity",
        kind: Kind::Staff(Access::Venue(Act::Write)),
        query: "mutation($slug: String!, $venue: UUID!) { setSlotCapacity(city: $slug, venueId: $venue, slotId: $venue, capacity: -1) { slot { id } errors { code message field } } }",
        allowed: Some(("VALIDATION", "capacity")),
    },
    // on behalf: a resident and slot the city does not have, so an allowed caller gets the
    // payload's NOT_FOUND user error and nothing changes
    Field {
        name: "Mutation.bookOnBehalf",
        kind: city(Object::Bookings, Act::Write),
        query: "mutation($slug: String!, $venue: UUID!) { bookOnBehalf(city: $slug, input: { residentId: $venue, slotId: $venue, dose: FIRST, idempotencyKey: \"surface-book\" }) { errors { code } } }",
        allowed: None,
    },
    Field {
        name: "Mutation.changeBookingOnBehalf",
        kind: city(Object::Bookings, Act::Write),
        query: "mutation($slug: String!, $venue: UUID!) { changeBookingOnBehalf(city: $slug, input: { bookingId: $venue, slotId: $venue, idempotencyKey: \"surface-change\" }) { errors { code } } }",
        allowed: None,
    },
    Field {
        name: "Mutation.cancelBookingOnBehalf",
        kind: city(Object::Bookings, Act::Write),
        query: "mutation($slug: String!, $venue: UUID!) { cancelBookingOnBehalf(city: $slug, input: { bookingId: $venue, idempotencyKey: \"surface-cancel\" }) { errors { code } } }",
        allowed: None,
    },
    // intake on a booking the city does not have: an allowed caller gets the payload's
    // NOT_FOUND user error and nothing changes
    Field {
        name: "Mutation.recordVaccination",
        kind: Kind::Staff(Access::Intake(Act::Write)),
        query: "mutation($slug: String!, $venue: UUID!) { recordVaccination(city: $slug, input: { venueId: $venue, bookingId: $venue, lotNumber: \"SURFACE\", doseMl: 0.3, vaccinator: \"Surface\" }) { errors { code } } }",
        allowed: None,
    },
    Field {
        name: "Mutation.intakeStep",
        kind: Kind::Staff(Access::Intake(Act::Write)),
        query: "mutation($slug: String!, $venue: UUID!) { intakeStep(city: $slug, input: { venueId: $venue, bookingId: $venue, step: CHECK_IN }) { status errors { code } } }",
        allowed: None,
    },
    Field {
        name: "Mutation.undoIntakeStep",
        kind: Kind::Staff(Access::Intake(Act::Write)),
        query: "mutation($slug: String!, $venue: UUID!) { undoIntakeStep(city: $slug, input: { venueId: $venue, bookingId: $venue, seen: CHECKED_IN }) { status errors { code } } }",
        allowed: None,
    },
    Field {
        name: "Mutation.addSideEffect",
        kind: Kind::Staff(Access::Intake(Act::Write)),
        query: "mutation($slug: String!, $venue: UUID!) { addSideEffect(city: $slug, input: { venueId: $venue, bookingId: $venue, kind: FEVER, severity: MILD, onsetAt: \"2031-03-03T01:00:00Z\" }) { sideEffect { id } errors { code } } }",
        allowed: None,
    },
    // a file without the required columns: the payload's VALIDATION user error, nothing imported
    Field {
        name: "Mutation.startResidentImport",
        kind: city(Object::Imports, Act::Write),
        query: "mutation($slug: String!) { startResidentImport(city: $slug, input: { csv: \"nope\" }) { errors { code field } } }",
        allowed: None,
    },
    // a booked list without its venue: the payload's VALIDATION user error, nothing queued
    Field {
        name: "Mutation.startExport",
        kind: city(Object::Exports, Act::Write),
        query: "mutation($slug: String!) { startExport(city: $slug, input: { kind: BOOKED_LIST }) { errors { code field } } }",
        allowed: None,
    },
    // webhooks: an endpoint that is not https, or an id the city does not have: the payload's
    // user error, nothing changes
    Field {
        name: "Mutation.createWebhookSubscription",
        kind: city(Object::Webhooks, Act::Write),
        query: "mutation($slug: String!) { createWebhookSubscription(city: $slug, input: { url: \"ftp://example.org/hook\", events: [BOOKING_CREATED] }) { secret errors { code field } } }",
        allowed: None,
    },
    Field {
        name: "Mutation.setWebhookSubscriptionActive",
        kind: city(Object::Webhooks, Act::Write),
        query: "mutation($slug: String!, $venue: UUID!) { setWebhookSubscriptionActive(city: $slug, input: { id: $venue, active: false }) { errors { code field } } }",
        allowed: None,
    },
    Field {
        name: "Mutation.deleteWebhookSubscription",
        kind: city(Object::Webhooks, Act::Write),
        query: "mutation($slug: String!, $venue: UUID!) { deleteWebhookSubscription(city: $slug, input: { id: $venue }) { deletedId errors { code field } } }",
        allowed: None,
    },
    Field {
        name: "Mutation.rotateWebhookSecret",
        kind: city(Object::Webhooks, Act::Write),
        query: "mutation($slug: String!, $venue: UUID!) { rotateWebhookSecret(city: $slug, input: { id: $venue }) { secret errors { code field } } }",
        allowed: None,
    },
    Field {
        name: "Query.venues",
        kind: RESIDENT,
        query: "",
        allowed: None,
    },
    Field {
        name: "Query.availability",
        kind: RESIDENT,
        query: "",
        allowed: None,
    },
    Field {
        name: "Query.myBookings",
        kind: RESIDENT,
        query: "",
        allowed: None,
    },
    Field {
        name: "Mutation.requestLoginCode",
        kind: RESIDENT,
        query: "",
        allowed: None,
    },
    Field {
        name: "Mutation.verifyLoginCode",
        kind: RESIDENT,
        query: "",
        allowed: None,
    },
    Field {
        name: "Mutation.book",
        kind: RESIDENT,
        query: "",
        allowed: None,
    },
    Field {
        name: "Mutation.changeBooking",
        kind: RESIDENT,
        query: "",
        allowed: None,
    },
    Field {
        name: "Mutation.cancelBooking",
        kind: RESIDENT,
        query: "",
        allowed: None,
    },
];
