//! The `yoyaku` binary's library half: configuration, database bootstrap and the HTTP server, wired
//! together so that `main.rs` and the end-to-end tests start exactly the same application.

pub mod access_log;
pub mod callbacks;
pub mod config;
pub mod db;
pub mod dev;
pub mod edge;
pub mod forwarded;
pub mod http;
pub mod metrics;
pub mod panic;
pub mod telemetry;

use std::future::Future;

use config::{Environment, Settings};

/// What every entry point of the binary does first (`main` before any command; [`App::build`] for
/// whoever builds the application — `serve`, `worker`, the end-to-end tests; the bench): the
/// process-wide settings the binary depends on, installed once: the TLS crypto provider (reqwest is
/// built with `rustls-no-provider`, so without a process default the first HTTP client — an SMS
/// gateway, a webhook — panics) and the Prometheus metrics recorder ([`metrics::install`]). Nothing
/// else may install process-wide state: a test that needs it gets it from here, through the same
/// path as the binary.
pub fn init_process() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // ring: the same provider lettre and sqlx are built with (Cargo.toml); no C toolchain needed.
        if rustls::crypto::ring::default_provider()
            .install_default()
            .is_err()
        {
            // another provider was installed before us (an embedding program): keep theirs
            tracing::debug!("a TLS crypto provider was already installed");
        }
        metrics::install();
    });
}

/// A prepared application: database ready, runtime pool open, router built.
pub struct App {
    pub settings: Settings,
    pub pool: sqlx::PgPool,
    pub router: axum::Router,
    /// The authorization guard (casbin enforcer over `authz_rules`), shared with the router.
    pub authz: platform::staff::authz::Authz,
    /// The demo municipality, when this start created it.
    pub demo_created: bool,
    /// The development SMS channel: what the notification worker "sent" (shown at /dev/messages
    /// outside production).
    pub messages: plugins::LogChannel,
    /// The notification worker (queues `notify-urgent` and `notify`), run by [`App::run_workers`].
    pub worker: platform::notifications::Worker,
    /// The export worker (queue `exports`, docs/exports.md), run by [`App::run_workers`].
    pub exports: platform::exports::ExportWorker,
    /// The event webhook worker (queue `webhooks`, docs/webhooks.md), run by [`App::run_workers`].
    pub webhooks: platform::webhooks::WebhookWorker,
    /// The admin listener (`metrics.listen`, bound by `build`): `/metrics`, never on the public port.
    pub admin_addr: Option<std::net::SocketAddr>,
    /// The per-key request budgets of `/graphql` (in this process's memory; docs/api.md).
    pub key_limits: platform::staff::api_keys::KeyLimits,
    /// The resident desk the router serves (its caches are the ones the change feed keeps).
    pub residents: platform::ResidentDesk,
    /// This process's listener on the change feed (docs/architecture.md, "Caches and the change
    /// feed"), started by [`App::build`] for `serve`, `worker`, the tests and the bench alike.
    pub changes: platform::changes::Feed,
    admin_listener: Option<tokio::net::TcpListener>,
}

