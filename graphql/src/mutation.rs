use async_graphql::MergedObject;

/// The mutation root: one part per area, like the query root.
#[derive(MergedObject, Default)]
pub struct Mutation(
    crate::admin::AdminMutation,
    crate::BookingMutation,
    crate::city_bookings::CityBookingMutation,
    crate::intake::IntakeMutation,
    crate::imports::ImportMutation,
    crate::exports::ExportMutation,
    crate::webhooks::WebhookMutation,
);
