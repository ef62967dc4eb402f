//! `yoyaku-bench mixed`: issue 18's mixed, Yokohama-shaped load against `yoyaku serve` processes of
//! their own (the release binary beside this one, or `--server PATH`), as deployed.
//!
//! Same database, seeding and servers as `rush --processes N` (one tenant `rush`, 500 venues × a
//! week of slots, `--residents` residents each with a session), plus: a Twilio-compatible **fake SMS
//! gateway** inside this process (the city's SMS channel points at it, so login codes travel the
//! real way: the server's notification worker sends them over HTTP and the phone reads the code from
//! the gateway), and a **probe venue** for the staleness probe.
//!
//! Every client is a phone with its own cookie jar and its own address: the servers trust the
//! loopback as their reverse proxy (`http.trusted_proxies = 127.0.0.1`) and each phone's requests
//! carry `X-Forwarded-For: <its address>`, as a load balancer in front of them would write it — so
//! the per-address login throttle holds per phone, not for the whole bench. Each iteration picks by
//! weight (see [`CLASS_WEIGHTS`], chosen so that ~90 % of the requests are reads, ~7 % login-code
//! requests and verifications, ~3 % bookings and changes):
//!
//! * **read** (one request): the venue list, a venue's days, a day's times, my bookings (site
//!   pages, with the phone's session cookie) or GraphQL `availability` of a random venue and day or
//!   week;
//! * **login**: `GET login` → `POST login` (ticket + birth date) → `GET code` → the code from the
//!   fake gateway → `POST code` → `GET bookings`; the phone then is that resident (a fresh one each
//!   time, new address);
//! * **booking**: half through the site (a venue's days → a day's times → `confirm` → `POST book`,
//!   or `POST change` when the phone's resident already holds a booking → `done`), half through
//!   GraphQL (`availability` → `book` or `changeBooking`, the session as bearer token).
//!
//! Every answer counted as good is parsed: a page must be 200 (a form post 303 to the expected
//! page) and carry what the phone then follows (venue, day or slot links, the form and CSRF tokens,
//! the booking id); a GraphQL answer must be JSON with `data` and no `errors` (and no user error).
//! Anything else is an error, counted and shown.
//!
//! Meanwhile a **staleness probe** books a seat of the probe slot through server 1 every ~300 ms
//! and polls `availability` of the probe venue on another server (the same one with one process)
//! every 10 ms until the seat shows as taken: how long a process answers with availability another
//! process has already changed.
//!
//! Reports per page / operation: count, req/s, p50, p99, errors; the total; the request shares per
//! class; the SMS code's delivery time; the staleness; each server's peak memory (VmHWM); and the
//! end-of-run checks of `rush` (booked = rows, nobody over capacity, a task per booking).
//!
//!     cargo build --release -p yoyaku -p yoyaku-bench
//!     target/release/yoyaku-bench mixed [--clients 64] [--seconds 20] [--processes 1]
//!         [--residents 100000] [--pool 32] [--server PATH]
//!         [--site-bookings 0]   (every booking and change over GraphQL, none through the site's
//!                                confirm page: what the site's booking pages cost)

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;

use crate::{Invariants, ServerOpts, attack, percentile_ms};

mod html;
mod ops;
mod phone;
mod probe;
mod sms;

use html::*;
use ops::*;
use phone::*;
use probe::*;
use sms::*;

/// The city the rush seeding creates.
const CITY: &str = "rush";
/// Residents kept for the staleness probe (the last ones).
const PROBE_RESIDENTS: usize = 500;
/// The probe polls the other server this often.
const PROBE_POLL: Duration = Duration::from_millis(10);
/// …and gives up after this.
const PROBE_GIVE_UP: Duration = Duration::from_secs(5);
/// A phone waits this long for its SMS code.
const SMS_WAIT: Duration = Duration::from_secs(30);