/// The admin listener's server, running until [`Admin::stop`].
pub struct Admin {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Admin {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

impl App {
    /// Bootstraps the database (as the owner) and builds the router (serving as the runtime role).
    pub async fn build(settings: Settings) -> Result<Self, db::BootError> {
        init_process();
        settings.validate()?;
        let dbs = db::prepare(&settings).await?;
        let mut demo_created = false;
        if settings.demo.seed && settings.environment != Environment::Production {
            // Seeded as the owner, but through the tenant-scoped transaction like any other write.
            demo_created = platform::demo::create_if_missing(&dbs.owner)
                .await?
                .is_some();
        }
        if let Some(issuer) = settings.billing.issuer() {
            let mut conn = dbs
                .app
                .acquire()
                .await
                .map_err(|e| db::BootError::Database {
                    target: settings.database.display_target(),
                    source: e,
                })?;
            tenants::billing::set_issuer(&mut conn, &issuer)
                .await
                .map_err(|e| db::BootError::Database {
                    target: settings.database.display_target(),
                    source: match e {
                        tenants::billing::BillingError::Database(e) => e,
                        other => sqlx::Error::Protocol(other.to_string()),
                    },
                })?;
        }
        dbs.owner.close().await;
        let authz = platform::staff::authz::Authz::load(dbs.app.clone()).await?;
        if settings.demo.seed && settings.environment != Environment::Production {
            // idempotent: logins that exist (perhaps with a changed password) are left alone
            platform::demo::create_demo_staff(&dbs.app, &authz, &settings.auth.policy()).await?;
        }
        authz.spawn_reload(std::time::Duration::from_secs(
            settings.auth.policy_reload_secs,
        ));
        let messages = plugins::LogChannel::new();
        let secret = {
            let configured = secrecy::ExposeSecret::expose_secret(&settings.residents.code_secret);
            if configured.is_empty() {
                platform::residents::auth::CodeSecret::random()
            } else {
                platform::residents::auth::CodeSecret::from_setting(configured)
            }
        };
        let sealing_key = settings
            .notifications
            .sealing_key(settings.environment)
            .map(platform::notifications::channels::SealingKey::new)?;
        let pacing = platform::notifications::Pacing {
            in_flight: Default::default(),
            busy_at: settings.residents.worker_busy_requests,
            max_defer: std::time::Duration::from_millis(settings.residents.worker_max_defer_ms),
        };
        let worker = platform::notifications::Worker {
            pacing: pacing.clone(),
            pool: dbs.app.clone(),
            // the log channel stands in for unconfigured channels, never in production
            fallback: (settings.environment != Environment::Production).then(|| {
                std::sync::Arc::new(messages.clone()) as std::sync::Arc<dyn plugins::Channel>
            }),
            secret: secret.clone(),
            sealing_key: sealing_key.clone(),
            public_url: settings.public_url(),
            jobs: settings.jobs.runtime(),
            names: platform::notifications::Worker::names(),
        };
        let mut webhooks = platform::webhooks::WebhookWorker::new(
            dbs.app.clone(),
            sealing_key.clone(),
            settings.jobs.runtime(),
        )
        .map_err(|e| config::ConfigError(format!("webhooks: {e}")))?;
        webhooks.pacing = pacing.clone();
        let key_limits =
            platform::staff::api_keys::KeyLimits::new(settings.auth.api_key_requests_per_minute);
        let residents = platform::ResidentDesk::new(dbs.app.clone(), secret, authz.tenant_cache());
        // what another process changes, this one's caches forget (platform::changes)
        let changes = platform::changes::listen(&dbs.app, residents.caches());
        let router = http::router(
            &settings,
            dbs.app.clone(),
            authz.clone(),
            residents.clone(),
            messages.clone(),
            sealing_key,
            http::Shared {
                in_flight: pacing.in_flight,
                key_limits: key_limits.clone(),
            },
        );
        let mut exports = settings.exports.worker(dbs.app.clone());
        exports.jobs = settings.jobs.runtime();
        let admin_listener = match settings.metrics.listen_addr()? {
            Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                config::ConfigError(format!(
                    "metrics.listen: could not listen on {addr}: {e} (choose a free port)"
                ))
            })?),
            None => None,
        };
        let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
        Ok(Self {
            admin_addr,
            key_limits,
            residents,
            changes,
            admin_listener,
            settings,
            exports,
            webhooks,
            pool: dbs.app,
            router,
            authz,
            demo_created,
            messages,
            worker,
        })
    }

    /// Starts the admin listener (`/metrics`) if `metrics.listen` is set; `serve` does it itself,
    /// `yoyaku worker` calls it.
    pub fn spawn_admin(&mut self) -> Option<Admin> {
        let listener = self.admin_listener.take()?;
        let router = metrics::router(self.pool.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the admin listener stopped");
            }
        });
        Some(Admin { stop, task })
    }

    /// Runs every worker of the job runtime (docs/architecture.md, Jobs) until `shutdown`
    /// completes, finishing the batches in progress: login codes, other messages, exports, event
    /// webhooks, cron ticks, and the cron scheduler that queues the ticks (once across processes).
    pub fn run_workers(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = move || {
            let mut rx = stopped.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let jobs = self.settings.jobs.runtime();
        let notify = self.worker.clone().run(wait());
        let exports = self.exports.clone().run(wait());
        let webhooks = self.webhooks.clone().run(wait());
        let cron = platform::jobs::Runner::new(
            self.pool.clone(),
            platform::jobs::CRON,
            1,
            jobs.clone(),
            platform::jobs::cron::CronHandler {
                pool: self.pool.clone(),
            },
        )
        .run(wait());
        let schedules =
            platform::jobs::cron::CronJob::parse(platform::jobs::cron::BILLING, &jobs.billing_cron)
                .into_iter()
                .chain(platform::jobs::cron::CronJob::parse(
                    platform::jobs::cron::CLEANUP,
                    platform::jobs::cron::CLEANUP_SCHEDULE,
                ))
                .collect();
        let scheduler = platform::jobs::cron::schedule(self.pool.clone(), schedules, wait());
        async move {
            let signal = async move {
                shutdown.await;
                let _ = stop.send(true);
            };
            tokio::join!(notify, exports, webhooks, cron, scheduler, signal);
        }
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests; runs the workers too
    /// unless `jobs.in_serve` is off.
    pub async fn serve(
        mut self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let admin = self.spawn_admin();
        let (stop_workers, workers_stopped) = tokio::sync::oneshot::channel::<()>();
        let workers = self.settings.jobs.in_serve.then(|| {
            tokio::spawn(self.run_workers(async {
                let _ = workers_stopped.await;
            }))
        });
        // the peer address feeds login throttling per IP and the audit log's "from where"
        let service = self
            .router
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, service)
            .with_graceful_shutdown(shutdown)
            .await?;
        let _ = stop_workers.send(());
        if let Some(workers) = workers {
            let _ = workers.await;
        }
        if let Some(admin) = admin {
            admin.stop().await;
        }
        self.pool.close().await;
        Ok(())
    }
}
