//! The "served" line of each request, capped under load (issue 18: logging must not become the
//! bottleneck of an opening rush — a text access log once wrote 558 MB in 45 s).
//!
//! Every answer with status 400 or above, and every answer slower than one second, is logged. Other
//! answers are logged up to `log.served_lines_per_second` lines a second (0: no cap); past the cap
//! they are counted, and the next line logged carries `unlogged` — how many successful answers went
//! unlogged since the line before — so the log still accounts for every request. The counts and
//! latencies of every request are in `/metrics` either way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Answers slower than this are always logged.
const SLOW: Duration = Duration::from_secs(1);

/// The shared cap (one per server).
#[derive(Clone)]
pub struct AccessLog(Arc<Inner>);

struct Inner {
    per_second: u64,
    epoch: Instant,
    /// The current second since `epoch` (high 32 bits) and the lines logged in it (low 32 bits).
    window: AtomicU64,
    unlogged: AtomicU64,
}

impl AccessLog {
    pub fn new(per_second: u64) -> Self {
        Self(Arc::new(Inner {
            per_second,
            epoch: Instant::now(),
            window: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
        }))
    }

    /// Whether this answer's line is written (counting it against this second's allowance), and
    /// how many successful answers went unlogged before it.
    pub fn admit(&self, status: u16, latency: Duration) -> Option<u64> {
        let i = &self.0;
        let always = status >= 400 || latency >= SLOW || i.per_second == 0;
        if !always && !i.take(Instant::now()) {
            i.unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(i.unlogged.swap(0, Ordering::Relaxed))
    }
}

impl<B> tower_http::trace::OnResponse<B> for AccessLog {
    fn on_response(self, res: &axum::http::Response<B>, latency: Duration, _span: &tracing::Span) {
        let status = res.status().as_u16();
        if let Some(unlogged) = self.admit(status, latency) {
            let duration_ms = latency.as_millis() as u64;
            if unlogged > 0 {
                tracing::info!(status, duration_ms, unlogged, "served");
            } else {
                tracing::info!(status, duration_ms, "served");
            }
        }
    }
}

impl Inner {
    fn take(&self, now: Instant) -> bool {
        let second = now.saturating_duration_since(self.epoch).as_secs() & 0xffff_ffff;
        let mut cur = self.window.load(Ordering::Relaxed);
        loop {
            let (s, n) = (cur >> 32, cur & 0xffff_ffff);
            let next = if s == second {
                if n >= self.per_second {
                    return false;
                }
                cur + 1
            } else {
                (second << 32) | 1
            };
            match self
                .window
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => cur = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successful_lines_are_capped_per_second_and_the_next_line_counts_the_rest() {
        let log = AccessLog::new(3);
        let fast = Duration::from_millis(2);
        let admitted: Vec<Option<u64>> = (0..5).map(|_| log.admit(200, fast)).collect();
        assert_eq!(admitted, vec![Some(0), Some(0), Some(0), None, None]);
        // errors and slow answers are always written, and say what went unlogged
        assert_eq!(log.admit(500, fast), Some(2));
        assert_eq!(log.admit(200, Duration::from_secs(2)), Some(0));
        assert_eq!(log.admit(404, fast), Some(0));
        // a new second has a new allowance (the clock is moved, not waited for)
        let later = log.0.epoch + Duration::from_secs(1);
        assert!(log.0.take(later));
    }

    #[test]
    fn zero_means_every_line() {
        let log = AccessLog::new(0);
        assert!((0..1000).all(|_| log.admit(200, Duration::ZERO) == Some(0)));
    }
}
