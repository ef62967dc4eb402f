//! Eligible-resident import from the city's register: CSV in UTF-8 (with or without BOM) or
//! Shift_JIS. Every row is validated first; the report names each bad row by line, column and
//! reason. Nothing is written unless every row is valid, or the caller explicitly asks to import the
//! valid rows. Rows are upserted by ticket number in batches (UNNEST arrays, one statement per
//! batch); a row whose values did not change is not touched, so re-importing a file changes nothing.

use chrono::{Datelike, NaiveDate};
use serde_json::json;
use uuid::Uuid;

use crate::staff::audit;
use crate::staff::authz::Scope;

/// The header every file starts with (column order is free; the last four columns are optional).
pub const COLUMNS: [&str; 8] = [
    "ticket_no",
    "birth_date",
    "kana_name",
    "sex",
    "phone",
    "email",
    "postal_code",
    "preferred_language",
];

const BATCH: usize = 5_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    pub column: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentRow {
    pub line: u64,
    pub ticket_no: String,
    pub birth_date: NaiveDate,
    pub kana_name: String,
    pub sex: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub postal_code: Option<String>,
    pub preferred_locale: Option<String>,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub rows: Vec<ResidentRow>,
    pub errors: Vec<RowError>,
    /// "UTF-8" or "Shift_JIS".
    pub encoding: &'static str,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped_invalid: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is not a CSV we can read: {0}")]
    Unreadable(String),
    #[error("{} rows are invalid; nothing was imported", .0.len())]
    InvalidRows(Vec<RowError>),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// UTF-8 when the bytes are valid UTF-8 (a BOM is dropped), Shift_JIS otherwise.
pub fn decode(bytes: &[u8]) -> Result<(String, &'static str), ImportError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok((s.to_owned(), "UTF-8"));
    }
    let (text, _, had_errors) = encoding_rs::SHIFT_JIS.decode(bytes);
    if had_errors {
        return Err(ImportError::Unreadable(
            "it is neither UTF-8 nor Shift_JIS text".into(),
        ));
    }
    Ok((text.into_owned(), "Shift_JIS"))
}

/// Full-width katakana (with the long-vowel mark and middle dot) and spaces.
fn is_kana_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().any(|c| c != ' ' && c != '\u{3000}')
        && s.chars()
            .all(|c| ('\u{30A1}'..='\u{30FC}').contains(&c) || c == ' ' || c == '\u{3000}')
}

fn parse_sex(s: &str) -> Option<&'static str> {
    match s.to_lowercase().as_str() {
        "female" | "f" | "女" | "2" => Some("female"),
        "male" | "m" | "男" | "1" => Some("male"),
        "other" | "その他" | "9" => Some("other"),
        "unknown" | "不明" | "0" => Some("unknown"),
        _ => None,
    }
}

/// The 1-based lines of the file records start on. The csv reader's own count is one short after
/// a CRLF line end (it ends the record at the CR, and the next record's position is the LF) and
/// counts no CR-only line ends: a report would name the line above the bad row (found by the
/// `csv_import` fuzz target). Line ends: LF, CRLF and a lone CR.
struct Lines<'a> {
    text: &'a [u8],
    /// Bytes before this were counted; `ends` line ends among them.
    counted: usize,
    ends: u64,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            counted: 0,
            ends: 0,
        }
    }

    /// The line of the record at `p` (records come in file order: each byte is counted once).
    fn of(&mut self, p: &csv::Position) -> u64 {
        let b = self.text;
        let mut start = usize::try_from(p.byte()).unwrap_or(usize::MAX).min(b.len());
        // the line ends (and blank lines) before the record belong to the lines above
        while start < b.len() && (b[start] == b'\n' || b[start] == b'\r') {
            start += 1;
        }
        if start > self.counted {
            self.ends += (self.counted..start)
                .filter(|&i| b[i] == b'\n' || (b[i] == b'\r' && b.get(i + 1) != Some(&b'\n')))
                .count() as u64;
            self.counted = start;
        }
        1 + self.ends
    }
}

