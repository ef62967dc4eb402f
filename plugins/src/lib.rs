//! Notification channels behind one trait (e-mail over SMTP, SMS over HTTP gateways, webhook, the
//! development log channel). Knows nothing of vaccines.
//!
//! Not built yet: the channel trait and its plugins arrive with the notifications issue. Nothing in
//! the product sends messages today, and nothing here claims to.
