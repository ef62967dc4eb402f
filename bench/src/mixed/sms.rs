//! The fake SMS gateway (Twilio's `Messages.json`) the city's channel points at, and the codes it received.

use super::*;

/// Codes received by the fake gateway, by recipient (E.164), until a phone takes them.
#[derive(Default)]
pub(super) struct Sms {
    pub(super) codes: Mutex<HashMap<String, String>>,
    pub(super) arrived: tokio::sync::Notify,
    pub(super) received: AtomicU64,
}

impl Sms {
    /// The code sent to `to`, as soon as it arrives (None after `within`).
    pub(super) async fn wait(&self, to: &str, within: Duration) -> Option<String> {
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
pub(super) async fn sms_gateway(listener: tokio::net::TcpListener, sms: Arc<Sms>) {
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
