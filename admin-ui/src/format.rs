//! Small formatting helpers shared by several pages (numbers with thousands separators, yen).
//! A leaf: it uses nothing of this crate.

/// 1234567 → "1,234,567"
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Money as shown everywhere: "1,234,567円".
pub fn yen(n: i64) -> String {
    format!("{}円", thousands(n))
}
