//! Closed sets that more than one area of the schema uses, as GraphQL enums (issue 17), mapped
//! from the platform's values here: the platform keeps its own representation.
//!
//! Enum values may be added later without notice (docs/api.md "Changes and deprecation"): clients
//! must handle a value they do not know.

use async_graphql::Enum;

/// A resident's sex as the eligible-resident register records it.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Another sex.
    Other,
    /// Not recorded.
    Unknown,
}

impl Sex {
    /// From the platform's value (`female`, `male`, `other`, `unknown`; the database allows no
    /// other, anything else reads as `UNKNOWN`).
    pub fn from_platform(s: &str) -> Self {
        match s {
            "female" => Self::Female,
            "male" => Self::Male,
            "other" => Self::Other,
            _ => Self::Unknown,
        }
    }
}

/// What kind of venue it is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum VenueKind {
    /// A mass vaccination site run by the city.
    Mass,
    /// A hospital or clinic.
    Hospital,
}

impl VenueKind {
    /// From the platform's value (`mass` or `hospital`; the database allows no other).
    pub fn from_platform(s: &str) -> Self {
        match s {
            "hospital" => Self::Hospital,
            _ => Self::Mass,
        }
    }

    /// The platform's value.
    pub fn as_platform(self) -> &'static str {
        match self {
            Self::Mass => "mass",
            Self::Hospital => "hospital",
        }
    }
}

/// A day of the week (ISO 8601: weeks start on Monday).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum Weekday {
    /// Monday (ISO day 1).
    Monday,
    /// Tuesday (ISO day 2).
    Tuesday,
    /// Wednesday (ISO day 3).
    Wednesday,
    /// Thursday (ISO day 4).
    Thursday,
    /// Friday (ISO day 5).
    Friday,
    /// Saturday (ISO day 6).
    Saturday,
    /// Sunday (ISO day 7).
    Sunday,
}

impl Weekday {
    const ALL: [Weekday; 7] = [
        Self::Monday,
        Self::Tuesday,
        Self::Wednesday,
        Self::Thursday,
        Self::Friday,
        Self::Saturday,
        Self::Sunday,
    ];

    /// The ISO day number the platform uses (1 = Monday … 7 = Sunday).
    pub fn iso(self) -> i32 {
        Self::ALL.iter().position(|d| *d == self).unwrap_or(0) as i32 + 1
    }

    /// From an ISO day number (`None` outside 1–7).
    pub fn from_iso(n: i32) -> Option<Self> {
        usize::try_from(n - 1)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_are_iso_numbers() {
        assert_eq!(Weekday::Monday.iso(), 1);
        assert_eq!(Weekday::Sunday.iso(), 7);
        for n in 1..=7 {
            assert_eq!(Weekday::from_iso(n).unwrap().iso(), n);
        }
        assert_eq!(Weekday::from_iso(0), None);
        assert_eq!(Weekday::from_iso(8), None);
    }

    #[test]
    fn platform_values_map_both_ways() {
        for k in [VenueKind::Mass, VenueKind::Hospital] {
            assert_eq!(VenueKind::from_platform(k.as_platform()), k);
        }
        assert_eq!(Sex::from_platform("female"), Sex::Female);
        assert_eq!(Sex::from_platform("unknown"), Sex::Unknown);
    }
}
