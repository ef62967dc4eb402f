//! `yoyaku-bench attack`: issue 15's attacks, from outside, against the real server in its own
//! process, measured as an attacker sees them and as the operator does (the server's memory).
//!
//! Starts `yoyaku serve` (the release binary beside this one, or `--server PATH`) on a fresh
//! database with the demo city, adds a venue with a year of slots (the target of list
//! amplification), then, while a prober asks `/healthz` every 20 ms and a sampler reads the
//! server's resident memory from `/proc` every 20 ms:
//!
//! 1. **fan-out** — an anonymous query whose 31 fragments each spread the previous one twice
//!    (2^30 fields once expanded), `--repeat` times one after another: each must be refused
//!    (`TOO_COMPLEX`) in under 50 ms;
//! 2. **aliases** — 200 aliases of `availability` over 62 days of the year-long venue: refused in
//!    under 50 ms;
//! 3. **too wide** — 20 aliases of `availability` over 62 days (~186,000 values estimated, above
//!    `graphql::limits::MAX_VALUES`): refused (`TOO_LARGE`) in under 50 ms, before it runs;
//! 4. **widest allowed** — 10 such aliases (~93,000 values estimated, the most a document may
//!    ask): answered or refused by size, its time reported;
//! 5. **padded** — 1,000 requests of ~1.9 MB each (whitespace padding in the JSON around a small
//!    query, and in half of them inside the query text), 16 at a time, cycling through 32 paddings.
//!
//! Targets (issue 15, acceptance 2): refusals under 50 ms, server memory under 150 MB throughout,
//! `/healthz` within 50 ms throughout. Prints one line per attack and a verdict; exits non-zero
//! when a target is missed or an answer is not what the attack should get.
//!
//!     cargo build --release -p yoyaku -p yoyaku-bench
//!     target/release/yoyaku-bench attack [--repeat 20] [--padded 1000] [--server PATH]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sqlx::{Executor, postgres::PgPoolOptions};
use uuid::Uuid;

/// Refusals and `/healthz` answers must come within this.
const TARGET_MS: f64 = 50.0;
/// The server's resident memory must stay under this.
const TARGET_RSS_MB: f64 = 150.0;

pub struct AttackArgs {
    pub repeat: usize,
    pub padded: usize,
    pub server: Option<PathBuf>,
}

pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<AttackArgs> {
    let mut a = AttackArgs {
        repeat: 20,
        padded: 1_000,
        server: None,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--repeat" => a.repeat = value.parse()?,
            "--padded" => a.padded = value.parse()?,
            "--server" => a.server = Some(value.into()),
            other => bail!("unknown option {other}"),
        }
    }
    Ok(a)
}

/// Latencies in milliseconds, sorted on demand.
#[derive(Default)]
struct Times(Vec<f64>);

impl Times {
    fn pct(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_by(f64::total_cmp);
        self.0[((self.0.len() as f64 * p) as usize).min(self.0.len() - 1)]
    }
    fn max(&self) -> f64 {
        self.0.iter().copied().fold(0.0, f64::max)
    }
}

