//! The four languages residents read (ja, en, zh-Hans, pt) and the domain's messages in each. Kept
//! as a typed table: a missing translation is a compile error, not a blank on a page.

/// A language of the resident site and of the API's resident-facing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    #[default]
    Ja,
    En,
    ZhHans,
    Pt,
}

impl Lang {
    pub const ALL: [Lang; 4] = [Lang::Ja, Lang::En, Lang::ZhHans, Lang::Pt];

    /// The BCP 47 tag: ja, en, zh-Hans, pt.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
            Lang::ZhHans => "zh-Hans",
            Lang::Pt => "pt",
        }
    }

    /// The language's own name, for the language switch.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::Ja => "日本語",
            Lang::En => "English",
            Lang::ZhHans => "简体中文",
            Lang::Pt => "Português",
        }
    }

    /// A tag or a tag's prefix match (`en-US` → en, `zh-CN`/`zh-Hans-CN`/`zh` → zh-Hans, `pt-BR` → pt).
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let lower = tag.trim().to_ascii_lowercase();
        let primary = lower.split(['-', '_']).next().unwrap_or("");
        match primary {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            "pt" => Some(Lang::Pt),
            // explicit Traditional Chinese (Hant, Taiwan, Hong Kong) is not offered
            "zh" if !lower.contains("hant") && !lower.contains("-tw") && !lower.contains("-hk") => {
                Some(Lang::ZhHans)
            }
            _ => None,
        }
    }

    /// The best language for an `Accept-Language` header (q-values honoured; q=0 means "not this").
    pub fn negotiate(accept_language: &str) -> Option<Lang> {
        let mut ranked: Vec<(f32, usize, Lang)> = Vec::new();
        for (i, part) in accept_language.split(',').enumerate() {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim();
            let q = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            if q <= 0.0 {
                continue;
            }
            if let Some(lang) = Lang::from_tag(tag) {
                ranked.push((q, i, lang));
            }
        }
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked.first().map(|r| r.2)
    }
}

/// Picks one of four translations.
pub fn pick(
    lang: Lang,
    ja: &'static str,
    en: &'static str,
    zh: &'static str,
    pt: &'static str,
) -> &'static str {
    match lang {
        Lang::Ja => ja,
        Lang::En => en,
        Lang::ZhHans => zh,
        Lang::Pt => pt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_follows_q_values_and_prefixes() {
        assert_eq!(Lang::negotiate("fr, en;q=0.8, ja;q=0.9"), Some(Lang::Ja));
        assert_eq!(Lang::negotiate("pt-BR,pt;q=0.9"), Some(Lang::Pt));
        assert_eq!(Lang::negotiate("zh-CN,zh;q=0.9"), Some(Lang::ZhHans));
        assert_eq!(Lang::negotiate("en-US;q=0, ja;q=0.1"), Some(Lang::Ja));
        assert_eq!(Lang::negotiate("de, fr"), None);
    }
}
