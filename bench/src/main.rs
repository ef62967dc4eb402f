//! `yoyaku-bench rush`: the resident rush against the real HTTP server.
//!
//! Creates a fresh database, starts the same `App` as `yoyaku serve` on a local port (with its
//! notification worker), seeds one tenant with 100,000 residents and a week of slots (500 venues,
//! ~100k slots, like `../shared/perf/pgbench/schema.sql`), then drives it over GraphQL with N
//! concurrent clients in two phases — availability reads, then bookings — and reports throughput,
//! p50 / p99 latency and the end-of-run invariants: booked = booking rows, no slot over capacity,
//! every booking has its notification job. The database is dropped at the end (unless `--keep 1`).
//!
//!     cargo run --release -p yoyaku-bench -- rush [--clients 64] [--seconds 15] [--residents 100000]
//!         [--worker-busy 0]   (0: the notification worker never gives way to the rush)
//!         [--hot 1]           (every booking on ONE slot of a capacity above the residents: the
//!                              hot-slot mode, against pgbench's `run.sh hot`)
//!         [--keep 1]          (keep the database, with numbered residents and slots for the
//!                              pgbench scripts in bench/pgbench)
//!         [--processes N]     (N `yoyaku serve` processes of their own instead of the server in
//!                              this process: the release binary beside this one, or
//!                              [--server PATH]; clients spread evenly over them, the pool
//!                              (`--pool`) split between them; every answer counted as good is
//!                              parsed; the servers' resident memory sampled and reported)
//!
//! PostgreSQL: `YOYAKU_BENCH_PG` (default postgres://postgres@127.0.0.1:5432, a superuser).
//!
//! `yoyaku-bench attack`: the attacks of issue 15 against the server in its own process
//! (see `attack.rs`).
//!
//! `yoyaku-bench mixed`: issue 18's mixed, Yokohama-shaped load (the resident site's pages as a
//! phone walks them, SMS login codes through a fake gateway, GraphQL reads and bookings) against
//! `yoyaku serve` processes of their own (see `mixed.rs`).

mod attack;
mod mixed;

/// The allocator `yoyaku serve` runs with (src/main.rs): `rush` runs the server in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use secrecy::SecretString;
use serde_json::json;
use sqlx::{Executor, PgPool, postgres::PgPoolOptions};
use uuid::Uuid;

struct Args {
    clients: usize,
    seconds: u64,
    residents: usize,
    pool: u32,
    /// `residents.worker_busy_requests` for the server (None: the default).
    worker_busy: Option<usize>,
    /// Keep the database afterwards, with `bench_people` / `bench_slots` for `bench/pgbench/*.sql`.
    keep: bool,
    /// Every booking on one slot.
    hot: bool,
    /// Servers in processes of their own (0: the server runs in this process).
    processes: usize,
    /// The server binary for `processes` (default: `yoyaku` beside this binary).
    server: Option<std::path::PathBuf>,
}

fn flag_value(flag: &str, value: &str) -> anyhow::Result<bool> {
    match value {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        other => bail!("{flag} takes 1 or 0, not {other:?}"),
    }
}

const USAGE: &str = "usage: yoyaku-bench rush [--clients N] [--seconds S] [--residents R] [--pool P] [--worker-busy N] [--keep 1] [--hot 1] [--processes N [--server PATH]]\n       yoyaku-bench mixed [--clients N] [--seconds S] [--processes N] [--residents R] [--pool P] [--site-bookings 0] [--server PATH]\n       yoyaku-bench attack [--repeat N] [--padded N] [--server PATH]";

