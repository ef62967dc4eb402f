//! A phone: its cookie jar and address, and each page or operation it does, checking every answer it counts as good.

use super::*;

/// What every phone shares.
pub(super) struct World {
    pub(super) http: reqwest::Client,
    pub(super) sms: Arc<Sms>,
    pub(super) venues: Vec<Uuid>,
    /// Venues on the site's list (the seeded ones and the probe venue).
    pub(super) listed_venues: usize,
    /// Local days that have slots.
    pub(super) dates: Vec<String>,
    /// Next resident to log in (counts up to `logins_end`).
    pub(super) next_login: AtomicUsize,
    pub(super) logins_end: usize,
    pub(super) deadline: Mutex<Instant>,
    pub(super) site_bookings: bool,
}

/// A page or answer as the phone got it.
pub(super) struct Got {
    pub(super) status: u16,
    pub(super) location: Option<String>,
    pub(super) body: String,
}

pub(super) struct Phone {
    pub(super) world: Arc<World>,
    /// The server this phone talks to (`http://127.0.0.1:port`).
    pub(super) base: String,
    /// Cookie jar: name → value.
    pub(super) jar: Vec<(String, String)>,
    pub(super) address: String,
    /// The resident's live booking, if the phone knows of one.
    pub(super) booking: Option<Uuid>,
    /// Walking the pages to change that booking (`?change=` on every link).
    pub(super) changing: bool,
    /// The last days page: venue and its days.
    pub(super) days: Option<(Uuid, Vec<String>)>,
    pub(super) stats: Stats,
    pub(super) last_micros: u64,
}

pub(super) type Check<T> = Result<T, String>;

impl Phone {
    pub(super) fn url(&self, rest: &str) -> String {
        format!("{}/t/{CITY}/{rest}", self.base)
    }

    pub(super) fn cookie(&self, name: &str) -> Option<&str> {
        self.jar
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn keep_cookies(&mut self, headers: &reqwest::header::HeaderMap) {
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
    pub(super) async fn send(&mut self, req: reqwest::RequestBuilder) -> Check<Got> {
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
    pub(super) fn record<T>(&mut self, op: Op, checked: Check<T>) -> Option<T> {
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

    pub(super) async fn page(&mut self, op: Op, rest: &str, marker: &str) -> Option<String> {
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
    pub(super) async fn post(
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

    pub(super) async fn graphql<T: serde::de::DeserializeOwned>(
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

    pub(super) fn random_venue(&self) -> Uuid {
        self.world.venues[rand::random_range(0..self.world.venues.len())]
    }

    pub(super) fn change_query(&self, first: char) -> String {
        self.booking
            .filter(|_| self.changing)
            .map(|b| format!("{first}change={b}"))
            .unwrap_or_default()
    }

    pub(super) async fn venues(&mut self) -> Option<()> {
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

    pub(super) async fn days(&mut self, venue: Uuid) -> Option<Vec<String>> {
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

    pub(super) async fn times(&mut self, venue: Uuid, date: &str) -> Option<Vec<Uuid>> {
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

    pub(super) async fn my_bookings(&mut self) -> Option<()> {
        let body = self
            .page(Op::MyBookings, "bookings", "id=\"book-new\"")
            .await?;
        self.booking = uuids_after(&body, "venues?change=").into_iter().next();
        Some(())
    }

    /// GraphQL availability of a random venue, a day or a week; the slots with a free seat.
    pub(super) async fn gql_availability(&mut self) -> Option<Vec<Uuid>> {
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

    pub(super) async fn read(&mut self) {
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
    pub(super) async fn login(&mut self) {
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
    pub(super) fn fail(&mut self, op: Op, why: String) {
        let s = &mut self.stats.ops[op.index()];
        s.ok = s.ok.saturating_sub(1);
        s.errors += 1;
        if s.samples.len() < 3 {
            s.samples.push(why);
        }
    }

    pub(super) async fn book(&mut self) {
        if self.world.site_bookings && rand::random::<bool>() {
            self.changing = self.booking.is_some();
            self.book_on_site().await;
            self.changing = false;
        } else {
            self.book_over_graphql().await
        }
    }

    /// Days → times → confirm → book (or change) → done, on the site.
    pub(super) async fn book_on_site(&mut self) {
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
    pub(super) async fn book_over_graphql(&mut self) {
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

    pub(super) async fn run(mut self) -> Stats {
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
pub(super) fn error_text(body: &str) -> String {
    let gist = after_all(body, "role=\"alert\">", &['<'])
        .into_iter()
        .next()
        .unwrap_or(body);
    gist.chars().take(160).collect()
}

#[derive(Deserialize)]
pub(super) struct GqlAnswer<T> {
    pub(super) data: Option<T>,
    pub(super) errors: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
pub(super) struct AvailabilityData {
    pub(super) availability: Vec<Slot>,
}

#[derive(Deserialize)]
pub(super) struct Slot {
    pub(super) id: Uuid,
    pub(super) free: i64,
    pub(super) mark: String,
}

#[derive(Deserialize, Debug)]
pub(super) struct UserError {
    #[expect(dead_code, reason = "shown in error samples through Debug")]
    pub(super) code: String,
    #[expect(dead_code, reason = "shown in error samples through Debug")]
    pub(super) message: String,
}

#[derive(Deserialize)]
pub(super) struct Id {
    pub(super) id: Uuid,
}

#[derive(Deserialize)]
pub(super) struct BookData {
    pub(super) book: BookPayload,
}

#[derive(Deserialize)]
pub(super) struct BookPayload {
    pub(super) bookings: Vec<Id>,
    pub(super) errors: Vec<UserError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChangeData {
    pub(super) change_booking: ChangePayload,
}

#[derive(Deserialize)]
pub(super) struct ChangePayload {
    pub(super) booking: Option<Id>,
    pub(super) errors: Vec<UserError>,
}

// Staleness
