//! What can be exported ([`ExportKind`]: title, typed columns, one SQL query each) and in which
//! format ([`ExportFormat`]). Adding a kind is one enum variant and one arm of [`ExportKind::plan`].

use chrono::NaiveDate;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::exports::spreadsheet::{Column, ColumnKind};

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportKind {
    /// Live bookings of one venue on one local day (the day's intake list).
    BookedList { venue_id: Uuid, date: NaiveDate },
    /// Eligible residents without a live booking.
    UnbookedResidents,
    /// Every booking, live and cancelled.
    BookingLedger,
    /// Every vaccination recorded at intake, with the side effects noted at that visit.
    VaccinationRecords,
}

/// What a kind needs to be written: titles, typed columns and the query (binds: `$1` tenant id,
/// `$2` the kind's params as JSON). The query's columns are, in order, of the SQL types matching the
/// column kinds: text, bigint, date, timestamp (local time, without zone).
pub struct Plan {
    /// Sheet name and the start of the file name (Japanese).
    pub title: &'static str,
    /// ASCII file-name stem.
    pub slug: &'static str,
    pub columns: Vec<Column>,
    pub sql: &'static str,
}

pub(crate) const BOOKED_LIST_SQL: &str = "\
SELECT (s.starts_at AT TIME ZONE t.time_zone) AS starts, r.ticket_no, r.kana_name, r.birth_date,
       CASE r.sex WHEN 'female' THEN '女' WHEN 'male' THEN '男' WHEN 'other' THEN 'その他' ELSE '不明' END,
       b.dose::bigint, x.name, r.phone
  FROM bookings b
  JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id
  JOIN residents r ON r.tenant_id = b.tenant_id AND r.id = b.resident_id
  JOIN vaccines x ON x.tenant_id = b.tenant_id AND x.id = b.vaccine_id
  JOIN tenants t ON t.id = b.tenant_id
 WHERE b.tenant_id = $1 AND b.status = 'booked'
   AND s.venue_id = ($2->>'venue_id')::uuid
   AND (s.starts_at AT TIME ZONE t.time_zone)::date = ($2->>'date')::date
 ORDER BY s.starts_at, r.ticket_no";

pub(crate) const UNBOOKED_SQL: &str = "\
SELECT r.ticket_no, r.kana_name, r.birth_date,
       CASE r.sex WHEN 'female' THEN '女' WHEN 'male' THEN '男' WHEN 'other' THEN 'その他' ELSE '不明' END,
       r.phone, r.email, r.postal_code
  FROM residents r
 WHERE r.tenant_id = $1 AND $2::jsonb IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM bookings b
                    WHERE b.tenant_id = r.tenant_id AND b.resident_id = r.id AND b.status = 'booked')
 ORDER BY r.ticket_no";

pub(crate) const LEDGER_SQL: &str = "\
SELECT b.id::text, CASE b.status WHEN 'booked' THEN '予約中' WHEN 'cancelled' THEN '取消' ELSE b.status END,
       (b.created_at AT TIME ZONE t.time_zone), (s.starts_at AT TIME ZONE t.time_zone), v.name, x.name,
       b.dose::bigint, r.ticket_no, r.kana_name, r.birth_date, (b.updated_at AT TIME ZONE t.time_zone)
  FROM bookings b
  JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id
  JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id
  JOIN residents r ON r.tenant_id = b.tenant_id AND r.id = b.resident_id
  JOIN vaccines x ON x.tenant_id = b.tenant_id AND x.id = b.vaccine_id
  JOIN tenants t ON t.id = b.tenant_id
 WHERE b.tenant_id = $1 AND $2::jsonb IS NOT NULL
 ORDER BY b.created_at, b.id";

pub(crate) const VACCINATION_RECORDS_SQL: &str = "\
SELECT (c.vaccinated_at AT TIME ZONE t.time_zone), r.ticket_no, r.kana_name, r.birth_date,
       CASE r.sex WHEN 'female' THEN '女' WHEN 'male' THEN '男' WHEN 'other' THEN 'その他' ELSE '不明' END,
       c.dose::bigint, x.name, c.lot_number, c.dose_ml::text, c.vaccinator, v.name,
       coalesce((SELECT string_agg(
                   CASE n.kind WHEN 'injection_site' THEN '接種部位の反応' WHEN 'fever' THEN '発熱'
                        WHEN 'fatigue' THEN '倦怠感' WHEN 'headache' THEN '頭痛' WHEN 'allergic' THEN 'アレルギー反応'
                        WHEN 'anaphylaxis' THEN 'アナフィラキシー' WHEN 'vasovagal' THEN '血管迷走神経反射'
                        ELSE 'その他' END
                   || '（' || CASE n.severity WHEN 'mild' THEN '軽度' WHEN 'moderate' THEN '中等度' ELSE '重度' END || '）',
                   '、' ORDER BY n.onset_at)
                   FROM side_effect_notes n
                  WHERE n.tenant_id = c.tenant_id AND n.booking_id = c.booking_id), ''),
       c.recorded_by
  FROM vaccination_records c
  JOIN residents r ON r.tenant_id = c.tenant_id AND r.id = c.resident_id
  JOIN vaccines x ON x.tenant_id = c.tenant_id AND x.id = c.vaccine_id
  JOIN venues v ON v.tenant_id = c.tenant_id AND v.id = c.venue_id
  JOIN tenants t ON t.id = c.tenant_id
 WHERE c.tenant_id = $1 AND $2::jsonb IS NOT NULL
 ORDER BY c.vaccinated_at, c.id";

