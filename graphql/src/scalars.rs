//! The schema's own scalars, named for what they hold rather than for the Rust types behind them
//! (issue 17): `Date` (a calendar day) and `DateTime` (an instant with its offset). `UUID` is
//! async-graphql's, with our own description ([`describe`]).

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// A calendar day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date(pub chrono::NaiveDate);

/// A calendar day as `YYYY-MM-DD`, e.g. `2026-12-01`. Days of a city (slots, periods, windows)
/// are local days in the city's time zone (`Tenant.timeZone`).
#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .filter(|_| s.len() == 10)
                .map(Date)
                .ok_or_else(|| {
                    InputValueError::custom(format!(
                        "expected a date as YYYY-MM-DD, got \"{}\"",
                        shorten(s)
                    ))
                }),
            other => Err(InputValueError::custom(format!(
                "expected a date as YYYY-MM-DD, got {other}"
            ))),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}

/// An instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime(pub chrono::DateTime<chrono::Utc>);

/// An instant as an RFC 3339 date and time with its UTC offset, e.g. `2026-12-01T09:00:00+09:00`
/// or `2026-12-01T00:00:00Z`. Answers are given in UTC (`+00:00`).
#[Scalar(
    name = "DateTime",
    specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339"
)]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| DateTime(t.with_timezone(&chrono::Utc)))
                .map_err(|_| {
                    InputValueError::custom(format!(
                        "expected a date and time as RFC 3339 with an offset \
                         (YYYY-MM-DDThh:mm:ss+09:00 or …Z), got \"{}\"",
                        shorten(s)
                    ))
                }),
            other => Err(InputValueError::custom(format!(
                "expected a date and time as RFC 3339 with an offset \
                 (YYYY-MM-DDThh:mm:ss+09:00 or …Z), got {other}"
            ))),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339())
    }
}

/// At most 40 characters of what was sent, for a message.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

impl From<chrono::NaiveDate> for Date {
    fn from(d: chrono::NaiveDate) -> Self {
        Date(d)
    }
}

impl From<Date> for chrono::NaiveDate {
    fn from(d: Date) -> Self {
        d.0
    }
}

impl From<chrono::DateTime<chrono::Utc>> for DateTime {
    fn from(t: chrono::DateTime<chrono::Utc>) -> Self {
        DateTime(t)
    }
}

impl From<DateTime> for chrono::DateTime<chrono::Utc> {
    fn from(t: DateTime) -> Self {
        t.0
    }
}

/// The description of `UUID` in our schema (async-graphql's own talks about its implementation).
pub const UUID_DESCRIPTION: &str = "An identifier: a UUID as a string of 36 characters, e.g. `0190f0c4-8d1e-7c3a-9b2f-5a6d7e8f9a0b`.";

/// Gives the built-in scalars we use our descriptions (in every schema built, and in the SDL).
pub fn describe<Q, M, S>(
    builder: async_graphql::SchemaBuilder<Q, M, S>,
) -> async_graphql::SchemaBuilder<Q, M, S> {
    builder
        .override_input_type_description::<uuid::Uuid>(UUID_DESCRIPTION)
        .override_output_type_description::<uuid::Uuid>(UUID_DESCRIPTION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_only_as_yyyy_mm_dd() {
        let ok = <Date as ScalarType>::parse(Value::String("2026-12-01".into())).unwrap();
        assert_eq!(ok.0, chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
        assert_eq!(ok.to_value(), Value::String("2026-12-01".into()));
        for bad in [
            "2026-12-1",
            "01.12.2026",
            "2026-02-30",
            "2026-12-01T00:00:00Z",
            "",
        ] {
            let e = <Date as ScalarType>::parse(Value::String(bad.into())).unwrap_err();
            let msg = e.into_server_error(Default::default()).message;
            assert!(
                msg.contains("expected a date as YYYY-MM-DD, got"),
                "{bad}: {msg}"
            );
        }
        let e = <Date as ScalarType>::parse(Value::Number(20261201.into())).unwrap_err();
        assert!(
            e.into_server_error(Default::default())
                .message
                .contains("expected a date as YYYY-MM-DD")
        );
    }

    #[test]
    fn date_times_need_an_offset_and_answer_in_utc() {
        let t = <DateTime as ScalarType>::parse(Value::String("2026-12-01T09:00:00+09:00".into()))
            .unwrap();
        assert_eq!(
            t.to_value(),
            Value::String("2026-12-01T00:00:00+00:00".into())
        );
        let z =
            <DateTime as ScalarType>::parse(Value::String("2026-12-01T00:00:00Z".into())).unwrap();
        assert_eq!(t, z);
        for bad in ["2026-12-01T09:00:00", "2026-12-01", "soon"] {
            let e = <DateTime as ScalarType>::parse(Value::String(bad.into())).unwrap_err();
            let msg = e.into_server_error(Default::default()).message;
            assert!(
                msg.contains("expected a date and time as RFC 3339"),
                "{bad}: {msg}"
            );
        }
    }
}