/// The server process, killed when dropped.
pub(crate) struct Server {
    child: tokio::process::Child,
    pub(crate) pid: u32,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The process's resident memory in MB (`VmRSS`), or its peak (`VmHWM`).
pub(crate) fn memory_mb(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Starts `bin serve` on `port` against the database at `url` (created and migrated by the server
/// if new), with `settings` as `YOYAKU_…` environment overrides, and waits until it is ready.
pub(crate) async fn start_server(
    bin: &PathBuf,
    url: &str,
    port: u16,
    settings: &[(&str, String)],
) -> anyhow::Result<Server> {
    let child = tokio::process::Command::new(bin)
        .arg("serve")
        .env("YOYAKU_DATABASE__URL", url)
        .env("YOYAKU_HTTP__PORT", port.to_string())
        .env("YOYAKU_LOG__LEVEL", "warn")
        .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().context("server pid")?;
    let server = Server { child, pid };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && r.status().is_success()
        {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!("the server did not become ready within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A venue in the demo city with a year of slots, 09:00–18:40 every 20 minutes.
async fn seed_year_venue(url: &str) -> anyhow::Result<Uuid> {
    let owner = PgPoolOptions::new().max_connections(1).connect(url).await?;
    let (tenant, vaccine): (Uuid, Uuid) = sqlx::query_as(
        "SELECT t.id, v.id FROM tenants t JOIN vaccines v ON v.tenant_id = t.id \
         WHERE t.slug = 'demo' LIMIT 1",
    )
    .fetch_one(&owner)
    .await
    .context("the demo city and its vaccine")?;
    let mut tx = tenants::begin(&owner, tenants::TenantId(tenant)).await?;
    let venue = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO venues (tenant_id, id, name, address, kind, vaccine_id) \
         VALUES ($1, $2, '一年会場', 'attack street 1', 'mass', $3)",
    )
    .bind(tenant)
    .bind(venue)
    .bind(vaccine)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity) \
         SELECT $1, gen_random_uuid(), $2, \
                date_trunc('day', now()) + interval '3 days' + d * interval '1 day' + interval '9 hours' + m * interval '20 minutes', \
                date_trunc('day', now()) + interval '3 days' + d * interval '1 day' + interval '9 hours 20 minutes' + m * interval '20 minutes', \
                50 \
         FROM generate_series(0, 364) d, generate_series(0, 28) m",
    )
    .bind(tenant)
    .bind(venue)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    owner.execute("ANALYZE").await?;
    owner.close().await;
    Ok(venue)
}

fn fan_out_query(levels: usize) -> String {
    let mut q = String::from("query($v: UUID!) { availability(city: \"demo\", venueId: $v) { ...F");
    q.push_str(&levels.to_string());
    q.push_str(" } }\nfragment F0 on SlotView { id free }\n");
    for i in 1..=levels {
        q.push_str(&format!(
            "fragment F{i} on SlotView {{ ...F{p} ...F{p} }}\n",
            p = i - 1
        ));
    }
    q
}

fn aliases_query(n: usize) -> String {
    let mut q = String::from("query($v: UUID!) {");
    for i in 0..n {
        q.push_str(&format!(
            " a{i}: availability(city: \"demo\", venueId: $v, days: 62) {{ id startsAt free mark }}"
        ));
    }
    q.push_str(" }");
    q
}

/// The `extensions.reason` (or `code`) of the first error, if any.
fn refusal(answer: &Value) -> Option<String> {
    let ext = &answer["errors"][0]["extensions"];
    ext["reason"]
        .as_str()
        .or(ext["code"].as_str())
        .map(str::to_owned)
}

struct Attack {
    name: &'static str,
    times: Times,
    /// How many answers were the expected refusal (or, for allowed requests, an answer).
    expected: usize,
    sent: usize,
    /// Whether its time is held to [`TARGET_MS`].
    timed: bool,
}

impl Attack {
    fn print(&mut self) -> bool {
        let (p50, p99, max) = (self.times.pct(0.5), self.times.pct(0.99), self.times.max());
        let ok = self.expected == self.sent && (!self.timed || max < TARGET_MS);
        println!(
            "{:<16} sent={:<5} as_expected={:<5} p50={:>7.2} ms p99={:>7.2} ms max={:>7.2} ms{}",
            self.name,
            self.sent,
            self.expected,
            p50,
            p99,
            max,
            if self.timed {
                if ok { "  OK (<50 ms)" } else { "  MISSED" }
            } else if ok {
                "  OK"
            } else {
                "  UNEXPECTED ANSWERS"
            }
        );
        ok
    }
}

/// Sends `body` `n` times one after another; counts answers whose refusal is `want` (None: an
/// answer with data and no errors, or a refusal for size).
async fn sequential(
    http: &reqwest::Client,
    url: &str,
    name: &'static str,
    body: Vec<u8>,
    n: usize,
    want: Option<&str>,
) -> anyhow::Result<Attack> {
    let mut a = Attack {
        name,
        times: Times::default(),
        expected: 0,
        sent: 0,
        timed: want.is_some(),
    };
    for _ in 0..n {
        let t0 = Instant::now();
        let res = http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await?;
        let bytes = res.bytes().await?;
        a.times.0.push(t0.elapsed().as_secs_f64() * 1000.0);
        a.sent += 1;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let got = refusal(&answer);
        let as_expected = match want {
            Some(w) => got.as_deref() == Some(w),
            None => got.is_none() || got.as_deref() == Some("TOO_LARGE"),
        };
        if as_expected {
            a.expected += 1;
        } else if a.sent - a.expected <= 3 {
            let text = String::from_utf8_lossy(&bytes);
            eprintln!(
                "{name}: unexpected answer: {}",
                text.chars().take(300).collect::<String>()
            );
        }
    }
    Ok(a)
}

/// Distinct padded bodies the attack cycles through (built once: the load generator shares the
/// two cores with the server, and building 1.9 MB of JSON per request would be most of its work).
const PADDED_VARIANTS: usize = 32;

/// `n` padded requests, `concurrency` at a time, each padding different from the ones next to it:
/// even variants pad the JSON around a small valid query (answered), odd ones pad inside the
/// query text (refused: over the 32 KiB query limit).
async fn padded(
    http: &reqwest::Client,
    url: &str,
    venue: Uuid,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Attack> {
    let query = "query($v: UUID!) { availability(city: \"demo\", venueId: $v) { id free } }";
    let bodies: Arc<Vec<(Vec<u8>, bool)>> = Arc::new(
        (0..PADDED_VARIANTS)
            .map(|i| {
                // ~1.9 MB, under the 2 MiB body limit, a different length each time
                let pad = " ".repeat(1_900_000 - i * 13);
                if i.is_multiple_of(2) {
                    let body = format!(
                        "{{{pad}\"query\":{}, \"variables\": {{\"v\": \"{venue}\"}}{pad}}}",
                        serde_json::to_string(query).expect("json"),
                        pad = &pad[..pad.len() / 2]
                    );
                    (body.into_bytes(), false)
                } else {
                    let padded_query = query.replacen("{ id", &format!("{pad}{{ id"), 1);
                    let body = json!({ "query": padded_query, "variables": { "v": venue } });
                    (body.to_string().into_bytes(), true)
                }
            })
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, url, next, bodies) =
                (http.clone(), url.to_owned(), next.clone(), bodies.clone());
            tokio::spawn(async move {
                let mut times = Times::default();
                let mut expected = 0;
                let mut sent = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= n {
                        break;
                    }
                    let (body, want_refusal) = &bodies[i % bodies.len()];
                    let t0 = Instant::now();
                    let res = http
                        .post(&url)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let answer: Value = match res {
                        Ok(r) => r.json().await.unwrap_or(Value::Null),
                        Err(_) => Value::Null,
                    };
                    times.0.push(t0.elapsed().as_secs_f64() * 1000.0);
                    sent += 1;
                    let got = refusal(&answer);
                    let ok = if *want_refusal {
                        got.as_deref() == Some("TOO_COMPLEX")
                    } else {
                        got.is_none() && answer["data"]["availability"].is_array()
                    };
                    if ok {
                        expected += 1;
                    }
                }
                (times, expected, sent)
            })
        })
        .collect();
    let mut a = Attack {
        name: "padded",
        times: Times::default(),
        expected: 0,
        sent: 0,
        timed: false,
    };
    for t in tasks {
        let (times, expected, sent) = t.await?;
        a.times.0.extend(times.0);
        a.expected += expected;
        a.sent += sent;
    }
    Ok(a)
}

/// The server binary: `--server PATH`, or the release `yoyaku` beside this binary.
pub(crate) fn server_binary(server: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = match server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("yoyaku"),
    };
    if !bin.exists() {
        bail!(
            "no server binary at {}: build it first (cargo build --release -p yoyaku -p yoyaku-bench) or pass --server PATH",
            bin.display()
        );
    }
    Ok(bin)
}

