//! `yoyaku`: serve the platform, run migrations, manage tenants. `cargo run --release` = `yoyaku serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use yoyaku::{App, config::Settings, db};

/// mimalloc instead of glibc's malloc: glibc gives threads that allocate under contention arenas
/// of their own (up to eight per core) and keeps what each once held; the runtime's threads change
/// (a wide GraphQL answer hands its worker's queue to a new thread, blocking-pool threads come and
/// go), so the arenas multiplied and the server's memory peaked at 145–165 MB in the attack
/// benchmark (107–117 MB with two glibc arenas; docs/benchmarks.md, "Attack").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "yoyaku",
    version,
    about = "Vaccination booking for municipalities: one deployment, every city an isolated tenant.",
    after_help = "Without a command, `yoyaku` serves (same as `yoyaku serve`).\n\
                  Settings: built-in defaults < --config FILE < YOYAKU_* environment variables (see README)."
)]
struct Cli {
    /// TOML config file (keys as in the README's configuration table).
    #[arg(long, global = true, env = "YOYAKU_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Prepare the database (create, migrate, runtime role, demo city outside production) and serve
    /// HTTP until SIGINT/SIGTERM.
    Serve,
    /// Create the database if missing, apply migrations and ensure the runtime role; then exit.
    Migrate,
    /// Run the job workers (notifications and reminders, exports, the billing tick) without serving
    /// HTTP, until SIGINT/SIGTERM (batches in progress are finished). Several workers, and
    /// servers, can run side by side.
    Worker,
    /// Manage municipalities (tenants).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Print the GraphQL schema (SDL); the checked-in copy is graphql/schema.graphql.
    GraphqlSchema,
    /// Import data into a municipality.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Manage staff accounts.
    #[command(subcommand)]
    Staff(StaffCommand),
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Import eligible residents from a CSV file (UTF-8 or Shift_JIS; columns ticket_no, birth_date,
    /// kana_name, sex[, phone, email, postal_code, preferred_language]). Nothing is imported when a
    /// row is invalid, unless --import-valid-rows.
    Residents(ImportResidents),
}

#[derive(Args)]
struct ImportResidents {
    /// The municipality's slug.
    #[arg(long)]
    tenant: String,
    /// Import the valid rows even when some rows are invalid.
    #[arg(long)]
    import_valid_rows: bool,
    /// The CSV file.
    file: PathBuf,
}

#[derive(Subcommand)]
enum StaffCommand {
    /// Create the platform operator account (or make an account the operator) and print a one-time
    /// link to set its password.
    CreateOperator {
        /// The operator's e-mail address.
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Register a municipality (status: onboarding).
    Create(CreateTenant),
    /// List every municipality.
    List,
    /// Write every row of one municipality to an archive file (format: docs/operations.md).
    Export {
        /// The municipality's slug.
        #[arg(long)]
        slug: String,
        /// The archive to write (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Delete every row of one municipality (offboarding). Refused while it is active or has live
    /// bookings on slots that have not started; export it first.
    Delete {
        /// The municipality's slug.
        #[arg(long)]
        slug: String,
        /// The slug again, to confirm.
        #[arg(long, value_name = "SLUG")]
        confirm: String,
    },
    /// Import an archive written by `tenant export` into this database (which must not have that
    /// municipality, and must be at the archive's schema version).
    Import {
        /// The archive to read.
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
    },
}

#[derive(Args)]
struct CreateTenant {
    /// URL identifier, e.g. yokohama (lowercase letters, digits, '-').
    #[arg(long)]
    slug: String,
    /// Display name, e.g. 横浜市.
    #[arg(long)]
    name: String,
    /// 6-digit local-government code with check digit, e.g. 141003.
    #[arg(long)]
    code: String,
    /// IANA time zone.
    #[arg(long, default_value = "Asia/Tokyo")]
    time_zone: String,
    /// Offered languages, comma-separated (ja, en, zh-Hans, pt).
    #[arg(long, value_delimiter = ',', default_value = "ja,en")]
    locales: Vec<String>,
    /// Language used when the browser asks for none of the offered ones.
    #[arg(long, default_value = "ja")]
    default_locale: String,
}

fn main() -> ExitCode {
    yoyaku::init_process();
    let cli = Cli::parse();
    if let Some(Command::GraphqlSchema) = cli.command {
        print!("{}", graphql::sdl());
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    yoyaku::telemetry::init(&settings.log, settings.environment);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            None | Some(Command::Serve) => serve(settings).await,
            Some(Command::Migrate) => {
                db::migrate(&settings).await?;
                println!(
                    "database {} is migrated",
                    settings.database.display_target()
                );
                Ok(())
            }
            Some(Command::Worker) => worker(settings).await,
            Some(Command::Tenant(cmd)) => tenant(settings, cmd).await,
            Some(Command::Import(ImportCommand::Residents(args))) => {
                import_residents(settings, args).await
            }
            Some(Command::Staff(StaffCommand::CreateOperator { email })) => {
                create_operator(settings, &email).await
            }
            Some(Command::GraphqlSchema) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let addr = (settings.http.host, settings.http.port);
    let app = App::build(settings).await?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "could not listen on {}:{}: {e} (set http.port / YOYAKU_HTTP__PORT to a free port)",
            addr.0,
            addr.1
        )
    })?;
    print_banner(&app).await;
    app.serve(listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn worker(settings: Settings) -> anyhow::Result<()> {
    let mut app = App::build(settings).await?;
    let admin = app.spawn_admin();
    println!(
        "Yoyaku worker: delivering notifications and reminders, writing exports, running the billing tick (Ctrl-C to stop)"
    );
    app.run_workers(shutdown_signal()).await;
    if let Some(admin) = admin {
        admin.stop().await;
    }
    app.pool.close().await;
    tracing::info!("worker stopped");
    Ok(())
}

async fn print_banner(app: &App) {
    let base = app.settings.public_url();
    println!("Yoyaku is serving on {base}");
    println!("  GraphQL (GraphiQL in a browser): {base}/graphql");
    println!("  health: {base}/healthz   readiness: {base}/readyz");
    if let Some(admin) = app.admin_addr {
        println!("  metrics (admin listener): http://{admin}/metrics");
    }
    if let Ok(Some(demo)) = tenants::find_by_slug(&app.pool, platform::demo::DEMO_SLUG).await {
        println!(
            "Demo municipality: {} (slug {}){}",
            demo.name,
            demo.slug,
            if app.demo_created {
                ", created now"
            } else {
                ""
            }
        );
        println!("  try: curl -s {base}/graphql -H 'content-type: application/json' \\");
        println!("         -d '{{\"query\":\"{{ tenant(city: \\\"demo\\\") {{ name }} }}\"}}'");
        println!(
            "  admin UI: {base}/admin  (development logins, password {}: {})",
            platform::demo::DEMO_STAFF_PASSWORD,
            platform::demo::DEMO_STAFF
                .iter()
                .map(|(email, role)| format!("{email} = {role}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("  eligible demo residents (ticket number / birth date):");
        for n in 1..=3 {
            let r = platform::demo::demo_resident(n);
            println!("    {} / {}  {}", r.ticket_no, r.birth_date, r.kana_name);
        }
    }
}

async fn tenant(settings: Settings, cmd: TenantCommand) -> anyhow::Result<()> {
    let dbs = db::prepare(&settings).await?;
    let operator =
        platform::operator::cli_actor(&std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
    match cmd {
        TenantCommand::Export { slug, out } => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&out)
                .map_err(|e| anyhow::anyhow!("could not create {}: {e}", out.display()))?;
            let writer = std::io::BufWriter::new(file);
            let result = platform::operator::archive::export(
                &dbs.owner,
                &slug,
                writer,
                &operator,
                chrono::Utc::now(),
            )
            .await;
            let moved = match result {
                Ok(moved) => moved,
                Err(e) => {
                    // no half-written archive is left behind
                    let _ = std::fs::remove_file(&out);
                    return Err(e.into());
                }
            };
            print_rows(&moved);
            println!(
                "exported {} ({} rows) to {}",
                moved.slug,
                moved.total(),
                out.display()
            );
        }
        TenantCommand::Delete { slug, confirm } => {
            let moved = platform::operator::offboard::delete(
                &dbs.owner,
                &slug,
                &confirm,
                chrono::Utc::now(),
                &operator,
            )
            .await?;
            print_rows(&moved);
            println!("deleted {} ({} rows)", moved.slug, moved.total());
        }
        TenantCommand::Import { input } => {
            let file = std::fs::File::open(&input)
                .map_err(|e| anyhow::anyhow!("could not read {}: {e}", input.display()))?;
            let moved = platform::operator::archive::import(
                &dbs.owner,
                std::io::BufReader::new(file),
                &operator,
            )
            .await?;
            print_rows(&moved);
            println!(
                "imported {} ({} rows) from {}",
                moved.slug,
                moved.total(),
                input.display()
            );
        }
        TenantCommand::Create(args) => {
            let new = parse_new_tenant(&args)?;
            let created = tenants::create_tenant(&dbs.app, &new).await?;
            println!(
                "created tenant {} ({}) id {} status {}",
                created.slug,
                created.name,
                created.id,
                created.status.as_str()
            );
        }
        TenantCommand::List => {
            for t in tenants::list(&dbs.app).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    t.slug,
                    t.name,
                    t.local_government_code,
                    t.status.as_str(),
                    t.locales.join(",")
                );
            }
        }
    }
    Ok(())
}

fn print_rows(moved: &platform::operator::archive::Moved) {
    for (table, n) in &moved.rows {
        println!("  {table}\t{n}");
    }
}

async fn import_residents(settings: Settings, args: ImportResidents) -> anyhow::Result<()> {
    use platform::residents::import_runs::{self, ImportStatus, RunError};
    use std::io::Write;
    let bytes = std::fs::read(&args.file)
        .map_err(|e| anyhow::anyhow!("could not read {}: {e}", args.file.display()))?;
    let dbs = db::prepare(&settings).await?;
    dbs.owner.close().await;
    let tenant = tenants::find_by_slug(&dbs.app, &args.tenant)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no municipality with slug {:?} (see `yoyaku tenant list`)",
                args.tenant
            )
        })?;
    let authz = platform::staff::authz::Authz::load(dbs.app.clone()).await?;
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let mut scope = authz
        .enter_as_system(tenant.id, &format!("cli ({user})"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // the file name without its directories: the import history shows it to the city's staff
    let source = args.file.file_name().map_or_else(
        || "residents.csv".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    // the same import, checks and record as an upload (platform::residents::import_runs)
    let outcome = import_runs::run_file(
        &mut scope,
        &bytes,
        args.import_valid_rows,
        &source,
        |done, total| {
            let width = 30;
            let filled = (done * width).checked_div(total).unwrap_or(width);
            eprint!(
                "\r[{}{}] {done}/{total} rows",
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            let _ = std::io::stderr().flush();
        },
    )
    .await;
    let run = match outcome {
        Ok(run) => run,
        Err(RunError::Database(e)) => return Err(e.into()),
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", args.file.display())),
    };
    // a rejected import keeps its record too (the errors, for the city's staff to look up)
    scope.commit().await?;
    eprintln!();
    eprintln!(
        "{}: {} rows, {} with errors ({})",
        args.file.display(),
        run.rows_total,
        run.skipped_invalid,
        run.encoding
    );
    for e in run.errors.iter().take(200) {
        eprintln!("  line {}, column {}: {}", e.line, e.column, e.reason);
    }
    match run.status {
        ImportStatus::Completed => {
            println!(
                "imported into {}: {} new, {} updated, {} unchanged, {} invalid rows skipped (import {})",
                tenant.slug, run.inserted, run.updated, run.unchanged, run.skipped_invalid, run.id
            );
            Ok(())
        }
        ImportStatus::Rejected => Err(anyhow::anyhow!(
            "{} rows are invalid (listed above); nothing was imported (recorded as import {}). \
             Fix them, or pass --import-valid-rows",
            run.skipped_invalid,
            run.id
        )),
    }
}

async fn create_operator(settings: Settings, email: &str) -> anyhow::Result<()> {
    let dbs = db::prepare(&settings).await?;
    dbs.owner.close().await;
    let policy = settings.auth.policy();
    let account = platform::staff::identity::ensure_account(&dbs.app, email, "").await?;
    let authz = platform::staff::authz::Authz::load(dbs.app.clone()).await?;
    authz
        .grant_platform_operator(&platform::staff::authz::staff_subject(account.id))
        .await?;
    let token = platform::staff::identity::issue_link(
        &dbs.app,
        &policy,
        account.id,
        platform::staff::identity::LinkPurpose::Invitation,
    )
    .await?;
    println!("{} is the platform operator.", account.email);
    println!(
        "Set the password (valid {} hours, once): {}/admin/invitation/{token}",
        settings.auth.invitation_valid_hours,
        settings.public_url()
    );
    Ok(())
}

fn parse_new_tenant(args: &CreateTenant) -> Result<tenants::NewTenant, tenants::DomainError> {
    Ok(tenants::NewTenant {
        slug: tenants::Slug::parse(&args.slug)?,
        name: tenants::TenantName::parse(&args.name)?,
        code: tenants::LocalGovernmentCode::parse(&args.code)?,
        time_zone: tenants::TimeZone::parse(&args.time_zone)?,
        default_locale: tenants::Locale::parse(&args.default_locale)?,
        locales: args
            .locales
            .iter()
            .map(|l| tenants::Locale::parse(l))
            .collect::<Result<_, _>>()?,
    })
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the future
/// is first polled, so a signal that arrives while a worker pass is running is not missed.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match terminate {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match interrupt {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => {},
                _ = int => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received; finishing work in progress");
    }
}
