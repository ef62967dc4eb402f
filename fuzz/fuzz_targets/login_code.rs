//! The login-code path's pure parts: a code is always six ASCII digits; what a resident types
//! matches the stored hash exactly when its digits are the code (full-width digits, spaces and
//! dashes do not help an attacker, nothing else matches); a session token names its city or
//! nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform::residents::auth::{CodeSecret, code_for, code_hash, code_matches, tenant_of_token};
use uuid::Uuid;

fuzz_target!(|input: (&str, [u8; 16], &str)| {
    let (secret, id, typed) = input;
    let secret = CodeSecret::from_setting(secret);
    let login = Uuid::from_bytes(id);
    let code = code_for(&secret, login);
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    let stored = code_hash(login, &code);
    let digits: String = typed.chars().filter(|c| c.is_ascii_digit()).collect();
    assert_eq!(code_matches(login, &stored, typed), digits == code, "{typed:?} vs {code}");
    assert!(code_matches(login, &stored, &code));
    if let Some(tenant) = tenant_of_token(typed) {
        let (head, _) = typed.split_once('.').expect("a token with a city has a dot");
        assert_eq!(Uuid::parse_str(head).ok(), Some(tenant.0));
    }
});