fn parse_args(mut args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut a = Args {
        clients: 64,
        seconds: 15,
        residents: 100_000,
        pool: 32,
        worker_busy: None,
        keep: false,
        hot: false,
        processes: 0,
        server: None,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--clients" => a.clients = value.parse()?,
            "--seconds" => a.seconds = value.parse()?,
            "--residents" => a.residents = value.parse()?,
            "--pool" => a.pool = value.parse()?,
            "--worker-busy" => a.worker_busy = Some(value.parse()?),
            "--keep" => a.keep = flag_value("--keep", &value)?,
            "--hot" => a.hot = flag_value("--hot", &value)?,
            "--processes" => a.processes = value.parse()?,
            "--server" => a.server = Some(value.into()),
            other => bail!("unknown option {other}"),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let command = argv.next();
    // the binary's own start-up (TLS provider for the HTTP client below), before anything else
    yoyaku::init_process();
    match command.as_deref() {
        Some("rush") => rush(parse_args(argv)?).await,
        Some("mixed") => mixed::run(mixed::parse(argv)?).await,
        Some("attack") => attack::run(attack::parse(argv)?).await,
        _ => bail!(USAGE),
    }
}

/// A new, throw-away bench database on `YOYAKU_BENCH_PG`: (server base URL, database name, its
/// URL). The database itself is created and migrated by the first server that starts on it.
fn bench_database() -> anyhow::Result<(String, String, String)> {
    let base = std::env::var("YOYAKU_BENCH_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let database = format!("yoyaku_bench_{stamp}");
    // Loopback without TLS, as pgbench talks to the local server (over its socket, no TLS).
    let url = format!("{base}/{database}?sslmode=disable");
    Ok((base, database, url))
}

async fn rush(args: Args) -> anyhow::Result<()> {
    let (base, database, url) = bench_database()?;
    let target = if args.processes == 0 {
        let mut settings = yoyaku::config::Settings::defaults()?;
        settings.database.url = SecretString::from(url.clone());
        settings.database.max_connections = args.pool;
        settings.demo.seed = false;
        if let Some(n) = args.worker_busy {
            settings.residents.worker_busy_requests = n;
        }
        Target::InProcess(Box::new(yoyaku::App::build(settings).await?))
    } else {
        Target::Processes(start_servers(&url, &ServerOpts::of(&args), &[]).await?)
    };
    let owner = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await?;

    let result = run(target, &owner, &args).await;
    if args.keep {
        let kept = keep_for_pgbench(&owner).await;
        owner.close().await;
        kept?;
        println!(
            "kept database {database}; e.g. pgbench -n -M prepared -c 64 -j 2 -T 15 -U yoyaku_app \\\n  -D offset={} -D i=0 -f bench/pgbench/book_first_dose.sql {database}",
            args.residents / 2
        );
        return result;
    }
    owner.close().await;
    drop_database(&base, &database).await?;
    result
}

/// Where the server runs.
enum Target {
    /// The same `App` as `yoyaku serve`, in this process.
    InProcess(Box<yoyaku::App>),
    /// `yoyaku serve` processes of their own, each with its port.
    Processes(Vec<(attack::Server, u16)>),
}

/// How `yoyaku serve` processes are started for a bench.
struct ServerOpts {
    processes: usize,
    /// The pool of all processes together (split evenly, at least 2 each).
    pool: u32,
    worker_busy: Option<usize>,
    server: Option<std::path::PathBuf>,
}

impl ServerOpts {
    fn of(args: &Args) -> Self {
        Self {
            processes: args.processes,
            pool: args.pool,
            worker_busy: args.worker_busy,
            server: args.server.clone(),
        }
    }
}

/// Starts `opts.processes` servers on the (new) database: the first creates and migrates it, the
/// others start once it is ready. The pool is split between them. `extra`: more `YOYAKU_…`
/// settings for every process.
async fn start_servers(
    url: &str,
    opts: &ServerOpts,
    extra: &[(&'static str, String)],
) -> anyhow::Result<Vec<(attack::Server, u16)>> {
    let bin = attack::server_binary(&opts.server)?;
    let pool = (opts.pool as usize / opts.processes).max(2);
    let mut settings = vec![
        ("YOYAKU_DEMO__SEED", "false".to_owned()),
        ("YOYAKU_DATABASE__MAX_CONNECTIONS", pool.to_string()),
    ];
    if let Some(n) = opts.worker_busy {
        settings.push(("YOYAKU_RESIDENTS__WORKER_BUSY_REQUESTS", n.to_string()));
    }
    settings.extend(extra.iter().cloned());
    let mut servers = Vec::with_capacity(opts.processes);
    for _ in 0..opts.processes {
        let port = attack::free_port()?;
        servers.push((
            attack::start_server(&bin, url, port, &settings).await?,
            port,
        ));
    }
    println!(
        "{} server process(es) of {} (pool {pool} each)",
        servers.len(),
        bin.display()
    );
    Ok(servers)
}

/// Samples each process's resident memory every 100 ms until told to stop; returns the peak of
/// each.
fn sample_memory(
    pids: Vec<u32>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<f64>> {
    tokio::spawn(async move {
        let mut peaks = vec![0.0f64; pids.len()];
        while !stop.load(Ordering::Relaxed) {
            for (peak, pid) in peaks.iter_mut().zip(&pids) {
                if let Some(mb) = attack::memory_mb(*pid, "VmRSS:") {
                    *peak = peak.max(mb);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peaks
    })
}

/// Where the load goes, and how closely answers are read.
struct Endpoints {
    /// `/graphql` of each server; clients spread evenly over them.
    urls: Vec<String>,
    /// Parse every answer in full (servers in processes of their own), not only its two ends.
    parse_all: bool,
}

/// Drops a throw-away bench database (connected to `postgres` on the same server).
async fn drop_database(base: &str, database: &str) -> anyhow::Result<()> {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{base}/postgres"))
        .await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
        )))
        .await?;
    Ok(())
}

struct Seeded {
    venues: Vec<Uuid>,
    /// The slots bookings go to: every slot, or the hot one alone.
    slots: Vec<Uuid>,
    tokens: Vec<String>,
}

impl Seeded {
    /// One availability request body per venue, serialised once (pgbench, too, runs a prepared
    /// script rather than building each request).
    fn read_bodies(&self) -> Vec<Vec<u8>> {
        self.venues
            .iter()
            .map(|v| {
                serde_json::to_vec(&json!({
                    "query": "query($v: UUID!) { availability(city: \"rush\", venueId: $v) { id free mark } }",
                    "variables": { "v": v }
                }))
                .expect("json")
            })
            .collect()
    }
}

/// An availability answer with data and no errors: `{"data":{"availability":[…]}}` exactly (an
/// answer with errors ends in `]}` after an `"errors"` array, a refused one has `"data":null`).
/// Checked at both ends rather than parsed: the client shares the two cores with the server.
fn availability_ok(body: &[u8]) -> bool {
    body.starts_with(br#"{"data":{"availability":["#) && body.ends_with(b"]}}")
}

async fn seed(owner: &PgPool, residents: usize) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let mut new = platform::demo::demo_tenant();
    new.slug = tenants::Slug::parse("rush")?;
    new.name = tenants::TenantName::parse("ラッシュ市")?;
    let tenant = tenants::create_tenant(owner, &new).await?;
    tenants::set_status(owner, tenant.id, tenants::TenantStatus::Active).await?;
    let mut tx = tenants::begin(owner, tenant.id).await?;
    let t = tenant.id.0;
    let vaccine = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO vaccines (tenant_id, id, name, maker, doses, min_interval_days, booster_interval_months, \
         days_until_effective, validity_days) VALUES ($1, $2, 'コミナティ', 'ファイザー', 2, 21, 8, 7, 240)",
    )
    .bind(t)
    .bind(vaccine)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO venues (tenant_id, id, name, address, kind, vaccine_id) \
         SELECT $1, gen_random_uuid(), 'venue-' || v, 'street ' || v, 'mass', $2 FROM generate_series(1, 500) v",
    )
    .bind(t)
    .bind(vaccine)
    .execute(&mut *tx)
    .await?;
    // A week starting in ten days (clear of deadlines), 09:00–18:40 every 20 minutes: 203 per venue.
    sqlx::query(
        "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity) \
         SELECT $1, gen_random_uuid(), v.id, \
                date_trunc('day', now()) + interval '10 days' + d * interval '1 day' + interval '9 hours' + m * interval '20 minutes', \
                date_trunc('day', now()) + interval '10 days' + d * interval '1 day' + interval '9 hours 20 minutes' + m * interval '20 minutes', \
                1000 \
         FROM venues v, generate_series(0, 6) d, generate_series(0, 28) m WHERE v.tenant_id = $1",
    )
    .bind(t)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO residents (tenant_id, id, ticket_no, birth_date, kana_name, sex, phone) \
         SELECT $1, gen_random_uuid(), (2000000000 + n)::text, date '1970-01-01' + (n % 20000), 'ベンチ', 'unknown', \
                '090' || lpad(n::text, 8, '0') FROM generate_series(1, $2) n",
    )
    .bind(t)
    .bind(residents as i32)
    .execute(&mut *tx)
    .await?;
    let venues: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM venues WHERE tenant_id = $1")
        .bind(t)
        .fetch_all(&mut *tx)
        .await?;
    let slots: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM slots WHERE tenant_id = $1")
        .bind(t)
        .fetch_all(&mut *tx)
        .await?;
    let people: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM residents WHERE tenant_id = $1 ORDER BY ticket_no")
            .bind(t)
            .fetch_all(&mut *tx)
            .await?;
    let mut tokens = Vec::with_capacity(people.len());
    for chunk in people.chunks(10_000) {
        tokens.extend(
            platform::residents::auth::create_sessions_bulk(&mut tx, tenant.id, chunk).await?,
        );
    }
    tx.commit().await?;
    owner.execute("VACUUM ANALYZE").await?;
    // As pgbench's reset.sql does: the seeding's dirty pages are written out now, not by a
    // checkpoint in the middle of the measured phases.
    owner.execute("CHECKPOINT").await?;
    println!(
        "seeded: 1 tenant, {} venues, {} slots, {} residents with sessions in {:.1} s",
        venues.len(),
        slots.len(),
        people.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(Seeded {
        venues,
        slots,
        tokens,
    })
}

/// What the load generator reads of a GraphQL answer.
#[derive(serde::Deserialize)]
struct Answer {
    data: Option<BookData>,
    errors: Option<Vec<serde::de::IgnoredAny>>,
}

/// `data` of the `book` mutation: its payload's user errors (a full slot is `CONFLICT`).
#[derive(serde::Deserialize)]
struct BookData {
    book: Option<BookAnswer>,
}

#[derive(serde::Deserialize)]
struct BookAnswer {
    errors: Vec<UserErrorCode>,
}

#[derive(serde::Deserialize)]
struct UserErrorCode {
    code: String,
}

#[derive(Default)]
struct Outcome {
    ok: usize,
    refused: usize,
    failed: usize,
    micros: Vec<u64>,
}

struct Phase {
    name: &'static str,
    clients: usize,
    elapsed: Duration,
    outcome: Outcome,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.outcome.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> f64 {
        percentile_ms(&self.outcome.micros, p)
    }
    fn print(&self) {
        println!(
            "{:<13} clients={:<3} ok={:<7} refused={:<5} failed={:<4} rate={:>8.1}/s p50={:>6.2} ms p99={:>6.2} ms",
            self.name,
            self.clients,
            self.outcome.ok,
            self.outcome.refused,
            self.outcome.failed,
            self.rate(),
            self.pct(0.50),
            self.pct(0.99)
        );
    }
}

/// The `p` quantile (0..1) of sorted latencies in microseconds, in milliseconds (0 when empty):
/// the value at index ⌊n·p⌋, as pgbench's `run.sh` takes it.
fn percentile_ms(sorted_micros: &[u64], p: f64) -> f64 {
    if sorted_micros.is_empty() {
        return 0.0;
    }
    let i = ((sorted_micros.len() as f64 * p) as usize).min(sorted_micros.len() - 1);
    sorted_micros[i] as f64 / 1000.0
}

#[derive(Clone, Copy)]
enum Op {
    Read,
    Book,
}

async fn phase(
    name: &'static str,
    op: Op,
    to: &Endpoints,
    seeded: Arc<Seeded>,
    clients: usize,
    seconds: u64,
    next: Arc<AtomicUsize>,
) -> Phase {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("http client");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let read_bodies: Arc<Vec<Vec<u8>>> = Arc::new(match op {
        Op::Read => seeded.read_bodies(),
        Op::Book => Vec::new(),
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (http, seeded, next) = (http.clone(), seeded.clone(), next.clone());
            // clients spread evenly over the servers
            let url = to.urls[i % to.urls.len()].clone();
            let parse_all = to.parse_all;
            let read_bodies = read_bodies.clone();
            tokio::spawn(async move {
                let mut out = Outcome::default();
                while Instant::now() < deadline {
                    let (body, token) = match op {
                        Op::Read => (
                            read_bodies[rand::random_range(0..read_bodies.len())].clone(),
                            None,
                        ),
                        Op::Book => {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            let Some(token) = seeded.tokens.get(n) else { break };
                            let slot = seeded.slots[rand::random_range(0..seeded.slots.len())];
                            (
                                format!(
                                    r#"{{"query":"mutation($i: BookInput!) {{ book(input: $i) {{ bookings {{ id }} errors {{ code }} }} }}","variables":{{"i":{{"slotId":"{slot}","dose":"FIRST","idempotencyKey":"rush-{n:08}"}}}}}}"#
                                )
                                .into_bytes(),
                                Some(token.clone()),
                            )
                        }
                    };
                    let t0 = Instant::now();
                    let mut req = http
                        .post(&url)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body);
                    if let Some(t) = token {
                        req = req.bearer_auth(t);
                    }
                    // Read the whole answer, but only look at what decides the outcome (the
                    // client shares the machine with the server; a full JSON tree would cost more
                    // than the server's cached answer).
                    let body = match req.send().await {
                        Ok(res) => res.bytes().await.ok(),
                        Err(_) => None,
                    };
                    out.micros.push(t0.elapsed().as_micros() as u64);
                    if let (Op::Read, Some(b)) = (op, &body) {
                        if availability_ok(b)
                            && (!parse_all
                                || serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok())
                        {
                            out.ok += 1;
                        } else {
                            out.failed += 1;
                        }
                        continue;
                    }
                    let answer: Option<Answer> = body.and_then(|b| serde_json::from_slice(&b).ok());
                    let book = answer.as_ref().and_then(|a| match a {
                        Answer { data: Some(BookData { book: Some(b) }), errors: None } => Some(b),
                        _ => None,
                    });
                    match book.map(|b| b.errors.first().map(|e| e.code.as_str())) {
                        Some(None) => out.ok += 1,
                        Some(Some("CONFLICT")) => out.refused += 1,
                        _ => out.failed += 1,
                    }
                }
                out
            })
        })
        .collect();
    let mut total = Outcome::default();
    for t in tasks {
        if let Ok(o) = t.await {
            total.ok += o.ok;
            total.refused += o.refused;
            total.failed += o.failed;
            total.micros.extend(o.micros);
        }
    }
    total.micros.sort_unstable();
    Phase {
        name,
        clients,
        elapsed: started.elapsed(),
        outcome: total,
    }
}

/// Numbered residents and slots for the pgbench scripts in bench/pgbench (which measure the booking
/// function on its own, without HTTP, GraphQL or the load generator).
async fn keep_for_pgbench(owner: &PgPool) -> anyhow::Result<()> {
    for sql in [
        "CREATE TABLE bench_people AS SELECT row_number() OVER (ORDER BY ticket_no)::int AS n, tenant_id, id \
         FROM residents",
        "ALTER TABLE bench_people ADD PRIMARY KEY (n)",
        "CREATE TABLE bench_slots AS SELECT row_number() OVER (ORDER BY id)::int AS n, id FROM slots",
        "ALTER TABLE bench_slots ADD PRIMARY KEY (n)",
        "GRANT SELECT ON bench_people, bench_slots TO yoyaku_app",
        "VACUUM ANALYZE",
        "CHECKPOINT",
    ] {
        owner.execute(sql).await?;
    }
    Ok(())
}

async fn run(target: Target, owner: &PgPool, args: &Args) -> anyhow::Result<()> {
    let mut seeded = seed(owner, args.residents).await?;
    if args.hot {
        // one slot with room for every resident: each booking contends for the same row
        let hot = seeded.slots[0];
        sqlx::query("UPDATE slots SET capacity = $2 WHERE id = $1")
            .bind(hot)
            .bind(args.residents as i32 + 1)
            .execute(owner)
            .await?;
        seeded.slots = vec![hot];
        println!("hot-slot mode: every booking on slot {hot}");
    }
    let seeded = Arc::new(seeded);
    // the server(s): in this process, or processes of their own (answers then parsed in full,
    // memory sampled)
    // in this process the desk's batch counts can be read
    let desk = match &target {
        Target::InProcess(app) => Some(app.residents.clone()),
        Target::Processes(_) => None,
    };
    let (urls, parse_all, in_process, servers) = match target {
        Target::InProcess(app) => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}/graphql", listener.local_addr()?);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(app.serve(listener, async {
                let _ = stopped.await;
            }));
            (vec![url], false, Some((stop, server)), Vec::new())
        }
        Target::Processes(servers) => {
            let urls = servers
                .iter()
                .map(|(_, port)| format!("http://127.0.0.1:{port}/graphql"))
                .collect();
            (urls, true, None, servers)
        }
    };
    // in this process the figure holds the load generator too: an upper bound for the server
    let to = Endpoints { urls, parse_all };
    let pids: Vec<u32> = if servers.is_empty() {
        vec![std::process::id()]
    } else {
        servers.iter().map(|(s, _)| s.pid).collect()
    };
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = sample_memory(pids.clone(), sampling.clone());
    let next = Arc::new(AtomicUsize::new(0));
    // A short warm-up so connection set-up is not measured.
    phase(
        "warm-up",
        Op::Read,
        &to,
        seeded.clone(),
        args.clients,
        2,
        next.clone(),
    )
    .await;
    let reads = phase(
        "availability",
        Op::Read,
        &to,
        seeded.clone(),
        args.clients,
        args.seconds,
        next.clone(),
    )
    .await;
    reads.print();
    let books = phase(
        if args.hot { "hot-booking" } else { "booking" },
        Op::Book,
        &to,
        seeded.clone(),
        args.clients,
        args.seconds,
        next.clone(),
    )
    .await;
    books.print();
    if let Some(desk) = &desk {
        // how the first-dose bookings were decided: in batches, or alone (docs/benchmarks.md)
        let s = desk.batch_stats();
        println!(
            "batches: {} statements answered {} requests ({:.1} each); {} decided alone",
            s.batches,
            s.batched,
            s.batched as f64 / s.batches.max(1) as f64,
            s.alone
        );
    }
    // Let the worker catch up a little, then stop the server(s).
    tokio::time::sleep(Duration::from_secs(1)).await;
    sampling.store(true, Ordering::Relaxed);
    let peaks = sampler.await.unwrap_or_default();
    for (n, (pid, peak)) in pids.iter().zip(&peaks).enumerate() {
        println!(
            "memory of {}: peak RSS sampled {peak:.1} MB, VmHWM {:.1} MB",
            if servers.is_empty() {
                "this process (server and load generator together)".to_owned()
            } else {
                format!("server process {}", n + 1)
            },
            attack::memory_mb(*pid, "VmHWM:").unwrap_or(0.0)
        );
    }
    if let Some((stop, server)) = in_process {
        let _ = stop.send(());
        let _ = server.await;
    }
    drop(servers);

    let Invariants {
        booked,
        rows,
        over,
        without_job,
    } = Invariants::check(owner).await?;
    println!(
        "csv,{},{:.1},{:.2},{:.2},{:.1},{:.2},{:.2},{booked},{rows},{over},{without_job}",
        args.clients,
        reads.rate(),
        reads.pct(0.5),
        reads.pct(0.99),
        books.rate(),
        books.pct(0.5),
        books.pct(0.99)
    );
    if booked != rows || over != 0 || without_job != 0 {
        bail!("invariant violated");
    }
    Ok(())
}

