//! The resident booking site (phone first, works without JavaScript). Not built yet: it arrives with
//! the resident-booking issue. Thin by design: parse the form, call `platform`, render.

use axum::Router;

pub fn router<S: Clone + Send + Sync + 'static>(services: platform::ResidentServices) -> Router<S> {
    let _ = services;
    Router::new()
}