pub struct MixedArgs {
    clients: usize,
    seconds: u64,
    processes: usize,
    residents: usize,
    pool: u32,
    server: Option<PathBuf>,
    /// Half the bookings through the site's pages (else all over GraphQL).
    site_bookings: bool,
}

pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<MixedArgs> {
    let mut a = MixedArgs {
        clients: 64,
        seconds: 20,
        processes: 1,
        residents: 100_000,
        pool: 32,
        server: None,
        site_bookings: true,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--clients" => a.clients = value.parse()?,
            "--seconds" => a.seconds = value.parse()?,
            "--processes" => a.processes = value.parse()?,
            "--residents" => a.residents = value.parse()?,
            "--pool" => a.pool = value.parse()?,
            "--server" => a.server = Some(value.into()),
            "--site-bookings" => a.site_bookings = crate::flag_value("--site-bookings", &value)?,
            other => bail!("unknown option {other}"),
        }
    }
    if a.processes == 0 {
        bail!("mixed runs the servers as processes of their own: --processes 1 or more");
    }
    if a.residents < 2 * a.clients + PROBE_RESIDENTS + 100 {
        bail!(
            "--residents must be at least {}",
            2 * a.clients + PROBE_RESIDENTS + 100
        );
    }
    Ok(a)
}

// The mix

/// Resident `n` (1-based, in ticket order): ticket, birth date, phone as the gateway sees it.
fn resident(n: usize) -> (String, String, String) {
    let ticket = (2_000_000_000u64 + n as u64).to_string();
    // date '1970-01-01' + (n % 20000), as the seeding writes it
    let days = (n % 20_000) as i64;
    let birth = civil_from_days(days);
    let phone = format!("+8190{n:08}");
    (ticket, birth, phone)
}

/// Days since 1970-01-01 → `YYYY-MM-DD` (Howard Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> String {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

