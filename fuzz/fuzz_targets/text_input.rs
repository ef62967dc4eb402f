//! The input normalisers every entry point uses (`platform::text`, phone numbers): never panic; what
//! they accept holds no control character (besides the line feeds and tabs of multi-line text), is
//! trimmed, and is accepted again unchanged (normalising twice changes nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform::residents::auth::normalise_phone;
use platform::text::{clean_line, clean_text};

fuzz_target!(|bytes: &[u8]| {
    let Ok(s) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(line) = clean_line("field", s) {
        assert!(!line.chars().any(char::is_control));
        assert_eq!(line, line.trim());
        assert_eq!(clean_line("field", &line).as_deref(), Ok(line.as_str()));
    } else {
        assert!(s.trim().chars().any(char::is_control));
    }
    if let Ok(text) = clean_text("field", s) {
        assert!(!text.chars().any(|c| c.is_control() && c != '\n' && c != '\t'));
        assert!(!text.contains('\r'));
        assert_eq!(clean_text("field", &text).as_deref(), Ok(text.as_str()));
    }
    if let Some(phone) = normalise_phone(s) {
        let digits = phone.strip_prefix('+').unwrap_or(&phone);
        assert!(!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()), "{phone:?}");
        assert_eq!(normalise_phone(&phone).as_deref(), Some(phone.as_str()));
    }
});
