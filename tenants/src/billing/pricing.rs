//! The pricing rules, as a pure function of a month's contract periods and usage, so that every yen
//! on an invoice can be recomputed by hand. The rules (also in docs/billing.md):
//!
//! * Money is integer yen. Monthly fees (system, cloud, each add-on × quantity) are prorated by day
//!   for the days a contract period covers in the month: `floor(fee × days ÷ days_in_month)`; a whole
//!   month is the whole fee.
//! * Included quantities are prorated the same way (rounded down); usage beyond them is billed at the
//!   period's unit price. Usage belongs to the period whose dates contain its local (tenant time zone)
//!   date. `resident` is the peak count in the period, every other kind the sum.
//! * The set-up fee is billed once, in the month the tenant's first contract starts.
//! * Consumption tax is 10 % of the invoice subtotal, rounded down (切り捨て), once per invoice.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeteredKind {
    SmsSegment,
    Email,
    Booking,
    Resident,
    Export,
    /// A GraphQL request authenticated by an API key.
    ApiCall,
}

impl MeteredKind {
    pub const ALL: [MeteredKind; 6] = [
        Self::SmsSegment,
        Self::Email,
        Self::Booking,
        Self::Resident,
        Self::Export,
        Self::ApiCall,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SmsSegment => "sms_segment",
            Self::Email => "email",
            Self::Booking => "booking",
            Self::Resident => "resident",
            Self::Export => "export",
            Self::ApiCall => "api_call",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// How the invoice names the line (Japanese: the invoice is a Japanese business document).
    pub fn label(self) -> &'static str {
        match self {
            Self::SmsSegment => "SMS送信（通）",
            Self::Email => "メール送信",
            Self::Booking => "予約件数",
            Self::Resident => "管理対象者数（月間最大）",
            Self::Export => "データ出力",
            Self::ApiCall => "API呼び出し",
        }
    }

    /// Peak-in-month kinds are not summed.
    pub fn is_peak(self) -> bool {
        matches!(self, Self::Resident)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub included_quantity: i64,
    pub unit_price_yen: i64,
    pub hard_cap: bool,
}

/// A plan's terms after the tenant's overrides were applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub plan_name: String,
    pub setup_fee_yen: i64,
    pub system_fee_yen: i64,
    pub cloud_fee_yen: i64,
    pub prices: BTreeMap<MeteredKind, Price>,
    /// code → (name, monthly fee)
    pub addon_fees: BTreeMap<String, (String, i64)>,
}

/// One contract's share of a month: its terms, chosen add-ons, dates, and the usage in those dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub terms: Terms,
    /// add-on code → quantity (e.g. call-centre seats)
    pub addons: BTreeMap<String, i64>,
    pub starts_on: NaiveDate,
    /// exclusive
    pub ends_on: Option<NaiveDate>,
    pub usage: BTreeMap<MeteredKind, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub description: String,
    pub quantity: i64,
    pub unit_price_yen: i64,
    pub amount_yen: i64,
}

pub const TAX_PERCENT: i64 = 10;

pub fn days_in_month(month: NaiveDate) -> i64 {
    let first = month.with_day(1).unwrap_or(month);
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    (next - first).num_days()
}

/// Days of `month` that [starts_on, ends_on) covers.
pub fn covered_days(month: NaiveDate, starts_on: NaiveDate, ends_on: Option<NaiveDate>) -> i64 {
    let first = month.with_day(1).unwrap_or(month);
    let after = first + chrono::Duration::days(days_in_month(first));
    let from = starts_on.max(first);
    let until = ends_on.map_or(after, |e| e.min(after));
    (until - from).num_days().max(0)
}

pub fn prorate(amount: i64, days: i64, month_days: i64) -> i64 {
    if days >= month_days {
        amount
    } else {
        amount * days / month_days
    }
}

fn span(month: NaiveDate, p: &Period, days: i64, month_days: i64) -> String {
    if days >= month_days {
        return String::new();
    }
    let first = month.with_day(1).unwrap_or(month);
    let from = p.starts_on.max(first);
    let last = from + chrono::Duration::days(days - 1);
    format!(
        "（日割 {}/{}–{}/{} {}/{}日）",
        from.month(),
        from.day(),
        last.month(),
        last.day(),
        days,
        month_days
    )
}