/// The address a phone's requests come from (as the proxy forwards it): one per resident.
fn address_of(n: usize) -> String {
    format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

// The phones

#[derive(Default)]
struct OpStats {
    ok: u64,
    errors: u64,
    micros: Vec<u64>,
    /// The first few errors, to show.
    samples: Vec<String>,
}

#[derive(Default)]
struct Stats {
    ops: Vec<OpStats>,
    /// Time from `POST login`'s answer to the code at the gateway.
    sms_micros: Vec<u64>,
    sms_timeouts: u64,
}

impl Stats {
    fn new() -> Self {
        Self {
            ops: OPS.iter().map(|_| OpStats::default()).collect(),
            ..Self::default()
        }
    }
    fn merge(&mut self, other: Stats) {
        for (a, b) in self.ops.iter_mut().zip(other.ops) {
            a.ok += b.ok;
            a.errors += b.errors;
            a.micros.extend(b.micros);
            for s in b.samples {
                if a.samples.len() < 3 {
                    a.samples.push(s);
                }
            }
        }
        self.sms_micros.extend(other.sms_micros);
        self.sms_timeouts += other.sms_timeouts;
    }
}

pub async fn run(args: MixedArgs) -> anyhow::Result<()> {
    let (base, database, url) = crate::bench_database()?;

    // the fake SMS gateway the city's channel will point at
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sms_url = format!("http://{}", listener.local_addr()?);
    let sms = Arc::new(Sms::default());
    let gateway = tokio::spawn(sms_gateway(listener, sms.clone()));

    let opts = ServerOpts {
        processes: args.processes,
        pool: args.pool,
        worker_busy: None,
        server: args.server.clone(),
    };
    // As deployed behind a load balancer on this host: it is the trusted proxy, and every process
    // derives login codes with the same secret.
    let servers = crate::start_servers(
        &url,
        &opts,
        &[
            ("YOYAKU_HTTP__TRUSTED_PROXIES", "127.0.0.1".to_owned()),
            (
                "YOYAKU_HTTP__FORWARDED_HEADER",
                "x-forwarded-for".to_owned(),
            ),
            (
                "YOYAKU_RESIDENTS__CODE_SECRET",
                "mixed-bench-code-secret".to_owned(),
            ),
        ],
    )
    .await?;
    let owner = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await?;
    let result = measure(&args, &servers, &owner, &sms, &sms_url).await;
    drop(servers);
    gateway.abort();
    let checked = Invariants::check(&owner).await;
    owner.close().await;
    crate::drop_database(&base, &database).await?;
    let (report, processes_memory) = result?;
    let inv = checked?;
    print_csv(&args, &report, &processes_memory, &inv);
    if !inv.hold() {
        bail!("invariant violated");
    }
    Ok(())
}

struct Report {
    stats: Stats,
    elapsed: Duration,
    staleness: Staleness,
}

async fn measure(
    args: &MixedArgs,
    servers: &[(attack::Server, u16)],
    owner: &sqlx::PgPool,
    sms: &Arc<Sms>,
    sms_url: &str,
) -> anyhow::Result<(Report, Vec<f64>)> {
    let seeded = crate::seed(owner, args.residents).await?;
    let tenant: Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(CITY)
        .fetch_one(owner)
        .await?;
    let tid = tenants::TenantId(tenant);
    // the city's SMS channel: the fake gateway (sealed with the development key the servers use)
    let mut tx = tenants::begin(owner, tid).await?;
    platform::notifications::channels::save(
        &mut tx,
        &platform::notifications::channels::SealingKey::new(*b"yoyaku-development-only-key-0000"),
        "sms",
        "twilio",
        json!({
            "base_url": sms_url,
            "account_sid": "ACbench",
            "auth_token": "bench-token",
            "from": "+815000000000",
        }),
    )
    .await
    .context("the city's SMS channel")?;
    // the probe venue: one slot, room for every probe, not among the venues the phones choose
    let probe_venue = Uuid::now_v7();
    let probe_slot = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO venues (tenant_id, id, name, address, kind, vaccine_id) \
         SELECT $1, $2, 'probe', 'probe street', 'mass', vaccine_id FROM venues WHERE tenant_id = $1 LIMIT 1",
    )
    .bind(tenant)
    .bind(probe_venue)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity) \
         VALUES ($1, $2, $3, date_trunc('day', now()) + interval '10 days 9 hours', \
                 date_trunc('day', now()) + interval '10 days 9 hours 20 minutes', $4)",
    )
    .bind(tenant)
    .bind(probe_slot)
    .bind(probe_venue)
    .bind(PROBE_RESIDENTS as i32 + 1)
    .execute(&mut *tx)
    .await?;
    // the local days that have slots (the site's day links, GraphQL's `date`)
    let dates: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT to_char(s.starts_at AT TIME ZONE t.time_zone, 'YYYY-MM-DD') d \
         FROM slots s JOIN tenants t ON t.id = s.tenant_id WHERE s.tenant_id = $1 ORDER BY d",
    )
    .bind(tenant)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    if dates.is_empty() {
        bail!("no slot days");
    }

    let bases: Vec<String> = servers
        .iter()
        .map(|(_, port)| format!("http://127.0.0.1:{port}"))
        .collect();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(args.clients + 8)
        .build()?;
    let world = Arc::new(World {
        http: http.clone(),
        sms: sms.clone(),
        listed_venues: seeded.venues.len() + 1,
        venues: seeded.venues.clone(),
        dates,
        // the phones start as residents 1..=clients (sessions from the seeding); each login takes
        // a fresh resident after them, up to the probe's
        next_login: AtomicUsize::new(args.clients + 1),
        logins_end: args.residents - PROBE_RESIDENTS,
        deadline: Mutex::new(Instant::now()),
        site_bookings: args.site_bookings,
    });
    let pids: Vec<u32> = servers.iter().map(|(s, _)| s.pid).collect();
    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = crate::sample_memory(pids.clone(), sampling.clone());

    let phones = || {
        (0..args.clients)
            .map(|n| Phone {
                world: world.clone(),
                base: bases[n % bases.len()].clone(),
                jar: vec![("yk_session".to_owned(), seeded.tokens[n].clone())],
                address: address_of(n + 1),
                booking: None,
                changing: false,
                days: None,
                stats: Stats::new(),
                last_micros: 0,
            })
            .collect::<Vec<_>>()
    };
    // Warm-up: reads only, 2 s, not counted.
    if let Ok(mut d) = world.deadline.lock() {
        *d = Instant::now() + Duration::from_secs(2);
    }
    let warm: Vec<_> = phones()
        .into_iter()
        .map(|mut p| {
            tokio::spawn(async move {
                while p.world.deadline.lock().is_ok_and(|d| Instant::now() < *d) {
                    p.read().await;
                }
            })
        })
        .collect();
    for w in warm {
        let _ = w.await;
    }

    // The measured run, with the staleness probe.
    let stop = Arc::new(AtomicBool::new(false));
    let probe_tokens = seeded.tokens[args.residents - PROBE_RESIDENTS..].to_vec();
    let prober = tokio::spawn(probe(
        http.clone(),
        bases.clone(),
        probe_venue,
        probe_slot,
        probe_tokens,
        stop.clone(),
    ));
    let started = Instant::now();
    if let Ok(mut d) = world.deadline.lock() {
        *d = started + Duration::from_secs(args.seconds);
    }
    let tasks: Vec<_> = phones()
        .into_iter()
        .map(|p| tokio::spawn(p.run()))
        .collect();
    let mut stats = Stats::new();
    for t in tasks {
        if let Ok(s) = t.await {
            stats.merge(s);
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let staleness = prober.await.unwrap_or(Staleness {
        samples: Vec::new(),
        errors: 1,
    });
    sampling.store(true, Ordering::Relaxed);
    let peaks = sampler.await.unwrap_or_default();
    let hwm: Vec<f64> = pids
        .iter()
        .map(|p| attack::memory_mb(*p, "VmHWM:").unwrap_or(0.0))
        .collect();
    let report = Report {
        stats,
        elapsed,
        staleness,
    };
    print_report(args, &report, sms);
    for (n, (peak, h)) in peaks.iter().zip(&hwm).enumerate() {
        println!(
            "memory of server process {}: peak RSS sampled {peak:.1} MB, VmHWM {h:.1} MB",
            n + 1
        );
    }
    Ok((report, hwm))
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn print_report(args: &MixedArgs, r: &Report, sms: &Sms) {
    let secs = r.elapsed.as_secs_f64();
    println!(
        "mixed: {} clients, {} server process(es), {:.1} s{}; load average at the end: {}",
        args.clients,
        args.processes,
        secs,
        if args.site_bookings {
            ""
        } else {
            ", bookings over GraphQL only"
        },
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "{:<28} {:<8} {:>8} {:>9} {:>8} {:>8} {:>7}",
        "page / operation", "class", "good", "good/s", "p50 ms", "p99 ms", "errors"
    );
    let mut all: Vec<u64> = Vec::new();
    let mut by_class = [0u64; 3];
    let (mut good, mut errors) = (0u64, 0u64);
    for (op, s) in OPS.iter().zip(&r.stats.ops) {
        let mut m = s.micros.clone();
        m.sort_unstable();
        all.extend(&m);
        good += s.ok;
        errors += s.errors;
        by_class[op.class() as usize] += s.ok + s.errors;
        if s.ok + s.errors == 0 {
            continue;
        }
        println!(
            "{:<28} {:<8} {:>8} {:>9.1} {:>8.2} {:>8.2} {:>7}",
            op.name(),
            format!("{:?}", op.class()).to_lowercase(),
            s.ok,
            s.ok as f64 / secs,
            percentile_ms(&m, 0.50),
            percentile_ms(&m, 0.99),
            s.errors
        );
        for e in &s.samples {
            println!("    error: {e}");
        }
    }
    all.sort_unstable();
    println!(
        "{:<28} {:<8} {:>8} {:>9.1} {:>8.2} {:>8.2} {:>7}",
        "total",
        "",
        good,
        good as f64 / secs,
        percentile_ms(&all, 0.50),
        percentile_ms(&all, 0.99),
        errors
    );
    let total = by_class.iter().sum::<u64>().max(1) as f64;
    let (er, el, eb) = expected_shares(&CLASS_WEIGHTS);
    println!(
        "request shares: read {:.1} %, login {:.1} %, booking {:.1} % (weights aim at {:.1} / {:.1} / {:.1})",
        100.0 * by_class[0] as f64 / total,
        100.0 * by_class[1] as f64 / total,
        100.0 * by_class[2] as f64 / total,
        100.0 * er,
        100.0 * el,
        100.0 * eb
    );
    let mut sms_m = r.stats.sms_micros.clone();
    sms_m.sort_unstable();
    println!(
        "SMS code, POST login answered -> code at the gateway: {} codes, p50 {:.1} ms, p99 {:.1} ms, {} not within {} s; gateway got {} messages",
        sms_m.len(),
        percentile_ms(&sms_m, 0.50),
        percentile_ms(&sms_m, 0.99),
        r.stats.sms_timeouts,
        SMS_WAIT.as_secs(),
        sms.received.load(Ordering::Relaxed)
    );
    let mut seen: Vec<u64> = r.staleness.samples.iter().flatten().copied().collect();
    seen.sort_unstable();
    let missed = r.staleness.samples.iter().filter(|s| s.is_none()).count();
    println!(
        "staleness ({}): {} bookings, shown after p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {missed} not within {} s; {} probe errors",
        if args.processes > 1 {
            "booked on server 1, read on the others"
        } else {
            "booked and read on the one server"
        },
        r.staleness.samples.len(),
        percentile_ms(&seen, 0.50),
        percentile_ms(&seen, 0.99),
        seen.last().copied().map(ms).unwrap_or(0.0),
        PROBE_GIVE_UP.as_secs(),
        r.staleness.errors
    );
}

fn print_csv(args: &MixedArgs, r: &Report, hwm: &[f64], inv: &Invariants) {
    let secs = r.elapsed.as_secs_f64();
    let mut all: Vec<u64> = r.stats.ops.iter().flat_map(|s| s.micros.clone()).collect();
    all.sort_unstable();
    let good: u64 = r.stats.ops.iter().map(|s| s.ok).sum();
    let errors: u64 = r.stats.ops.iter().map(|s| s.errors).sum();
    let mut seen: Vec<u64> = r.staleness.samples.iter().flatten().copied().collect();
    seen.sort_unstable();
    println!(
        "csv,mixed,{},{},{:.1},{:.2},{:.2},{errors},{},{:.1},{},{},{},{}",
        args.processes,
        args.clients,
        good as f64 / secs,
        percentile_ms(&all, 0.50),
        percentile_ms(&all, 0.99),
        hwm.iter()
            .map(|m| format!("{m:.1}"))
            .collect::<Vec<_>>()
            .join("/"),
        seen.last().copied().map(ms).unwrap_or(0.0),
        inv.booked,
        inv.rows,
        inv.over,
        inv.without_job
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weights_give_the_issues_request_shares() {
        let (r, l, b) = expected_shares(&CLASS_WEIGHTS);
        assert!((r - 0.90).abs() < 0.005, "reads {r}");
        assert!((l - 0.07).abs() < 0.005, "login {l}");
        assert!((b - 0.03).abs() < 0.005, "booking {b}");
        assert_eq!(CLASS_WEIGHTS.iter().map(|(_, w)| w).sum::<u32>(), 10_000);
        assert_eq!(READ_WEIGHTS.iter().map(|(_, w)| w).sum::<u32>(), 100);
    }

    #[test]
    fn a_roll_falls_on_its_weights_band() {
        let w = [('a', 3), ('b', 0), ('c', 2)];
        let got: String = (0..5).map(|r| pick(&w, r)).collect();
        assert_eq!(got, "aaacc");
        // every roll below the total lands on an entry with weight
        assert_eq!(pick(&CLASS_WEIGHTS, 0), Class::Read);
        assert_eq!(pick(&CLASS_WEIGHTS, 9_635), Class::Read);
        assert_eq!(pick(&CLASS_WEIGHTS, 9_636), Class::Login);
        assert_eq!(pick(&CLASS_WEIGHTS, 9_831), Class::Login);
        assert_eq!(pick(&CLASS_WEIGHTS, 9_832), Class::Booking);
        assert_eq!(pick(&CLASS_WEIGHTS, 9_999), Class::Booking);
    }

    #[test]
    fn every_op_has_its_place_and_class() {
        for (i, op) in OPS.iter().enumerate() {
            assert_eq!(op.index(), i);
        }
        assert_eq!(Op::GqlAvailability.class(), Class::Read);
        assert_eq!(Op::CodePost.class(), Class::Login);
        assert_eq!(Op::GqlChange.class(), Class::Booking);
    }

    #[test]
    fn pages_are_read_as_a_phone_follows_them() {
        let html = r#"<a class="choice" href="/t/rush/venues/0195f0c2-0000-7000-8000-000000000001?change=0195f0c2-0000-7000-8000-0000000000aa">x</a>
            <a class="choice slot" href="/t/rush/confirm?slot=0195f0c2-0000-7000-8000-000000000002&amp;change=x">y</a>
            <input type="hidden" name="csrf" value="abc123"><input type="radio" name="dose" value="1" checked>"#;
        assert_eq!(
            uuids_after(html, "href=\"/t/rush/venues/"),
            ["0195f0c2-0000-7000-8000-000000000001"
                .parse::<Uuid>()
                .unwrap()]
        );
        assert_eq!(
            uuids_after(html, "confirm?slot="),
            ["0195f0c2-0000-7000-8000-000000000002"
                .parse::<Uuid>()
                .unwrap()]
        );
        assert_eq!(
            uuids_after(html, "?change="),
            ["0195f0c2-0000-7000-8000-0000000000aa"
                .parse::<Uuid>()
                .unwrap()]
        );
        assert_eq!(field(html, "csrf"), Some("abc123"));
        assert_eq!(field(html, "key"), None);
    }

    #[test]
    fn the_gateway_reads_twilios_form_and_the_code_in_the_text() {
        let form = form_decode(
            "To=%2B819000000042&From=%2B815000000000&Body=%E3%80%90%E5%B8%82%E3%80%91+123456+%28code%29%25",
        );
        assert_eq!(form[0], ("To".into(), "+819000000042".into()));
        assert_eq!(form[2].1, "【市】 123456 (code)%");
        assert_eq!(code_in(&form[2].1).as_deref(), Some("123456"));
        assert_eq!(code_in("call 0120-1234567 or 12345"), None);
    }

    #[test]
    fn residents_are_derived_as_the_seeding_writes_them() {
        assert_eq!(
            resident(1),
            (
                "2000000001".to_owned(),
                "1970-01-02".to_owned(),
                "+819000000001".to_owned()
            )
        );
        // 1970-01-01 + 19,999 days
        assert_eq!(resident(19_999).1, "2024-10-03");
        assert_eq!(resident(20_000).1, "1970-01-01");
        assert_eq!(civil_from_days(59), "1970-03-01");
        assert_eq!(civil_from_days(365 * 2 + 59), "1972-02-29");
        assert_eq!(address_of(70_000), "10.1.17.112");
    }
}
