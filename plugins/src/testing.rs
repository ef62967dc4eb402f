//! Test support (feature `testing`): a real SMTP server in the test process that keeps what it
//! receives, and a small reader for the MIME the SMTP channel writes (RFC 2047 headers, base64 parts).

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use mailin_embedded::response::{self, Response};
use mailin_embedded::{Handler, Server};

/// One message as the server received it.
#[derive(Debug, Clone, Default)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    pub raw: String,
}

impl ReceivedMail {
    /// A header's value with continuation lines joined and RFC 2047 encoded-words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or_default();
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with(' ') || line.starts_with('\t') {
                    v.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_owned());
            }
        }
        value.map(|v| decode_words(&v))
    }

    /// The decoded body of the first part with this content type (e.g. `text/plain`).
    pub fn part(&self, content_type: &str) -> Option<String> {
        let lower = self.raw.to_ascii_lowercase();
        let at = lower.find(&format!("content-type: {content_type}"))?;
        let rest = &self.raw[at..];
        let headers_end = rest.find("\r\n\r\n")?;
        let headers = rest[..headers_end].to_ascii_lowercase();
        let body: String = rest[headers_end + 4..]
            .split("\r\n")
            .take_while(|l| !l.starts_with("--") && !l.is_empty())
            .collect();
        if headers.contains("content-transfer-encoding: base64") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(body.trim())
                .ok()?;
            String::from_utf8(bytes).ok()
        } else {
            Some(body)
        }
    }
}

/// `=?utf-8?b?…?=` words decoded (adjacent words joined, as RFC 2047 says).
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("=?") {
        let between = &rest[..start];
        if !between.trim().is_empty() {
            out.push_str(between);
        }
        let word = &rest[start + 2..];
        let parts: Vec<&str> = word.splitn(3, '?').collect();
        let Some(end) = parts.get(2).and_then(|p| p.find("?=")) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let text = &parts[2][..end];
        let decoded = match parts[1].to_ascii_lowercase().as_str() {
            "b" => base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()
                .and_then(|b| String::from_utf8(b).ok()),
            _ => Some(text.replace('_', " ")),
        };
        out.push_str(&decoded.unwrap_or_default());
        let consumed = start + 2 + parts[0].len() + 1 + parts[1].len() + 1 + end + 2;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    out
}

/// Cloned for every connection: the message being received is the session's own (senders may
/// deliver over several connections at once), the finished ones are shared.
#[derive(Clone, Default)]
struct Collector {
    current: ReceivedMail,
    done: Arc<Mutex<Vec<ReceivedMail>>>,
}

impl Handler for Collector {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = ReceivedMail {
            from: from.to_owned(),
            to: to.to_vec(),
            raw: String::new(),
        };
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.raw.push_str(&String::from_utf8_lossy(buf));
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Ok(mut done) = self.done.lock() {
            done.push(self.current.clone());
        }
        response::OK
    }
}

/// A real SMTP server on 127.0.0.1 (random port) that keeps every message it receives.
pub struct SmtpSink {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<ReceivedMail>>>,
}

impl SmtpSink {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind SMTP sink");
        let addr = listener.local_addr().expect("SMTP sink address");
        let collector = Collector::default();
        let received = collector.done.clone();
        let mut server = Server::new(collector);
        server.with_name("sink.test").with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Self { addr, received }
    }

    pub fn received(&self) -> Vec<ReceivedMail> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Waits until `n` messages arrived (or the timeout passed) and returns what arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
