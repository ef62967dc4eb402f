//! Values that are checked once, at the edge, so the rest of the code never sees a raw string.

use std::fmt;
use std::str::FromStr;

/// Why a value offered for a tenant field was refused; the message is meant for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error(
        "slug {0:?} must be 2–40 characters of lowercase letters, digits and '-', starting with a letter"
    )]
    Slug(String),
    #[error("name must not be empty and at most 100 characters")]
    Name,
    #[error("local-government code {0:?} must be exactly 6 digits")]
    CodeShape(String),
    #[error("local-government code {code:?} has check digit {given}, expected {expected}")]
    CodeCheckDigit {
        code: String,
        given: u32,
        expected: u32,
    },
    #[error("time zone {0:?} is not an IANA time zone name such as Asia/Tokyo")]
    TimeZone(String),
    #[error("locale {0:?} is not supported; choose one of ja, en, zh-Hans, pt")]
    Locale(String),
    #[error("status {0:?} is not one of onboarding, active, suspended")]
    Status(String),
}

/// URL-safe tenant identifier used in paths such as `/t/{slug}/login`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let ok = (2..=40).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !raw.ends_with('-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::Slug(raw.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The municipality's display name, e.g. "横浜市".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.chars().count() > 100 {
            return Err(DomainError::Name);
        }
        Ok(Self(trimmed.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 全国地方公共団体コード: five digits (prefecture + municipality) and a modulus-11 check digit
/// (weights 6,5,4,3,2; check = last digit of 11 − sum mod 11), as JIS X 0402 defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalGovernmentCode(String);

impl LocalGovernmentCode {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let raw = raw.trim();
        if raw.len() != 6 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::CodeShape(raw.to_owned()));
        }
        let digits: Vec<u32> = raw.bytes().map(|b| u32::from(b - b'0')).collect();
        let expected = Self::check_digit(&digits[..5]);
        if digits[5] != expected {
            return Err(DomainError::CodeCheckDigit {
                code: raw.to_owned(),
                given: digits[5],
                expected,
            });
        }
        Ok(Self(raw.to_owned()))
    }

    fn check_digit(first_five: &[u32]) -> u32 {
        let sum: u32 = first_five
            .iter()
            .zip([6, 5, 4, 3, 2])
            .map(|(d, w)| d * w)
            .sum();
        (11 - sum % 11) % 10
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone; week and day boundaries of a tenant follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub chrono_tz::Tz);

impl TimeZone {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        chrono_tz::Tz::from_str(raw.trim())
            .map(Self)
            .map_err(|_| DomainError::TimeZone(raw.to_owned()))
    }
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        Self(chrono_tz::Asia::Tokyo)
    }
}

/// The locales the resident and admin sites are translated into.
pub const SUPPORTED_LOCALES: [&str; 4] = ["ja", "en", "zh-Hans", "pt"];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Locale(&'static str);

impl Locale {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        SUPPORTED_LOCALES
            .iter()
            .find(|l| l.eq_ignore_ascii_case(raw.trim()))
            .map(|l| Self(l))
            .ok_or_else(|| DomainError::Locale(raw.to_owned()))
    }
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl Default for Locale {
    fn default() -> Self {
        Self("ja")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantStatus {
    Onboarding,
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Onboarding => "onboarding",
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

impl FromStr for TenantStatus {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "onboarding" => Ok(Self::Onboarding),
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            other => Err(DomainError::Status(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_municipal_codes_pass_their_check_digit() {
        for code in ["010006", "011002", "130001", "141003", "271403", "131016"] {
            assert!(LocalGovernmentCode::parse(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn a_wrong_check_digit_names_the_expected_one() {
        let err = LocalGovernmentCode::parse("141004").unwrap_err();
        assert_eq!(
            err,
            DomainError::CodeCheckDigit {
                code: "141004".into(),
                given: 4,
                expected: 3
            }
        );
        assert!(matches!(
            LocalGovernmentCode::parse("14100"),
            Err(DomainError::CodeShape(_))
        ));
        assert!(matches!(
            LocalGovernmentCode::parse("14a003"),
            Err(DomainError::CodeShape(_))
        ));
    }

    #[test]
    fn remainders_zero_and_one_give_check_digits_one_and_zero() {
        // 6*0+5*0+4*0+3*0+2*0 = 0 → 11 → 1 ; 5*… sum 12 → r 1 → 10 → 0
        assert_eq!(LocalGovernmentCode::check_digit(&[0, 0, 0, 0, 0]), 1);
        assert_eq!(LocalGovernmentCode::check_digit(&[2, 0, 0, 0, 0]), 0);
    }

    #[test]
    fn slugs_are_lowercase_and_url_safe() {
        assert!(Slug::parse("demo").is_ok());
        assert!(Slug::parse("yokohama-shi").is_ok());
        for bad in ["", "a", "Demo", "1city", "city_x", "city-", "ci ty"] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn locales_and_time_zones_are_validated() {
        assert_eq!(Locale::parse("zh-hans").unwrap().as_str(), "zh-Hans");
        assert!(Locale::parse("fr").is_err());
        assert_eq!(TimeZone::parse("Asia/Tokyo").unwrap().name(), "Asia/Tokyo");
        assert!(TimeZone::parse("Mars/Olympus").is_err());
    }
}
