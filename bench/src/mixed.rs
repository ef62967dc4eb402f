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

/// What a request is for: the three classes of the issue's mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Read,
    Login,
    Booking,
}

/// One page or operation, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Venues,
    Days,
    Times,
    MyBookings,
    GqlAvailability,
    LoginPage,
    LoginPost,
    CodePage,
    CodePost,
    Confirm,
    BookPost,
    ChangePost,
    Done,
    GqlBook,
    GqlChange,
}

const OPS: [Op; 15] = [
    Op::Venues,
    Op::Days,
    Op::Times,
    Op::MyBookings,
    Op::GqlAvailability,
    Op::LoginPage,
    Op::LoginPost,
    Op::CodePage,
    Op::CodePost,
    Op::Confirm,
    Op::BookPost,
    Op::ChangePost,
    Op::Done,
    Op::GqlBook,
    Op::GqlChange,
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Venues => "GET venues",
            Op::Days => "GET venues/{v} (days)",
            Op::Times => "GET venues/{v}/{d} (times)",
            Op::MyBookings => "GET bookings",
            Op::GqlAvailability => "gql availability",
            Op::LoginPage => "GET login",
            Op::LoginPost => "POST login (code)",
            Op::CodePage => "GET code",
            Op::CodePost => "POST code (session)",
            Op::Confirm => "GET confirm",
            Op::BookPost => "POST book",
            Op::ChangePost => "POST change",
            Op::Done => "GET done",
            Op::GqlBook => "gql book",
            Op::GqlChange => "gql changeBooking",
        }
    }

    fn class(self) -> Class {
        match self {
            Op::Venues | Op::Days | Op::Times | Op::MyBookings | Op::GqlAvailability => Class::Read,
            Op::LoginPage | Op::LoginPost | Op::CodePage | Op::CodePost => Class::Login,
            Op::Confirm
            | Op::BookPost
            | Op::ChangePost
            | Op::Done
            | Op::GqlBook
            | Op::GqlChange => Class::Booking,
        }
    }

    fn index(self) -> usize {
        OPS.iter().position(|o| *o == self).unwrap_or(0)
    }
}

/// What an iteration does, by weight (per 10,000). A read is one request; a login is four
/// login-class requests and one read (`GET bookings` after it); a booking is, on average, 1.5 reads
/// (days and times on the site, `availability` over GraphQL) and 2 booking-class requests
/// (`confirm`, the post, `done` on the site; the mutation over GraphQL). These weights make the
/// requests ~90 % reads, ~7 % login, ~3 % booking ([`expected_shares`]).
const CLASS_WEIGHTS: [(Class, u32); 3] = [
    (Class::Read, 9_636),
    (Class::Login, 196),
    (Class::Booking, 168),
];

/// Which read a read iteration is, by weight (per 100).
const READ_WEIGHTS: [(Op, u32); 5] = [
    (Op::Venues, 5),
    (Op::Days, 25),
    (Op::Times, 25),
    (Op::MyBookings, 15),
    (Op::GqlAvailability, 30),
];

/// Requests per iteration of each class: (reads, login-class, booking-class).
fn requests_of(class: Class) -> (f64, f64, f64) {
    match class {
        Class::Read => (1.0, 0.0, 0.0),
        Class::Login => (1.0, 4.0, 0.0),
        // half on the site (2 reads, 3 booking requests), half over GraphQL (1 and 1)
        Class::Booking => (1.5, 0.0, 2.0),
    }
}

/// The request shares (read, login, booking) the weights give, when every flow runs to its end.
fn expected_shares(weights: &[(Class, u32)]) -> (f64, f64, f64) {
    let (mut r, mut l, mut b) = (0.0, 0.0, 0.0);
    for (class, w) in weights {
        let (cr, cl, cb) = requests_of(*class);
        let w = f64::from(*w);
        r += w * cr;
        l += w * cl;
        b += w * cb;
    }
    let total = r + l + b;
    (r / total, l / total, b / total)
}