impl ExportKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::BookedList { .. } => "booked_list",
            Self::UnbookedResidents => "unbooked_residents",
            Self::BookingLedger => "booking_ledger",
            Self::VaccinationRecords => "vaccination_records",
        }
    }

    pub fn params(&self) -> Value {
        match self {
            Self::BookedList { venue_id, date } => json!({ "venue_id": venue_id, "date": date }),
            Self::UnbookedResidents | Self::BookingLedger | Self::VaccinationRecords => json!({}),
        }
    }

    /// The kind back from its stored name and params.
    pub fn from_stored(kind: &str, params: &Value) -> Option<Self> {
        match kind {
            "booked_list" => Some(Self::BookedList {
                venue_id: params.get("venue_id")?.as_str()?.parse().ok()?,
                date: params.get("date")?.as_str()?.parse().ok()?,
            }),
            "unbooked_residents" => Some(Self::UnbookedResidents),
            "booking_ledger" => Some(Self::BookingLedger),
            "vaccination_records" => Some(Self::VaccinationRecords),
            _ => None,
        }
    }

    pub fn plan(&self) -> Plan {
        use ColumnKind::{Date, DateTime, Integer, Text};
        let cols = |c: &[(&str, ColumnKind)]| -> Vec<Column> {
            c.iter().map(|(t, k)| Column::new(*t, *k)).collect()
        };
        match self {
            Self::BookedList { .. } => Plan {
                title: "予約者一覧",
                slug: "booked-list",
                columns: cols(&[
                    ("予約時刻", DateTime),
                    ("接種券番号", Text),
                    ("カナ氏名", Text),
                    ("生年月日", Date),
                    ("性別", Text),
                    ("回数", Integer),
                    ("ワクチン", Text),
                    ("電話番号", Text),
                ]),
                sql: BOOKED_LIST_SQL,
            },
            Self::UnbookedResidents => Plan {
                title: "未予約者一覧",
                slug: "unbooked-residents",
                columns: cols(&[
                    ("接種券番号", Text),
                    ("カナ氏名", Text),
                    ("生年月日", Date),
                    ("性別", Text),
                    ("電話番号", Text),
                    ("メール", Text),
                    ("郵便番号", Text),
                ]),
                sql: UNBOOKED_SQL,
            },
            Self::BookingLedger => Plan {
                title: "予約台帳",
                slug: "booking-ledger",
                columns: cols(&[
                    ("予約ID", Text),
                    ("状態", Text),
                    ("予約受付日時", DateTime),
                    ("接種日時", DateTime),
                    ("会場", Text),
                    ("ワクチン", Text),
                    ("回数", Integer),
                    ("接種券番号", Text),
                    ("カナ氏名", Text),
                    ("生年月日", Date),
                    ("更新日時", DateTime),
                ]),
                sql: LEDGER_SQL,
            },
            Self::VaccinationRecords => Plan {
                title: "接種記録",
                slug: "vaccination-records",
                columns: cols(&[
                    ("接種日時", DateTime),
                    ("接種券番号", Text),
                    ("カナ氏名", Text),
                    ("生年月日", Date),
                    ("性別", Text),
                    ("回数", Integer),
                    ("ワクチン", Text),
                    ("ロット番号", Text),
                    ("接種量(mL)", Text),
                    ("接種者", Text),
                    ("会場", Text),
                    ("副反応", Text),
                    ("記録者", Text),
                ]),
                sql: VACCINATION_RECORDS_SQL,
            },
        }
    }

    /// The download's file name (ASCII: every browser and mail filter keeps it).
    pub fn file_name(&self, format: ExportFormat) -> String {
        let stem = match self {
            Self::BookedList { date, .. } => format!("{}-{date}", self.plan().slug),
            _ => self.plan().slug.to_owned(),
        };
        format!("{stem}.{}", format.extension())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Xlsx,
    CsvUtf8,
    CsvShiftJis,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 3] = [Self::Xlsx, Self::CsvUtf8, Self::CsvShiftJis];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Xlsx => "xlsx",
            Self::CsvUtf8 => "csv_utf8",
            Self::CsvShiftJis => "csv_sjis",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
    pub fn extension(self) -> &'static str {
        match self {
            Self::Xlsx => "xlsx",
            _ => "csv",
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::CsvUtf8 => "text/csv; charset=utf-8",
            Self::CsvShiftJis => "text/csv; charset=shift_jis",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_storage() {
        let kinds = [
            ExportKind::BookedList {
                venue_id: Uuid::now_v7(),
                date: NaiveDate::from_ymd_opt(2026, 12, 1).expect("date"),
            },
            ExportKind::UnbookedResidents,
            ExportKind::BookingLedger,
        ];
        for k in kinds {
            assert_eq!(ExportKind::from_stored(k.as_str(), &k.params()), Some(k));
        }
        assert_eq!(ExportKind::from_stored("booked_list", &json!({})), None);
    }

    #[test]
    fn file_names_are_ascii() {
        let k = ExportKind::BookedList {
            venue_id: Uuid::nil(),
            date: NaiveDate::from_ymd_opt(2026, 12, 1).expect("date"),
        };
        assert_eq!(
            k.file_name(ExportFormat::Xlsx),
            "booked-list-2026-12-01.xlsx"
        );
        assert_eq!(
            ExportKind::UnbookedResidents.file_name(ExportFormat::CsvShiftJis),
            "unbooked-residents.csv"
        );
    }
}
