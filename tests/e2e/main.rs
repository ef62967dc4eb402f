//! End-to-end tests: the real application against real PostgreSQL, over real HTTP. One test binary
//! (fast to link); each test gets its own database cloned from a migrated template.

mod browser;
mod support;
mod surface;

mod admin_flow;
mod authz_matrix;
mod backup;
mod billing;
mod billing_console;
mod booking;
mod booking_rules;
mod callcenter;
mod channels;
mod city_setup;
mod cli;
mod csrf;
mod edge;
mod event_webhooks;
mod exports;
mod graphql_api;
mod graphql_bookings;
mod graphql_http;
mod graphql_limits;
mod hardening;
mod health;
mod import;
mod intake;
mod isolation;
mod job_runtime;
mod key_shape;
mod metrics;
mod notifications;
mod notifications_ui;
mod overview;
mod plugin_channels;
mod resident_api;
mod resident_desk;
mod resident_login;
mod resident_site;
mod seat_rule;
mod shipped_binary;
mod staff_auth;
mod stats;
mod suspension;
mod tenant_archive;