/// Parses and validates the whole file; never touches the database.
pub fn parse(bytes: &[u8]) -> Result<Parsed, ImportError> {
    let (text, encoding) = decode(bytes)?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Unreadable(e.to_string()))?
        .clone();
    let index = |name: &str| headers.iter().position(|h| h == name);
    let required = ["ticket_no", "birth_date", "kana_name", "sex"];
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|c| index(c).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::Unreadable(format!(
            "the first line must name the columns; missing: {} (expected {})",
            missing.join(", "),
            COLUMNS.join(",")
        )));
    }
    let idx: Vec<Option<usize>> = COLUMNS.iter().map(|c| index(c)).collect();
    let mut parsed = Parsed {
        encoding,
        ..Parsed::default()
    };
    let mut seen = std::collections::HashMap::<String, u64>::new();
    let mut lines = Lines::new(&text);
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.of(p));
                parsed.errors.push(RowError {
                    line,
                    column: String::new(),
                    reason: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map_or(0, |p| lines.of(p));
        let get = |i: usize| {
            idx[i]
                .and_then(|j| record.get(j))
                .map(str::to_owned)
                .unwrap_or_default()
        };
        let optional = |i: usize| Some(get(i)).filter(|v| !v.is_empty());
        let mut errs = Vec::new();
        let mut err = |column: &str, reason: &str| {
            errs.push(RowError {
                line,
                column: column.to_owned(),
                reason: reason.to_owned(),
            })
        };
        // THE input normaliser first: a cell with a NUL or another control character is that
        // cell's one error (the checks below would only add noise about it).
        for (i, column) in COLUMNS.iter().enumerate() {
            if crate::text::clean_line(column, &get(i)).is_err() {
                err(column, crate::text::BadText::REASON);
            }
        }
        let ticket_no = get(0);
        if ticket_no.len() != 10 || !ticket_no.bytes().all(|b| b.is_ascii_digit()) {
            err("ticket_no", "must be exactly 10 digits");
        } else if let Some(first) = seen.insert(ticket_no.clone(), line) {
            err(
                "ticket_no",
                &format!("the same ticket number is on line {first}"),
            );
        }
        let birth_raw = get(1);
        let birth_date = NaiveDate::parse_from_str(&birth_raw, "%Y-%m-%d")
            .or_else(|_| NaiveDate::parse_from_str(&birth_raw, "%Y/%m/%d"))
            .ok();
        let today = chrono::Utc::now().date_naive();
        match birth_date {
            None => err("birth_date", "must be a date like 1950-04-01"),
            Some(d) if d > today || d.year_ce().1 < 1900 => {
                err("birth_date", "must be a past date after 1900")
            }
            Some(_) => {}
        }
        let kana_name = get(2);
        if !is_kana_name(&kana_name) {
            err("kana_name", "must be written in full-width katakana");
        }
        let sex = parse_sex(&get(3));
        if sex.is_none() {
            err("sex", "must be female, male, other or unknown");
        }
        let phone = optional(4).map(|p| p.replace('-', ""));
        if let Some(p) = &phone
            && !((p.len() == 10 || p.len() == 11) && p.bytes().all(|b| b.is_ascii_digit()))
        {
            err("phone", "must be a phone number of 10 or 11 digits");
        }
        let email = optional(5);
        if let Some(e) = &email
            && crate::staff::identity::parse_email(e).is_err()
        {
            err("email", "is not an e-mail address");
        }
        let postal_code = optional(6).map(|p| p.replace('-', ""));
        if let Some(p) = &postal_code
            && (p.len() != 7 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            err("postal_code", "must be 7 digits, e.g. 231-0005");
        }
        let preferred_locale = match optional(7) {
            None => None,
            Some(l) => match tenants::Locale::parse(&l) {
                Ok(l) => Some(l.as_str().to_owned()),
                Err(_) => {
                    err("preferred_language", "must be one of ja, en, zh-Hans, pt");
                    None
                }
            },
        };
        let mut reported = std::collections::HashSet::new();
        errs.retain(|e| reported.insert(e.column.clone()));
        if errs.is_empty() {
            parsed.rows.push(ResidentRow {
                line,
                ticket_no,
                birth_date: birth_date.unwrap_or_default(),
                kana_name: kana_name.replace('\u{3000}', " "),
                sex: sex.unwrap_or("unknown").to_owned(),
                phone,
                email,
                postal_code,
                preferred_locale,
            });
        } else {
            parsed.errors.extend(errs);
        }
    }
    Ok(parsed)
}

