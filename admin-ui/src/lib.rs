//! The staff and operator web UI (server-rendered). Not built yet: it arrives with the city-setup
//! issue. Thin by design: parse the form, call `platform`/`tenants`, render.
