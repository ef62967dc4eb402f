//! Database bootstrap, run by `yoyaku serve` and `yoyaku migrate` as the *owning* role:
//! create the database if missing, apply the migrations, and make sure the runtime role exists,
//! owns nothing, cannot bypass row-level security and has exactly the privileges it needs.
//! The server then connects as that runtime role only.

use std::time::Duration;

use sqlx::{
    Connection, Executor, PgConnection, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::config::Settings;

/// The one ordered migration set for the whole database (`migrations/`).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(
        "could not reach PostgreSQL at {target}: {reason}\n\
         Is it running? On this kind of machine start it with\n    \
         pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
         or point YOYAKU_DATABASE__URL (or database.url in the config file) at a running server."
    )]
    Unreachable { target: String, reason: String },
    #[error("could not prepare the database {target}: {source}")]
    Database {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("could not apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "the database {target} has migrations this release does not know: {unknown}. A newer \
         release has migrated it; run that release (or a newer one), never an older binary against \
         a newer schema (docs/operations.md, \"Changing the schema without downtime\")"
    )]
    SchemaNewer { target: String, unknown: String },
    #[error("the runtime role {role} is unsafe: {why}")]
    UnsafeRuntimeRole { role: String, why: String },
    #[error("could not create the demo municipality: {0}")]
    Demo(#[from] platform::demo::DemoError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("could not load the authorization policy: {0}")]
    Authz(#[from] platform::staff::authz::AuthzError),
}

/// Pools the server needs: `app` (runtime role, RLS applies) and `owner` (bootstrap only, closed
/// after use unless the caller keeps it).
pub struct Databases {
    pub app: PgPool,
    pub owner: PgPool,
}

/// Creates the database if missing, migrates it, and ensures the runtime role. Returns both pools.
pub async fn prepare(settings: &Settings) -> Result<Databases, BootError> {
    let target = settings.database.display_target();
    let owner_opts = settings.database.owner_options()?;
    let timeout = Duration::from_secs(settings.database.connect_timeout_secs);
    create_database_if_missing(&owner_opts, &target, timeout).await?;

    let owner = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(timeout)
        .connect_with(owner_opts)
        .await
        .map_err(|e| unreachable_or_db(&target, e))?;
    refuse_newer_schema(&owner, &target).await?;
    // apalis-postgres's schema first (its own ledger, apalis._sqlx_migrations): ours builds on it
    platform::jobs::migrations().run(&owner).await?;
    MIGRATOR.run(&owner).await?;
    ensure_runtime_role(&owner, settings, &target).await?;

    let app = PgPoolOptions::new()
        .max_connections(settings.database.max_connections)
        .acquire_timeout(timeout)
        .connect_with(settings.database.runtime_options()?)
        .await
        .map_err(|e| unreachable_or_db(&target, e))?;
    Ok(Databases { app, owner })
}

/// Refuses a database on which a migration this binary does not have was applied (a newer release
/// migrated it): an older binary would serve a schema it does not understand.
async fn refuse_newer_schema(owner: &PgPool, target: &str) -> Result<(), BootError> {
    let db_err = |e: sqlx::Error| unreachable_or_db(target, e);
    let ledger: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(owner)
        .await
        .map_err(db_err)?;
    if !ledger {
        return Ok(());
    }
    let applied: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, description FROM _sqlx_migrations ORDER BY version")
            .fetch_all(owner)
            .await
            .map_err(db_err)?;
    let unknown: Vec<String> = applied
        .into_iter()
        .filter(|(v, _)| !MIGRATOR.iter().any(|m| m.version == *v))
        .map(|(v, d)| format!("{v} ({d})"))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(BootError::SchemaNewer {
            target: target.to_owned(),
            unknown: unknown.join(", "),
        })
    }
}

/// Only migrations (the owner's part of `prepare`), for `yoyaku migrate`.
pub async fn migrate(settings: &Settings) -> Result<(), BootError> {
    let dbs = prepare(settings).await?;
    dbs.app.close().await;
    dbs.owner.close().await;
    Ok(())
}

fn unreachable_or_db(target: &str, e: sqlx::Error) -> BootError {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => {
            BootError::Unreachable {
                target: target.to_owned(),
                reason: e.to_string(),
            }
        }
        other => BootError::Database {
            target: target.to_owned(),
            source: other,
        },
    }
}

async fn create_database_if_missing(
    owner_opts: &PgConnectOptions,
    target: &str,
    timeout: Duration,
) -> Result<(), BootError> {
    let name = owner_opts.get_database().unwrap_or("yoyaku").to_owned();
    let maintenance = owner_opts.clone().database("postgres");
    let mut conn = tokio::time::timeout(timeout, PgConnection::connect_with(&maintenance))
        .await
        .map_err(|_| BootError::Unreachable {
            target: target.to_owned(),
            reason: format!("no answer within {} s", timeout.as_secs()),
        })?
        .map_err(|e| unreachable_or_db(target, e))?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| unreachable_or_db(target, e))?;
    if !exists {
        // Identifiers cannot be bound; the name was validated as [A-Za-z0-9_-] in config and is
        // quoted by PostgreSQL's own quote_ident.
        let create: String = sqlx::query_scalar("SELECT format('CREATE DATABASE %I', $1::text)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| unreachable_or_db(target, e))?;
        match conn.execute(sqlx::AssertSqlSafe(create)).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // another process created it in the meantime
            Err(e) if db_code(&e).as_deref() == Some("42P04") => {}
            Err(e) => return Err(unreachable_or_db(target, e)),
        }
    }
    conn.close().await.ok();
    Ok(())
}