/// Writes the parsed rows. Refuses when any row was invalid unless `import_valid_rows`.
/// `progress(done, total)` is called after every batch.
pub async fn import(
    scope: &mut Scope,
    parsed: &Parsed,
    import_valid_rows: bool,
    source: &str,
    mut progress: impl FnMut(usize, usize),
) -> Result<ImportOutcome, ImportError> {
    if !parsed.errors.is_empty() && !import_valid_rows {
        return Err(ImportError::InvalidRows(parsed.errors.clone()));
    }
    let tenant = scope.tenant_id().0;
    let mut outcome = ImportOutcome {
        skipped_invalid: parsed
            .errors
            .iter()
            .map(|e| e.line)
            .collect::<std::collections::HashSet<_>>()
            .len() as u64,
        ..ImportOutcome::default()
    };
    let total = parsed.rows.len();
    for (n, batch) in parsed.rows.chunks(BATCH).enumerate() {
        let ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
        let tickets: Vec<&str> = batch.iter().map(|r| r.ticket_no.as_str()).collect();
        let births: Vec<NaiveDate> = batch.iter().map(|r| r.birth_date).collect();
        let names: Vec<&str> = batch.iter().map(|r| r.kana_name.as_str()).collect();
        let sexes: Vec<&str> = batch.iter().map(|r| r.sex.as_str()).collect();
        let phones: Vec<Option<&str>> = batch.iter().map(|r| r.phone.as_deref()).collect();
        let emails: Vec<Option<&str>> = batch.iter().map(|r| r.email.as_deref()).collect();
        let postals: Vec<Option<&str>> = batch.iter().map(|r| r.postal_code.as_deref()).collect();
        let locales: Vec<Option<&str>> = batch
            .iter()
            .map(|r| r.preferred_locale.as_deref())
            .collect();
        // xmax = 0 on the returned row means it was inserted, otherwise updated; rows whose values
        // are unchanged are filtered by the WHERE and not returned at all.
        let inserted: Vec<bool> = sqlx::query_scalar(
            "INSERT INTO residents AS r (tenant_id, id, ticket_no, birth_date, kana_name, sex, phone, \
                                         email, postal_code, preferred_locale) \
             SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::date[], $5::text[], $6::text[], \
                                      $7::text[], $8::text[], $9::text[], $10::text[]) \
             ON CONFLICT (tenant_id, ticket_no) DO UPDATE SET \
                 birth_date = EXCLUDED.birth_date, kana_name = EXCLUDED.kana_name, sex = EXCLUDED.sex, \
                 phone = EXCLUDED.phone, email = EXCLUDED.email, postal_code = EXCLUDED.postal_code, \
                 preferred_locale = EXCLUDED.preferred_locale, updated_at = now() \
             WHERE (r.birth_date, r.kana_name, r.sex, r.phone, r.email, r.postal_code, r.preferred_locale) \
                   IS DISTINCT FROM (EXCLUDED.birth_date, EXCLUDED.kana_name, EXCLUDED.sex, EXCLUDED.phone, \
                                     EXCLUDED.email, EXCLUDED.postal_code, EXCLUDED.preferred_locale) \
             RETURNING (xmax = 0)",
        )
        .bind(tenant)
        .bind(&ids)
        .bind(&tickets)
        .bind(&births)
        .bind(&names)
        .bind(&sexes)
        .bind(&phones)
        .bind(&emails)
        .bind(&postals)
        .bind(&locales)
        .fetch_all(&mut *scope.tx)
        .await?;
        let ins = inserted.iter().filter(|i| **i).count() as u64;
        let upd = inserted.len() as u64 - ins;
        outcome.inserted += ins;
        outcome.updated += upd;
        outcome.unchanged += batch.len() as u64 - ins - upd;
        progress((n * BATCH + batch.len()).min(total), total);
    }
    audit::record(
        scope,
        "residents.import",
        "residents",
        json!({
            "source": source, "encoding": parsed.encoding, "rows": total,
            "inserted": outcome.inserted, "updated": outcome.updated,
            "unchanged": outcome.unchanged, "skipped_invalid": outcome.skipped_invalid,
        }),
    )
    .await?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "ticket_no,birth_date,kana_name,sex,phone,email,postal_code,preferred_language\n";

    #[test]
    fn a_valid_row_parses_into_typed_values() {
        let csv = format!(
            "{HEADER}1000000001,1950-04-01,ヤマダ タロウ,male,090-1234-5678,,231-0005,ja\n"
        );
        let p = parse(csv.as_bytes()).expect("parse");
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let r = &p.rows[0];
        assert_eq!(r.line, 2);
        assert_eq!(r.phone.as_deref(), Some("09012345678"));
        assert_eq!(r.postal_code.as_deref(), Some("2310005"));
        assert_eq!(r.sex, "male");
    }

    #[test]
    fn rows_are_numbered_by_the_files_lines_whatever_the_line_ends() {
        for end in ["\n", "\r\n", "\r"] {
            let csv = format!(
                "ticket_no,birth_date,kana_name,sex{end}0500000001,1970-01-02,\"キウ\",1{end}{end}0500000002,1970-01-02,キウ,x{end}"
            );
            let parsed = parse(csv.as_bytes()).expect("readable");
            assert_eq!(
                parsed.rows.iter().map(|r| r.line).collect::<Vec<_>>(),
                vec![2],
                "{end:?}"
            );
            assert_eq!(
                parsed.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
                vec![4],
                "{end:?}"
            );
        }
    }

    #[test]
    fn bad_rows_are_reported_by_line_column_and_reason() {
        let csv = format!(
            "{HEADER}123,1950-04-01,ヤマダ タロウ,male,,,,\n1000000002,1950-13-01,yamada,x,,,,fr\n"
        );
        let p = parse(csv.as_bytes()).expect("parse");
        assert!(p.rows.is_empty());
        let cols: Vec<(u64, &str)> = p
            .errors
            .iter()
            .map(|e| (e.line, e.column.as_str()))
            .collect();
        assert_eq!(
            cols,
            vec![
                (2, "ticket_no"),
                (3, "birth_date"),
                (3, "kana_name"),
                (3, "sex"),
                (3, "preferred_language")
            ]
        );
    }

    #[test]
    fn shift_jis_is_decoded() {
        let csv = format!("{HEADER}1000000001,1950-04-01,スズキ ハナコ,female,,,,\n");
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(&csv);
        let p = parse(&sjis).expect("parse");
        assert_eq!(p.encoding, "Shift_JIS");
        assert_eq!(p.rows[0].kana_name, "スズキ ハナコ");
    }

    #[test]
    fn a_missing_column_is_named() {
        let err = parse(b"ticket_no,birth_date\n").unwrap_err().to_string();
        assert!(err.contains("kana_name, sex"), "{err}");
    }
}