pub async fn run(args: AttackArgs) -> anyhow::Result<()> {
    let bin = server_binary(&args.server)?;
    let base = std::env::var("YOYAKU_BENCH_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let database = format!("yoyaku_attack_{stamp}");
    let db_url = format!("{base}/{database}?sslmode=disable");
    let port = free_port()?;
    let server = start_server(&bin, &db_url, port, &[("YOYAKU_DEMO__SEED", "true".into())]).await?;
    let result = attack(&server, port, &db_url, &args).await;
    drop(server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    crate::drop_database(&base, &database).await?;
    result
}

async fn attack(server: &Server, port: u16, db_url: &str, args: &AttackArgs) -> anyhow::Result<()> {
    let venue = seed_year_venue(db_url).await?;
    let url = format!("http://127.0.0.1:{port}/graphql");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(32)
        .build()?;
    let pid = server.pid;
    let rss_before = memory_mb(pid, "VmRSS:").unwrap_or(0.0);

    // the prober and the sampler run until every attack is done
    let done = Arc::new(AtomicBool::new(false));
    let prober = {
        let (done, http) = (done.clone(), http.clone());
        let url = format!("http://127.0.0.1:{port}/healthz");
        tokio::spawn(async move {
            let mut times = Times::default();
            let mut failed = 0usize;
            while !done.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    _ => failed += 1,
                }
                times.0.push(t0.elapsed().as_secs_f64() * 1000.0);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (times, failed)
        })
    };
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0.0f64;
            while !done.load(Ordering::Relaxed) {
                if let Some(mb) = memory_mb(pid, "VmRSS:") {
                    peak = peak.max(mb);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };

    let vars = json!({ "v": venue });
    let fan_out = serde_json::to_vec(&json!({ "query": fan_out_query(30), "variables": vars }))?;
    let aliases = serde_json::to_vec(&json!({ "query": aliases_query(200), "variables": vars }))?;
    let too_wide = serde_json::to_vec(&json!({ "query": aliases_query(20), "variables": vars }))?;
    let widest = serde_json::to_vec(&json!({ "query": aliases_query(10), "variables": vars }))?;
    let started = Instant::now();
    let mut attacks = vec![
        sequential(
            &http,
            &url,
            "fan-out-30",
            fan_out,
            args.repeat,
            Some("TOO_COMPLEX"),
        )
        .await?,
        sequential(
            &http,
            &url,
            "aliases-200",
            aliases,
            args.repeat,
            Some("TOO_COMPLEX"),
        )
        .await?,
        sequential(
            &http,
            &url,
            "too-wide-20",
            too_wide,
            args.repeat,
            Some("TOO_LARGE"),
        )
        .await?,
        sequential(&http, &url, "widest-allowed", widest, args.repeat, None).await?,
        padded(&http, &url, venue, args.padded, 16).await?,
    ];
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let (mut health, health_failed) = prober.await?;
    let peak = sampler.await?;
    let hwm = memory_mb(pid, "VmHWM:").unwrap_or(0.0);

    println!("server pid {pid}; the attacks took {seconds:.1} s");
    let mut all_ok = true;
    for a in &mut attacks {
        all_ok &= a.print();
    }
    let health_max = health.max();
    let health_ok = health_failed == 0 && health_max < TARGET_MS;
    println!(
        "healthz          probes={:<5} failed={:<3} p50={:>7.2} ms p99={:>7.2} ms max={:>7.2} ms  {}",
        health.0.len(),
        health_failed,
        health.pct(0.5),
        health.pct(0.99),
        health_max,
        if health_ok { "OK (<50 ms)" } else { "MISSED" }
    );
    let memory_ok = peak < TARGET_RSS_MB && hwm < TARGET_RSS_MB;
    println!(
        "server memory    before={rss_before:.1} MB sampled_peak={peak:.1} MB VmHWM={hwm:.1} MB  {}",
        if memory_ok { "OK (<150 MB)" } else { "MISSED" }
    );
    println!(
        "csv,attack,{:.2},{:.2},{:.2},{:.2},{:.2},{health_max:.2},{peak:.1},{hwm:.1}",
        attacks[0].times.max(),
        attacks[1].times.max(),
        attacks[2].times.max(),
        attacks[3].times.max(),
        attacks[4].times.max(),
    );
    if !(all_ok && health_ok && memory_ok) {
        bail!("a target was missed (see above)");
    }
    println!("verdict: every target held");
    Ok(())
}