fn db_code(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// Makes sure the runtime role exists with no power beyond reading and writing rows under RLS.
///
/// Roles are cluster-wide but advisory locks are per database, so processes starting against
/// different databases of one cluster can still race on the role: the role is only altered when it
/// needs to be, and a lost race (duplicate role, concurrently updated catalog row) is retried.
async fn ensure_runtime_role(
    owner: &PgPool,
    settings: &Settings,
    target: &str,
) -> Result<(), BootError> {
    let mut attempt = 0;
    loop {
        match try_ensure_runtime_role(owner, settings, target).await {
            Err(BootError::Database { source, .. })
                if attempt < 5
                    && matches!(
                        db_code(&source).as_deref(),
                        Some("XX000" | "42710" | "23505" | "40001" | "40P01")
                    ) =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            other => return other,
        }
    }
}

async fn try_ensure_runtime_role(
    owner: &PgPool,
    settings: &Settings,
    target: &str,
) -> Result<(), BootError> {
    let role = &settings.database.runtime_role;
    let db_err = |e: sqlx::Error| unreachable_or_db(target, e);
    let mut tx = owner.begin().await.map_err(db_err)?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('yoyaku.runtime_role'))")
        .await
        .map_err(db_err)?;

    // None: missing; Some(true): exists with exactly the attributes we want.
    let state: Option<bool> = sqlx::query_scalar(
        "SELECT rolcanlogin AND NOT rolsuper AND NOT rolbypassrls AND NOT rolcreatedb AND NOT rolcreaterole \
         FROM pg_roles WHERE rolname = $1",
    )
    .bind(role)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_err)?;
    let password = secrecy::ExposeSecret::expose_secret(&settings.database.runtime_password);
    // Role names and passwords cannot be bound in utility statements: PostgreSQL's format() quotes
    // them (%I identifier, %L literal), the role name was validated as [a-z0-9_] in config.
    let mut statements = Vec::new();
    match state {
        None => statements.push((
            "SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', $1::text)",
            None,
        )),
        Some(false) => statements.push((
            "SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', $1::text)",
            None,
        )),
        Some(true) => {}
    }
    if !password.is_empty() {
        statements.push((
            "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)",
            Some(password),
        ));
    }
    let grants: [&'static str; 11] = [
        "SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), $1::text)",
        "SELECT format('GRANT USAGE ON SCHEMA public TO %I', $1::text)",
        "SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I', $1::text)",
        "SELECT format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', $1::text)",
        // the migration ledger is read by /readyz and written by the owner only
        "SELECT format('REVOKE INSERT, UPDATE, DELETE ON _sqlx_migrations FROM %I', $1::text)",
        // the audit trails are append-only for the server
        "SELECT format('REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, platform_audit_log FROM %I', $1::text)",
        "SELECT format('REVOKE CREATE ON SCHEMA public FROM PUBLIC, %I', $1::text)",
        // the job runtime (apalis): rows and functions, nothing to own or create; its migration
        // ledger is the owner's
        "SELECT format('GRANT USAGE ON SCHEMA apalis TO %I', $1::text)",
        "SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON apalis.jobs, apalis.workers TO %I', $1::text)",
        "SELECT format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA apalis TO %I', $1::text)",
        "SELECT format('REVOKE ALL ON apalis._sqlx_migrations FROM %I', $1::text)",
    ];
    statements.extend(grants.into_iter().map(|g| (g, None)));
    for (make, extra) in statements {
        let mut query = sqlx::query_scalar(make).bind(role);
        if let Some(extra) = extra {
            query = query.bind(extra);
        }
        let sql: String = query.fetch_one(&mut *tx).await.map_err(db_err)?;
        tx.execute(sqlx::AssertSqlSafe(sql)).await.map_err(db_err)?;
    }

    let (superuser, bypass, owned): (bool, bool, i64) = sqlx::query_as(
        "SELECT r.rolsuper, r.rolbypassrls, \
                (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid) \
         FROM pg_roles r WHERE r.rolname = $1",
    )
    .bind(role)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_err)?;
    if superuser || bypass || owned > 0 {
        return Err(BootError::UnsafeRuntimeRole {
            role: role.clone(),
            why: format!(
                "superuser={superuser}, bypassrls={bypass}, owns {owned} relations; it must be none of these"
            ),
        });
    }
    tx.commit().await.map_err(db_err)?;
    Ok(())
}

/// Readiness: the database answers and every migration this binary knows is applied.
pub async fn check_ready(pool: &PgPool) -> Result<(), String> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .map_err(|e| format!("database unreachable: {e}"))?;
    let missing: Vec<i64> = MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("migrations not applied: {missing:?}"))
    }
}