/// The lines of one month's invoice. `setup_fee` is `Some(fee)` in the month the first contract starts.
pub fn invoice_lines(month: NaiveDate, periods: &[Period], setup_fee: Option<i64>) -> Vec<Line> {
    let month_days = days_in_month(month);
    let mut lines = Vec::new();
    if let Some(fee) = setup_fee.filter(|f| *f > 0) {
        lines.push(Line {
            description: "初期設定費".into(),
            quantity: 1,
            unit_price_yen: fee,
            amount_yen: fee,
        });
    }
    for p in periods {
        let days = covered_days(month, p.starts_on, p.ends_on);
        if days == 0 {
            continue;
        }
        let note = span(month, p, days, month_days);
        let plan = &p.terms.plan_name;
        let mut fixed = |label: String, fee: i64| {
            let amount = prorate(fee, days, month_days);
            if amount > 0 {
                lines.push(Line {
                    description: format!("{label}（{plan}）{note}"),
                    quantity: 1,
                    unit_price_yen: amount,
                    amount_yen: amount,
                });
            }
        };
        fixed("システム利用料".into(), p.terms.system_fee_yen);
        fixed("クラウド利用料".into(), p.terms.cloud_fee_yen);
        for (code, qty) in &p.addons {
            if let Some((name, fee)) = p.terms.addon_fees.get(code) {
                let label = if *qty > 1 {
                    format!("{name} ×{qty}")
                } else {
                    name.clone()
                };
                fixed(label, fee * qty);
            }
        }
        for kind in MeteredKind::ALL {
            let used = p.usage.get(&kind).copied().unwrap_or(0);
            let Some(price) = p.terms.prices.get(&kind) else {
                continue;
            };
            let included = prorate(price.included_quantity, days, month_days);
            let billable = (used - included).max(0);
            if billable > 0 && price.unit_price_yen > 0 {
                lines.push(Line {
                    description: format!(
                        "{}（{plan}）利用 {used} − 基本料金内 {included}{note}",
                        kind.label()
                    ),
                    quantity: billable,
                    unit_price_yen: price.unit_price_yen,
                    amount_yen: billable * price.unit_price_yen,
                });
            }
        }
    }
    lines
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub subtotal_yen: i64,
    pub tax_yen: i64,
    pub total_yen: i64,
}

/// Subtotal, 10 % consumption tax rounded down (toward zero, so a credit note mirrors its invoice),
/// and total.
pub fn totals(lines: &[Line]) -> Totals {
    let subtotal_yen: i64 = lines.iter().map(|l| l.amount_yen).sum();
    let tax_yen = subtotal_yen * TAX_PERCENT / 100;
    Totals {
        subtotal_yen,
        tax_yen,
        total_yen: subtotal_yen + tax_yen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    #[test]
    fn month_lengths_and_covered_days() {
        assert_eq!(days_in_month(d(2026, 2, 1)), 28);
        assert_eq!(days_in_month(d(2028, 2, 1)), 29);
        assert_eq!(days_in_month(d(2026, 11, 1)), 30);
        assert_eq!(covered_days(d(2026, 11, 1), d(2026, 10, 1), None), 30);
        assert_eq!(
            covered_days(d(2026, 11, 1), d(2026, 10, 1), Some(d(2026, 11, 16))),
            15
        );
        assert_eq!(covered_days(d(2026, 11, 1), d(2026, 11, 16), None), 15);
        assert_eq!(covered_days(d(2026, 11, 1), d(2026, 12, 1), None), 0);
    }

    #[test]
    fn tax_is_ten_percent_rounded_down() {
        let line = |amount| Line {
            description: String::new(),
            quantity: 1,
            unit_price_yen: amount,
            amount_yen: amount,
        };
        assert_eq!(
            totals(&[line(1_009)]),
            Totals {
                subtotal_yen: 1_009,
                tax_yen: 100,
                total_yen: 1_109
            }
        );
        assert_eq!(totals(&[line(-1_009)]).tax_yen, -100);
    }
}
