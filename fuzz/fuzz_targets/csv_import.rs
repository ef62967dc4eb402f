//! The residents CSV importer's parse step (`platform::residents::import::parse`), on any bytes: it
//! never panics, and whatever it accepts is clean — no control character in any field, every row's
//! line number inside the file, no ticket number twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform::residents::import;

fuzz_target!(|bytes: &[u8]| {
    let Ok(parsed) = import::parse(bytes) else {
        return;
    };
    // line ends: LF, CRLF, a lone CR
    let lines = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &c)| c == b'\n' || (c == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .count() as u64
        + 1;
    let mut tickets = std::collections::HashSet::new();
    for row in &parsed.rows {
        assert!(row.line >= 2 && row.line <= lines, "line {} of {lines}", row.line);
        assert!(tickets.insert(row.ticket_no.clone()), "ticket twice: {}", row.ticket_no);
        for field in [&row.ticket_no, &row.kana_name, &row.sex]
            .into_iter()
            .chain(row.phone.iter())
            .chain(row.email.iter())
            .chain(row.postal_code.iter())
            .chain(row.preferred_locale.iter())
        {
            assert!(!field.chars().any(char::is_control), "control character in {field:?}");
            assert!(!field.is_empty() || field == &row.kana_name, "empty field");
        }
    }
});
