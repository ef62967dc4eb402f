//! Opaque cursors of the connections that encode their place themselves (`auditEntries`,
//! `venueSlots`, `invoiceHistory`): URL-safe base64 of `<list>:<position>`, like the exports'
//! cursors. Only what a list handed out is accepted: anything else is VALIDATION, before anything
//! is read.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

use crate::ApiError;

/// The cursor of a place in the list named `list`.
pub(crate) fn encode(list: &str, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{list}:{position}"))
}

/// The position text of a cursor `encode(list, …)` made; VALIDATION for anything else.
pub(crate) fn decode<T>(
    list: &str,
    cursor: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|t| t.strip_prefix(list)?.strip_prefix(':').and_then(parse))
        .ok_or_else(|| {
            ApiError::Validation(
                "`after` is not a cursor of this list: pass an `endCursor` or edge `cursor` \
                 exactly as it was returned"
                    .into(),
            )
        })
}

/// `first` of a page: VALIDATION unless it is 1–`max`.
pub(crate) fn page_size(first: i64, max: i64) -> Result<(), ApiError> {
    if (1..=max).contains(&first) {
        Ok(())
    } else {
        Err(ApiError::Validation(format!(
            "`first` must be between 1 and {max}"
        )))
    }
}

/// An instant as whole microseconds since the epoch (what PostgreSQL keeps, so it reads back
/// exactly).
pub(crate) fn micros(t: DateTime<Utc>) -> String {
    t.timestamp_micros().to_string()
}

/// The instant [`micros`] wrote.
pub(crate) fn from_micros(s: &str) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(s.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_only_as_its_own_list() {
        let t = DateTime::from_timestamp_micros(1_796_000_000_123_456).expect("instant");
        let c = encode("audit", &micros(t));
        assert_eq!(decode("audit", &c, from_micros).ok(), Some(t));
        assert!(decode("slot", &c, from_micros).is_err());
        assert!(decode("audi", &c, from_micros).is_err());
        assert!(decode("audit", "not a cursor", from_micros).is_err());
        assert!(decode("audit", &encode("audit", "x"), from_micros).is_err());
        assert!(page_size(0, 200).is_err() && page_size(201, 200).is_err());
        assert!(page_size(1, 200).is_ok() && page_size(200, 200).is_ok());
    }
}
