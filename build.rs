//! `sqlx::migrate!("./migrations")` (src/db.rs) embeds the migrations at compile time, but cargo
//! does not know that a NEW file in `migrations/` changes the binary: without this, an incremental
//! build kept shipping the old list (sqlx documents this build script for it).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