/// The end-of-run checks: booked seats = live booking rows, no slot over capacity, every booking
/// has its `booking-confirmed` notification job.
struct Invariants {
    booked: i64,
    rows: i64,
    over: i64,
    without_job: i64,
}

impl Invariants {
    /// Reads them (after the servers stopped) and prints the `invariants:` line.
    async fn check(owner: &PgPool) -> anyhow::Result<Self> {
        let (booked, rows, over, without_job): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COALESCE(sum(booked), 0) FROM slots), \
                    (SELECT count(*) FROM bookings WHERE status = 'booked'), \
                    (SELECT count(*) FROM slots WHERE booked > capacity), \
                    (SELECT count(*) FROM bookings b WHERE NOT EXISTS (SELECT 1 FROM apalis.jobs j \
                         WHERE j.job_type = 'notify' AND j.idempotency_key = b.tenant_id || '/booking-confirmed:' || b.id))",
        )
        .fetch_one(owner)
        .await?;
        let me = Self {
            booked,
            rows,
            over,
            without_job,
        };
        println!(
            "invariants: booked={booked} rows={rows} over_capacity={over} bookings_without_job={without_job} -> {}",
            if me.hold() { "OK" } else { "VIOLATED" }
        );
        Ok(me)
    }

    fn hold(&self) -> bool {
        self.booked == self.rows && self.over == 0 && self.without_job == 0
    }
}

#[cfg(test)]
mod tests {
    use super::percentile_ms;

    #[test]
    fn percentiles_take_the_value_at_floor_n_p() {
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
        assert_eq!(percentile_ms(&[7_000], 0.5), 7.0);
        let v: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile_ms(&v, 0.50), 51.0);
        assert_eq!(percentile_ms(&v, 0.99), 100.0);
        assert_eq!(percentile_ms(&v, 1.0), 100.0);
    }
}
