//! THE input normaliser for free text typed by staff and residents (issue 15, finding 9): names,
//! addresses, ticket numbers, search words, idempotency keys, CSV import cells. PostgreSQL refuses
//! a NUL byte in `text` (which used to surface as an internal error), and other control characters
//! have no business in a one-line field (they hide text, break CSV and log lines). Every platform
//! function that takes such text passes it through [`clean_line`] (or [`clean_text`] for the few
//! multi-line fields) before anything is read or written, and answers a [`BadText`] — a validation
//! message a person can act on — instead.

use crate::i18n::{Lang, pick};

/// Text a person typed that cannot be used: it holds a NUL byte or another control character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: contains a control character (such as NUL); remove it and try again")]
pub struct BadText {
    /// The field the text was typed into.
    pub field: &'static str,
}

impl BadText {
    /// The reason alone (without the field), for errors that carry the field separately.
    pub const REASON: &'static str =
        "contains a control character (such as NUL); remove it and try again";

    /// The message in the reader's language (the field is named by the caller's form).
    pub fn message(&self, lang: Lang) -> String {
        pick(
            lang,
            "使用できない文字（制御文字）が含まれています。取り除いてからもう一度お試しください。",
            "The text contains a character that cannot be used (a control character). Please remove it and try again.",
            "文本中含有无法使用的字符（控制字符），请删除后重试。",
            "O texto contém um caractere que não pode ser usado (caractere de controle). Remova-o e tente de novo.",
        )
        .into()
    }
}

/// A one-line field: trimmed; refused when any control character is left (NUL, tab, line breaks,
/// DEL, the C1 controls).
pub fn clean_line(field: &'static str, s: &str) -> Result<String, BadText> {
    let t = s.trim();
    if t.chars().any(char::is_control) {
        return Err(BadText { field });
    }
    Ok(t.to_owned())
}

/// A multi-line field: trimmed, CR LF and CR become LF; line feeds and tabs are kept, every other
/// control character is refused.
pub fn clean_text(field: &'static str, s: &str) -> Result<String, BadText> {
    let t = s.trim().replace("\r\n", "\n").replace('\r', "\n");
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(BadText { field });
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_fields_refuse_every_control_character_and_are_trimmed() {
        assert_eq!(
            clean_line("name", "  市民ホール \u{3000}").unwrap(),
            "市民ホール"
        );
        for bad in [
            "a\0b", "a\u{1}", "a\nb", "a\tb", "a\rb", "a\u{7f}", "a\u{85}b",
        ] {
            assert_eq!(
                clean_line("name", bad),
                Err(BadText { field: "name" }),
                "{bad:?}"
            );
        }
        assert_eq!(clean_line("name", "\0").unwrap_err().field, "name");
    }

    #[test]
    fn multi_line_fields_keep_line_breaks_and_tabs_only() {
        assert_eq!(clean_text("notes", " a\r\nb\tc\rd ").unwrap(), "a\nb\tc\nd");
        assert!(clean_text("notes", "a\0b").is_err());
        assert!(clean_text("notes", "a\u{1b}[31m").is_err());
        assert!(
            BadText { field: "x" }
                .message(Lang::En)
                .contains("cannot be used")
        );
    }
}
