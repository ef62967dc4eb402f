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
    /// The authorization guard (casbin enforcer over `authz_rules`), shared with the router.
    pub authz: platform::authz::Authz,
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
        let authz = platform::authz::Authz::load(dbs.app.clone()).await?;
        if settings.demo.seed && settings.environment != Environment::Production {
            // idempotent: logins that exist (perhaps with a changed password) are left alone
            platform::demo::create_demo_staff(&dbs.app, &authz, &settings.auth.policy()).await?;
        }
        authz.spawn_reload(std::time::Duration::from_secs(
            settings.auth.policy_reload_secs,
        ));
        let router = http::router(&settings, dbs.app.clone(), authz.clone());
        Ok(Self {
            settings,
            pool: dbs.app,
            router,
            authz,
            demo_created,
        })
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // the peer address feeds login throttling per IP and the audit log's "from where"
        let service = self
            .router
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, service)
            .with_graceful_shutdown(shutdown)
            .await?;
        self.pool.close().await;
        Ok(())
    }
}
