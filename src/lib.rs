//! The `yoyaku` binary's library half: configuration, database bootstrap and the HTTP server, wired
//! together so that `main.rs` and the end-to-end tests start exactly the same application.

pub mod config;
pub mod db;
pub mod http;
pub mod telemetry;

use std::future::Future;

use config::{Environment, Settings};

/// A prepared application: database ready, runtime pool open, router built.
pub struct App {
    pub settings: Settings,
    pub pool: sqlx::PgPool,
    pub router: axum::Router,
    /// The demo municipality, when this start created it.
    pub demo_created: bool,
}

impl App {
    /// Bootstraps the database (as the owner) and builds the router (serving as the runtime role).
    pub async fn build(settings: Settings) -> Result<Self, db::BootError> {
        let dbs = db::prepare(&settings).await?;
        let mut demo_created = false;
        if settings.demo.seed && settings.environment != Environment::Production {
            // Seeded as the owner, but through the tenant-scoped transaction like any other write.
            demo_created = platform::demo::create_if_missing(&dbs.owner)
                .await?
                .is_some();
        }
        dbs.owner.close().await;
        let router = http::router(&settings, dbs.app.clone());
        Ok(Self {
            settings,
            pool: dbs.app,
            router,
            demo_created,
        })
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        self.pool.close().await;
        Ok(())
    }
}
