//! Which dose a booking is for, parsed strictly: `1`/`2`/`booster` (or `3`), anything else is an error.

use serde::{Deserialize, Serialize};

use crate::i18n::{Lang, pick};

/// Which dose a booking is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dose {
    First,
    Second,
    Booster,
}

impl Dose {
    pub fn number(self) -> i16 {
        match self {
            Dose::First => 1,
            Dose::Second => 2,
            Dose::Booster => 3,
        }
    }
    pub fn from_number(n: i16) -> Option<Dose> {
        match n {
            1 => Some(Dose::First),
            2 => Some(Dose::Second),
            3 => Some(Dose::Booster),
            _ => None,
        }
    }
    pub fn label(self, lang: Lang) -> &'static str {
        match self {
            Dose::First => pick(lang, "1回目", "1st dose", "第1剂", "1ª dose"),
            Dose::Second => pick(lang, "2回目", "2nd dose", "第2剂", "2ª dose"),
            Dose::Booster => pick(lang, "追加接種", "booster", "加强针", "reforço"),
        }
    }
}

/// A dose as a form sends it: exactly `1`, `2` or `3` (surrounding blanks aside). Anything else —
/// empty, `0`, `4`, `1st`, `１` — is [`BadDose`], never a default dose.
impl std::str::FromStr for Dose {
    type Err = BadDose;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim() {
            "1" => Ok(Dose::First),
            "2" => Ok(Dose::Second),
            "3" => Ok(Dose::Booster),
            _ => Err(BadDose(raw.chars().take(40).collect())),
        }
    }
}

/// A dose that is not one of 1, 2, 3: the request is refused (`VALIDATION`), nothing is booked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a dose: {0:?} (expected 1, 2 or 3)")]
pub struct BadDose(pub String);

impl BadDose {
    pub fn code(&self) -> &'static str {
        "VALIDATION"
    }
    pub fn message(&self, lang: Lang) -> String {
        pick(
            lang,
            "何回目の接種かを選んでください（1回目・2回目・追加接種）。",
            "Please choose which dose to book (1st dose, 2nd dose or booster).",
            "请选择要预约的剂次（第1剂、第2剂或加强针）。",
            "Escolha qual dose reservar (1ª dose, 2ª dose ou reforço).",
        )
        .into()
    }
}
