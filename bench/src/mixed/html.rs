//! Reading what a page or an SMS hands the phone: links, form fields, ids, the login code.

use super::*;

/// Every text that follows `prefix` in `html`, up to one of `ends` (not containing it).
pub(super) fn after_all<'a>(html: &'a str, prefix: &str, ends: &[char]) -> Vec<&'a str> {
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
pub(super) fn field<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    after_all(html, &format!("name=\"{name}\" value=\""), &['"'])
        .into_iter()
        .next()
}

/// The uuids that follow `prefix` in `html` (hrefs: the uuid ends at `"`, `?` or `&`).
pub(super) fn uuids_after(html: &str, prefix: &str) -> Vec<Uuid> {
    after_all(html, prefix, &['"', '?', '&', '/'])
        .into_iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// `application/x-www-form-urlencoded` into pairs.
pub(super) fn form_decode(body: &str) -> Vec<(String, String)> {
    pub(super) fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    pub(super) fn decode(s: &str) -> String {
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
pub(super) fn code_in(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .map(str::to_owned)
}

// The fake SMS gateway