/// The entry of `weights` that `roll` (0 ≤ roll < the sum of the weights) falls on.
fn pick<T: Copy>(weights: &[(T, u32)], roll: u32) -> T {
    let mut left = roll;
    for (item, w) in weights {
        if left < *w {
            return *item;
        }
        left -= w;
    }
    weights.last().expect("weights").0
}

fn roll<T: Copy>(weights: &[(T, u32)]) -> T {
    let total: u32 = weights.iter().map(|(_, w)| w).sum();
    pick(weights, rand::random_range(0..total))
}

// Reading the pages

/// Every text that follows `prefix` in `html`, up to one of `ends` (not containing it).
fn after_all<'a>(html: &'a str, prefix: &str, ends: &[char]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
        let end = rest.find(|c| ends.contains(&c)).unwrap_or(rest.len());
        out.push(&rest[..end]);
    }
    out
}

/// The value of the form field `name` (`name="…" value="…"`, as the pages write them).
fn field<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    after_all(html, &format!("name=\"{name}\" value=\""), &['"'])
        .into_iter()
        .next()
}

/// The uuids that follow `prefix` in `html` (hrefs: the uuid ends at `"`, `?` or `&`).
fn uuids_after(html: &str, prefix: &str) -> Vec<Uuid> {
    after_all(html, prefix, &['"', '?', '&', '/'])
        .into_iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// `application/x-www-form-urlencoded` into pairs.
fn form_decode(body: &str) -> Vec<(String, String)> {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match (
                b[i],
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (b'+', _, _) => out.push(b' '),
                (b'%', Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                (c, _, _) => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The 6-digit code in an SMS text (a run of exactly six ASCII digits).
fn code_in(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .map(str::to_owned)
}

// The fake SMS gateway

/// Codes received by the fake gateway, by recipient (E.164), until a phone takes them.
#[derive(Default)]
struct Sms {
    codes: Mutex<HashMap<String, String>>,
    arrived: tokio::sync::Notify,
    received: AtomicU64,
}

impl Sms {
    /// The code sent to `to`, as soon as it arrives (None after `within`).
    async fn wait(&self, to: &str, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(code) = self.codes.lock().ok()?.remove(to) {
                return Some(code);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }
}

/// Serves Twilio's `POST /2010-04-01/Accounts/{sid}/Messages.json` (HTTP/1.1, keep-alive): keeps
/// the code of each message by its `To`, answers 201 with a message sid.
async fn sms_gateway(listener: tokio::net::TcpListener, sms: Arc<Sms>) {
    while let Ok((stream, _)) = listener.accept().await {
        let sms = sms.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            loop {
                let mut length = 0usize;
                let mut line = String::new();
                // request line and headers
                let mut first = true;
                loop {
                    line.clear();
                    match read.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let l = line.trim_end();
                    if l.is_empty() && !first {
                        break;
                    }
                    first = false;
                    if let Some((k, v)) = l.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                if read.read_exact(&mut body).await.is_err() {
                    return;
                }
                let form = form_decode(&String::from_utf8_lossy(&body));
                let to = form.iter().find(|(k, _)| k == "To").map(|(_, v)| v.clone());
                let code = form
                    .iter()
                    .find(|(k, _)| k == "Body")
                    .and_then(|(_, v)| code_in(v));
                let n = sms.received.fetch_add(1, Ordering::Relaxed);
                if let (Some(to), Some(code), Ok(mut codes)) = (to, code, sms.codes.lock()) {
                    codes.insert(to, code);
                }
                sms.arrived.notify_waiters();
                let answer = format!(r#"{{"sid":"SMbench{n:010}","status":"queued"}}"#);
                let head = format!(
                    "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    answer.len()
                );
                if write
                    .write_all(format!("{head}{answer}").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

// Residents as the seeding made them

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

/// What every phone shares.
struct World {
    http: reqwest::Client,
    sms: Arc<Sms>,
    venues: Vec<Uuid>,
    /// Venues on the site's list (the seeded ones and the probe venue).
    listed_venues: usize,
    /// Local days that have slots.
    dates: Vec<String>,
    /// Next resident to log in (counts up to `logins_end`).
    next_login: AtomicUsize,
    logins_end: usize,
    deadline: Mutex<Instant>,
    site_bookings: bool,
}

/// A page or answer as the phone got it.
struct Got {
    status: u16,
    location: Option<String>,
    body: String,
}

struct Phone {
    world: Arc<World>,
    /// The server this phone talks to (`http://127.0.0.1:port`).
    base: String,
    /// Cookie jar: name → value.
    jar: Vec<(String, String)>,
    address: String,
    /// The resident's live booking, if the phone knows of one.
    booking: Option<Uuid>,
    /// Walking the pages to change that booking (`?change=` on every link).
    changing: bool,
    /// The last days page: venue and its days.
    days: Option<(Uuid, Vec<String>)>,
    stats: Stats,
    last_micros: u64,
}

type Check<T> = Result<T, String>;

impl Phone {
    fn url(&self, rest: &str) -> String {
        format!("{}/t/{CITY}/{rest}", self.base)
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.jar
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn keep_cookies(&mut self, headers: &reqwest::header::HeaderMap) {
        for v in headers.get_all(reqwest::header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|kv| kv.trim().split_once('=')) else {
                continue;
            };
            let gone =
                value.is_empty() || parts.any(|p| p.trim().eq_ignore_ascii_case("max-age=0"));
            self.jar.retain(|(k, _)| k != name);
            if !gone {
                self.jar.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// Sends, reads the whole answer, keeps its cookies, times it.
    async fn send(&mut self, req: reqwest::RequestBuilder) -> Check<Got> {
        let mut req = req
            .header("x-forwarded-for", &self.address)
            .header(reqwest::header::ACCEPT_LANGUAGE, "ja");
        if !self.jar.is_empty() {
            let cookies = self
                .jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header(reqwest::header::COOKIE, cookies);
        }
        let t0 = Instant::now();
        let res = req.send().await;
        let got = match res {
            Ok(res) => {
                let status = res.status().as_u16();
                let headers = res.headers().clone();
                match res.text().await {
                    Ok(body) => {
                        self.keep_cookies(&headers);
                        Ok(Got {
                            status,
                            location: headers
                                .get(reqwest::header::LOCATION)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned),
                            body,
                        })
                    }
                    Err(e) => Err(format!("reading the answer: {e}")),
                }
            }
            Err(e) => Err(format!("request: {e}")),
        };
        self.last_micros = t0.elapsed().as_micros() as u64;
        got
    }

    /// Counts the last request as `op`, good or not; returns what the check found.
    fn record<T>(&mut self, op: Op, checked: Check<T>) -> Option<T> {
        let s = &mut self.stats.ops[op.index()];
        s.micros.push(self.last_micros);
        match checked {
            Ok(v) => {
                s.ok += 1;
                Some(v)
            }
            Err(e) => {
                s.errors += 1;
                if s.samples.len() < 3 {
                    s.samples.push(e);
                }
                None
            }
        }
    }

    async fn page(&mut self, op: Op, rest: &str, marker: &str) -> Option<String> {
        let req = self.world.http.get(self.url(rest));
        let got = self.send(req).await;
        let checked = got.and_then(|g| {
            if g.status != 200 {
                return Err(format!("{rest}: status {}", g.status));
            }
            if !g.body.contains(marker) {
                return Err(format!("{rest}: no {marker:?} in the page"));
            }
            Ok(g.body)
        });
        self.record(op, checked)
    }

    /// Posts a form; the answer must be a 303 to a page starting with `to`; returns its location.
    async fn post(
        &mut self,
        op: Op,
        rest: &str,
        form: &[(&str, &str)],
        to: &str,
    ) -> Option<String> {
        let req = self.world.http.post(self.url(rest)).form(form);
        let got = self.send(req).await;
        let want = format!("/t/{CITY}/{to}");
        let checked = got.and_then(|g| match (g.status, g.location) {
            (303, Some(l)) if l.starts_with(&want) => Ok(l),
            (s, l) => Err(format!(
                "POST {rest}: {s} to {l:?}, not to {want}; {}",
                error_text(&g.body)
            )),
        });
        self.record(op, checked)
    }

    async fn graphql<T: serde::de::DeserializeOwned>(
        &mut self,
        op: Op,
        body: serde_json::Value,
    ) -> Option<T> {
        let mut req = self
            .world
            .http
            .post(format!("{}/graphql", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(token) = self.cookie("yk_session") {
            req = req.bearer_auth(token.to_owned());
        }
        // GraphQL clients carry no cookies: a bearer token
        let jar = std::mem::take(&mut self.jar);
        let got = self.send(req).await;
        self.jar = jar;
        let checked = got.and_then(|g| {
            if g.status != 200 {
                return Err(format!("graphql: status {}", g.status));
            }
            let answer: GqlAnswer<T> = serde_json::from_str(&g.body)
                .map_err(|e| format!("graphql: {e}: {}", error_text(&g.body)))?;
            match answer {
                GqlAnswer {
                    data: Some(d),
                    errors: None,
                } => Ok(d),
                _ => Err(format!("graphql: errors: {}", error_text(&g.body))),
            }
        });
        self.record(op, checked)
    }

    fn random_venue(&self) -> Uuid {
        self.world.venues[rand::random_range(0..self.world.venues.len())]
    }

    fn change_query(&self, first: char) -> String {
        self.booking
            .filter(|_| self.changing)
            .map(|b| format!("{first}change={b}"))
            .unwrap_or_default()
    }

    async fn venues(&mut self) -> Option<()> {
        let q = self.change_query('?');
        let body = self
            .page(Op::Venues, &format!("venues{q}"), "class=\"choice\"")
            .await?;
        let n = uuids_after(&body, &format!("href=\"/t/{CITY}/venues/")).len();
        if n != self.world.listed_venues {
            let want = self.world.listed_venues;
            self.fail(Op::Venues, format!("venues: {n} venue links, not {want}"));
            return None;
        }
        Some(())
    }

    async fn days(&mut self, venue: Uuid) -> Option<Vec<String>> {
        let q = self.change_query('?');
        let body = self
            .page(Op::Days, &format!("venues/{venue}{q}"), "class=\"choice\"")
            .await?;
        let days: Vec<String> =
            after_all(&body, &format!("/t/{CITY}/venues/{venue}/"), &['"', '?'])
                .into_iter()
                .filter(|d| d.len() == 10)
                .map(str::to_owned)
                .collect();
        self.days = Some((venue, days.clone()));
        Some(days)
    }

    async fn times(&mut self, venue: Uuid, date: &str) -> Option<Vec<Uuid>> {
        let q = self.change_query('?');
        let body = self
            .page(
                Op::Times,
                &format!("venues/{venue}/{date}{q}"),
                "class=\"choice slot\"",
            )
            .await?;
        Some(uuids_after(&body, "confirm?slot="))
    }

    async fn my_bookings(&mut self) -> Option<()> {
        let body = self
            .page(Op::MyBookings, "bookings", "id=\"book-new\"")
            .await?;
        self.booking = uuids_after(&body, "venues?change=").into_iter().next();
        Some(())
    }

    /// GraphQL availability of a random venue, a day or a week; the slots with a free seat.
    async fn gql_availability(&mut self) -> Option<Vec<Uuid>> {
        let venue = self.random_venue();
        let dates = &self.world.dates;
        let day = &dates[rand::random_range(0..dates.len())];
        let body = if rand::random::<bool>() {
            json!({
                "query": "query($c: String!, $v: UUID!, $d: Date) { availability(city: $c, venueId: $v, date: $d) { id free mark } }",
                "variables": { "c": CITY, "v": venue, "d": day }
            })
        } else {
            json!({
                "query": "query($c: String!, $v: UUID!, $f: Date) { availability(city: $c, venueId: $v, from: $f, days: 7) { id free mark } }",
                "variables": { "c": CITY, "v": venue, "f": dates[0] }
            })
        };
        let data: AvailabilityData = self.graphql(Op::GqlAvailability, body).await?;
        Some(
            data.availability
                .into_iter()
                .filter(|s| s.free > 0 && !s.mark.is_empty())
                .map(|s| s.id)
                .collect(),
        )
    }

    async fn read(&mut self) {
        match roll(&READ_WEIGHTS) {
            Op::Venues => {
                self.venues().await;
            }
            Op::Days => {
                let v = self.random_venue();
                self.days(v).await;
            }
            Op::Times => {
                // a day of the venue whose days the phone saw last, else of a random venue
                let (venue, date) = match &self.days {
                    Some((v, d)) if !d.is_empty() => {
                        (*v, d[rand::random_range(0..d.len())].clone())
                    }
                    _ => {
                        let d = &self.world.dates;
                        (
                            self.random_venue(),
                            d[rand::random_range(0..d.len())].clone(),
                        )
                    }
                };
                self.times(venue, &date).await;
            }
            Op::MyBookings => {
                self.my_bookings().await;
            }
            _ => {
                self.gql_availability().await;
            }
        }
    }

    /// A new resident on this phone: login page, code request, code page, the SMS, the code, my
    /// bookings.
    async fn login(&mut self) {
        let n = self.world.next_login.fetch_add(1, Ordering::Relaxed);
        if n >= self.world.logins_end {
            return self.read().await;
        }
        let (ticket, birth, phone) = resident(n);
        // a new phone: its own address, an empty jar
        self.address = address_of(n);
        self.jar.clear();
        self.booking = None;
        self.days = None;
        let Some(page) = self.page(Op::LoginPage, "login", "id=\"send-code\"").await else {
            return;
        };
        let Some(token) = field(&page, "form_token").map(str::to_owned) else {
            return self.fail(Op::LoginPage, "login page without form_token".into());
        };
        let Some(code_page) = self
            .post(
                Op::LoginPost,
                "login",
                &[
                    ("ticket", &ticket),
                    ("birth_date", &birth),
                    ("phone", ""),
                    ("form_token", &token),
                ],
                "code?",
            )
            .await
        else {
            return;
        };
        let asked = Instant::now();
        let rest = code_page.trim_start_matches(&format!("/t/{CITY}/"));
        let Some(page) = self.page(Op::CodePage, rest, "id=\"log-in\"").await else {
            return;
        };
        let (Some(token), Some(to)) = (field(&page, "form_token"), field(&page, "to")) else {
            return self.fail(Op::CodePage, "code page without its fields".into());
        };
        let (token, to) = (token.to_owned(), to.to_owned());
        let Some(code) = self.world.sms.wait(&phone, SMS_WAIT).await else {
            self.stats.sms_timeouts += 1;
            return;
        };
        self.stats
            .sms_micros
            .push(asked.elapsed().as_micros() as u64);
        if self
            .post(
                Op::CodePost,
                "code",
                &[
                    ("ticket", &ticket),
                    ("code", &code),
                    ("to", &to),
                    ("form_token", &token),
                ],
                "bookings",
            )
            .await
            .is_none()
        {
            return;
        }
        if self.cookie("yk_session").is_none() {
            return self.fail(Op::CodePost, "no session cookie after the code".into());
        }
        self.my_bookings().await;
    }

    /// Turns the last good answer of `op` into an error (what it carried was not what it should).
    fn fail(&mut self, op: Op, why: String) {
        let s = &mut self.stats.ops[op.index()];
        s.ok = s.ok.saturating_sub(1);
        s.errors += 1;
        if s.samples.len() < 3 {
            s.samples.push(why);
        }
    }

    async fn book(&mut self) {
        if self.world.site_bookings && rand::random::<bool>() {
            self.changing = self.booking.is_some();
            self.book_on_site().await;
            self.changing = false;
        } else {
            self.book_over_graphql().await
        }
    }

    /// Days → times → confirm → book (or change) → done, on the site.
    async fn book_on_site(&mut self) {
        let venue = self.random_venue();
        let Some(days) = self.days(venue).await else {
            return;
        };
        if days.is_empty() {
            return self.fail(Op::Days, format!("venue {venue}: no day to choose"));
        }
        let date = days[rand::random_range(0..days.len())].clone();
        let Some(slots) = self.times(venue, &date).await else {
            return;
        };
        if slots.is_empty() {
            return self.fail(
                Op::Times,
                format!("venue {venue} on {date}: no time to choose"),
            );
        }
        let slot = slots[rand::random_range(0..slots.len())];
        let q = self.change_query('&');
        let Some(page) = self
            .page(
                Op::Confirm,
                &format!("confirm?slot={slot}{q}"),
                "id=\"confirm\"",
            )
            .await
        else {
            return;
        };
        let (Some(csrf), Some(key)) = (field(&page, "csrf"), field(&page, "key")) else {
            return self.fail(Op::Confirm, "confirm page without csrf or key".into());
        };
        let (csrf, key, slot) = (csrf.to_owned(), key.to_owned(), slot.to_string());
        let done = match self.booking {
            Some(b) => {
                let b = b.to_string();
                self.post(
                    Op::ChangePost,
                    "change",
                    &[
                        ("csrf", &csrf),
                        ("key", &key),
                        ("slot", &slot),
                        ("change", &b),
                    ],
                    "done?booking=",
                )
                .await
            }
            None => {
                let Some(dose) = after_all(&page, "name=\"dose\" value=\"", &['"'])
                    .into_iter()
                    .find(|v| page.contains(&format!("name=\"dose\" value=\"{v}\" checked")))
                    .map(str::to_owned)
                else {
                    return self.fail(Op::Confirm, "confirm page without a chosen dose".into());
                };
                self.post(
                    Op::BookPost,
                    "book",
                    &[
                        ("csrf", &csrf),
                        ("key", &key),
                        ("slot", &slot),
                        ("dose", &dose),
                    ],
                    "done?booking=",
                )
                .await
            }
        };
        let Some(done) = done else { return };
        let booked = uuids_after(&done, "done?booking=").into_iter().next();
        if booked.is_none() {
            let op = if self.booking.is_some() {
                Op::ChangePost
            } else {
                Op::BookPost
            };
            return self.fail(op, format!("done without a booking: {done}"));
        }
        self.booking = booked;
        let rest = done.trim_start_matches(&format!("/t/{CITY}/")).to_owned();
        self.page(Op::Done, &rest, "id=\"my-bookings\"").await;
    }

    /// Availability → book (or changeBooking), over GraphQL with the session as bearer token.
    async fn book_over_graphql(&mut self) {
        let Some(free) = self.gql_availability().await else {
            return;
        };
        if free.is_empty() {
            return;
        }
        let slot = free[rand::random_range(0..free.len())];
        let key = format!("mixed-{:032x}", rand::random::<u128>());
        match self.booking {
            None => {
                let body = json!({
                    "query": "mutation($i: BookInput!) { book(input: $i) { bookings { id } errors { code message } } }",
                    "variables": { "i": { "slotId": slot, "dose": "FIRST", "idempotencyKey": key } }
                });
                let Some(data) = self.graphql::<BookData>(Op::GqlBook, body).await else {
                    return;
                };
                match (data.book.errors.first(), data.book.bookings.first()) {
                    (None, Some(b)) => self.booking = Some(b.id),
                    (e, _) => self.fail(Op::GqlBook, format!("book: {e:?}")),
                }
            }
            Some(b) => {
                let body = json!({
                    "query": "mutation($b: UUID!, $s: UUID!, $k: String!) { changeBooking(bookingId: $b, slotId: $s, idempotencyKey: $k) { booking { id } errors { code message } } }",
                    "variables": { "b": b, "s": slot, "k": key }
                });
                let Some(data) = self.graphql::<ChangeData>(Op::GqlChange, body).await else {
                    return;
                };
                match (
                    data.change_booking.errors.first(),
                    data.change_booking.booking,
                ) {
                    (None, Some(moved)) if moved.id == b => {}
                    (e, moved) => self.fail(
                        Op::GqlChange,
                        format!("changeBooking: {e:?}, {:?}", moved.map(|m| m.id)),
                    ),
                }
            }
        }
    }

    async fn run(mut self) -> Stats {
        loop {
            let deadline = self
                .world
                .deadline
                .lock()
                .map(|d| *d)
                .unwrap_or_else(|_| Instant::now());
            if Instant::now() >= deadline {
                break;
            }
            match roll(&CLASS_WEIGHTS) {
                Class::Read => self.read().await,
                Class::Login => self.login().await,
                Class::Booking => self.book().await,
            }
        }
        self.stats
    }
}

/// An error page's or answer's gist, short.
fn error_text(body: &str) -> String {
    let gist = after_all(body, "role=\"alert\">", &['<'])
        .into_iter()
        .next()
        .unwrap_or(body);
    gist.chars().take(160).collect()
}

#[derive(Deserialize)]
struct GqlAnswer<T> {
    data: Option<T>,
    errors: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
struct AvailabilityData {
    availability: Vec<Slot>,
}

#[derive(Deserialize)]
struct Slot {
    id: Uuid,
    free: i64,
    mark: String,
}

#[derive(Deserialize, Debug)]
struct UserError {
    #[expect(dead_code, reason = "shown in error samples through Debug")]
    code: String,
    #[expect(dead_code, reason = "shown in error samples through Debug")]
    message: String,
}

#[derive(Deserialize)]
struct Id {
    id: Uuid,
}

#[derive(Deserialize)]
struct BookData {
    book: BookPayload,
}

#[derive(Deserialize)]
struct BookPayload {
    bookings: Vec<Id>,
    errors: Vec<UserError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeData {
    change_booking: ChangePayload,
}

#[derive(Deserialize)]
struct ChangePayload {
    booking: Option<Id>,
    errors: Vec<UserError>,
}

// Staleness

/// What the probe measured: per booking, the time until another server showed it (None: not
/// within [`PROBE_GIVE_UP`]).
struct Staleness {
    samples: Vec<Option<u64>>,
    errors: u64,
}

/// The probe slot's free seats as `base` answers.
async fn probe_free(http: &reqwest::Client, base: &str, venue: Uuid, slot: Uuid) -> Option<i64> {
    let body = json!({
        "query": "query($c: String!, $v: UUID!) { availability(city: $c, venueId: $v) { id free mark } }",
        "variables": { "c": CITY, "v": venue }
    });
    let res = http
        .post(format!("{base}/graphql"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    let answer: GqlAnswer<AvailabilityData> = res.json().await.ok()?;
    answer
        .data
        .filter(|_| answer.errors.is_none())?
        .availability
        .into_iter()
        .find(|s| s.id == slot)
        .map(|s| s.free)
}

/// Books a probe seat through the first server every ~300 ms and times how long the next one
/// (or the same, with one process) keeps answering with the seat still free.
async fn probe(
    http: reqwest::Client,
    bases: Vec<String>,
    venue: Uuid,
    slot: Uuid,
    tokens: Vec<String>,
    stop: Arc<AtomicBool>,
) -> Staleness {
    let mut out = Staleness {
        samples: Vec::new(),
        errors: 0,
    };
    for (k, token) in tokens.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let writer = &bases[0];
        let reader = if bases.len() > 1 {
            &bases[1 + k % (bases.len() - 1)]
        } else {
            &bases[0]
        };
        let Some(before) = probe_free(&http, reader, venue, slot).await else {
            out.errors += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let body = json!({
            "query": "mutation($i: BookInput!) { book(input: $i) { bookings { id } errors { code } } }",
            "variables": { "i": { "slotId": slot, "dose": "FIRST", "idempotencyKey": format!("probe-{k:08}") } }
        });
        let booked = http
            .post(format!("{writer}/graphql"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .bearer_auth(token)
            .body(body.to_string())
            .send()
            .await
            .ok();
        let ok = match booked {
            Some(r) => r
                .json::<GqlAnswer<BookData>>()
                .await
                .ok()
                .and_then(|a| a.data.filter(|_| a.errors.is_none()))
                .is_some_and(|d| d.book.errors.is_empty() && !d.book.bookings.is_empty()),
            None => false,
        };
        if !ok {
            out.errors += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        let t0 = Instant::now();
        let seen = loop {
            if let Some(free) = probe_free(&http, reader, venue, slot).await
                && free < before
            {
                break Some(t0.elapsed().as_micros() as u64);
            }
            if t0.elapsed() > PROBE_GIVE_UP {
                break None;
            }
            tokio::time::sleep(PROBE_POLL).await;
        };
        out.samples.push(seen);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    out
}

// The run

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
