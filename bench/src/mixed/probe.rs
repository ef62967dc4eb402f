//! The staleness probe: a seat booked through one server, polled on another until it shows.

use super::*;

/// What the probe measured: per booking, the time until another server showed it (None: not
/// within [`PROBE_GIVE_UP`]).
pub(super) struct Staleness {
    pub(super) samples: Vec<Option<u64>>,
    pub(super) errors: u64,
}

/// The probe slot's free seats as `base` answers.
pub(super) async fn probe_free(
    http: &reqwest::Client,
    base: &str,
    venue: Uuid,
    slot: Uuid,
) -> Option<i64> {
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
pub(super) async fn probe(
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
