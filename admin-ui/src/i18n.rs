//! Japanese and English for the admin UI: a typed table, like the resident site's
//! (`resident-ui/src/text.rs` over `platform::i18n`). Every label is a variant of [`K`] and
//! [`K::texts`] matches every variant without a wildcard, so a label without both translations does
//! not compile (there is no run-time fallback).
//! The language comes from the `lang` cookie, else Accept-Language (q-values), else Japanese.

use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Self::Ja => "ja",
            Self::En => "en",
        }
    }

    pub fn from_headers(headers: &HeaderMap) -> Self {
        if let Some(l) = crate::state::cookie(headers, "lang") {
            return if l == "en" { Self::En } else { Self::Ja };
        }
        let Some(accept) = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        else {
            return Self::Ja;
        };
        let mut best = (Self::Ja, -1.0f32);
        for part in accept.split(',') {
            let mut it = part.trim().split(';');
            let tag = it.next().unwrap_or("").trim().to_lowercase();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag.starts_with("ja") {
                Some(Self::Ja)
            } else if tag.starts_with("en") {
                Some(Self::En)
            } else {
                None
            };
            if let Some(lang) = lang
                && q > best.1
            {
                best = (lang, q);
            }
        }
        best.0
    }

    /// The text of `key` in this language.
    pub fn t(self, key: K) -> &'static str {
        let (ja, en) = key.texts();
        match self {
            Self::Ja => ja,
            Self::En => en,
        }
    }
}

/// Every label the admin pages take from this table (pages with longer, one-off texts write both
/// languages in place, which cannot miss one either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K {
    Admin,
    Logout,
    Login,
    Email,
    Password,
    NewPassword,
    SetPassword,
    Forgot,
    Error,
    NotFound,
    Forbidden,
    Csrf,
    BackHome,
    Dashboard,
    Municipalities,
    Onboard,
    Name,
    Slug,
    Code,
    TimeZone,
    Locales,
    Status,
    InviteAdmin,
    Invite,
    InvitationLink,
    Suspend,
    Activate,
    Staff,
    Role,
    Venue,
    Venues,
    Vaccines,
    Maker,
    Doses,
    MinIntervalDays,
    BoosterIntervalMonths,
    DaysUntilEffective,
    ValidityDays,
    Create,
    Address,
    Kind,
    Mass,
    Hospital,
    Vaccine,
    BookingOpensAt,
    BookingDeadlineHours,
    CancelCutoffDays,
    Schedules,
    Weekdays,
    StartTime,
    EndTime,
    SlotMinutes,
    Capacity,
    ValidFrom,
    ValidUntil,
    ClosedDates,
    Slots,
    SlotsCreated,
    Booked,
    Save,
    Residents,
    Import,
    File,
    ImportValidRows,
    DoImport,
    Imported,
    NothingImported,
    Line,
    Column,
    Reason,
    Lookup,
    TicketNo,
    Search,
    NoResident,
    Audit,
    When,
    Who,
    What,
    Object,
    From,
    YourCities,
    None,
    Remove,
    InvitedExisting,
    ApiKeys,
    BookingRules,
    Statistics,
    UsageAndInvoices,
    CallCenter,
    Exports,
    Overview,
    Intake,
    Notifications,
    Webhooks,
}

impl K {
    /// (Japanese, English). The match has no wildcard: a key without both texts does not compile.
    pub fn texts(self) -> (&'static str, &'static str) {
        match self {
            K::Admin => ("管理", "admin"),
            K::Logout => ("ログアウト", "Log out"),
            K::Login => ("ログイン", "Log in"),
            K::Email => ("メールアドレス", "E-mail address"),
            K::Password => ("パスワード", "Password"),
            K::NewPassword => (
                "新しいパスワード（10文字以上）",
                "New password (at least 10 characters)",
            ),
            K::SetPassword => ("パスワードを設定", "Set password"),
            K::Forgot => ("パスワードを忘れた場合", "Forgot your password?"),
            K::Error => ("エラー", "Error"),
            K::NotFound => ("ページが見つかりません。", "Page not found."),
            K::Forbidden => (
                "この操作は許可されていません。",
                "Your role does not allow this.",
            ),
            K::Csrf => (
                "フォームの有効期限が切れました。ページを再読み込みしてやり直してください。",
                "This form has expired; reload the page and try again.",
            ),
            K::BackHome => ("管理トップへ", "Back to the start page"),
            K::Dashboard => ("管理トップ", "Start page"),
            K::Municipalities => ("自治体", "Municipalities"),
            K::Onboard => ("自治体を登録", "Onboard a municipality"),
            K::Name => ("名称", "Name"),
            K::Slug => ("スラッグ（URL用）", "Slug (for URLs)"),
            K::Code => ("地方公共団体コード", "Local-government code"),
            K::TimeZone => ("タイムゾーン", "Time zone"),
            K::Locales => ("言語（カンマ区切り）", "Languages (comma-separated)"),
            K::Status => ("状態", "Status"),
            K::InviteAdmin => ("最初の自治体管理者を招待", "Invite the first city admin"),
            K::Invite => ("招待", "Invite"),
            K::InvitationLink => (
                "招待リンク（本人に送ってください）",
                "Invitation link (send it to the person)",
            ),
            K::Suspend => ("停止", "Suspend"),
            K::Activate => ("有効化", "Activate"),
            K::Staff => ("職員と権限", "Staff and roles"),
            K::Role => ("権限", "Role"),
            K::Venue => ("会場", "Venue"),
            K::Venues => ("会場", "Venues"),
            K::Vaccines => ("ワクチン", "Vaccines"),
            K::Maker => ("メーカー", "Maker"),
            K::Doses => ("接種回数", "Doses"),
            K::MinIntervalDays => ("接種間隔（日）", "Minimum days between doses"),
            K::BoosterIntervalMonths => ("追加接種の間隔（月）", "Booster interval (months)"),
            K::DaysUntilEffective => ("効果が出るまで（日）", "Days until effective"),
            K::ValidityDays => ("有効期間（日）", "Validity (days)"),
            K::Create => ("作成", "Create"),
            K::Address => ("住所", "Address"),
            K::Kind => ("種別", "Kind"),
            K::Mass => ("集団接種会場", "Mass venue"),
            K::Hospital => ("医療機関", "Hospital"),
            K::Vaccine => ("ワクチン", "Vaccine"),
            K::BookingOpensAt => (
                "予約受付開始（空欄＝すぐ）",
                "Booking opens at (empty = now)",
            ),
            K::BookingDeadlineHours => (
                "予約締切（枠の何時間前）",
                "Booking deadline (hours before the slot)",
            ),
            K::CancelCutoffDays => (
                "変更・取消の締切（何日前）",
                "Change/cancel cut-off (days before)",
            ),
            K::Schedules => ("接種枠のスケジュール", "Capacity schedules"),
            K::Weekdays => ("曜日", "Weekdays"),
            K::StartTime => ("開始時刻", "Start time"),
            K::EndTime => ("終了時刻", "End time"),
            K::SlotMinutes => ("1枠の長さ（分）", "Slot length (minutes)"),
            K::Capacity => ("定員", "Capacity"),
            K::ValidFrom => ("開始日", "From"),
            K::ValidUntil => ("終了日", "Until"),
            K::ClosedDates => (
                "休業日（YYYY-MM-DD、カンマ区切り）",
                "Closed dates (YYYY-MM-DD, comma-separated)",
            ),
            K::Slots => ("接種枠", "Slots"),
            K::SlotsCreated => ("件の接種枠を作成しました", "slots created"),
            K::Booked => ("予約数", "Booked"),
            K::Save => ("保存", "Save"),
            K::Residents => ("対象者", "Residents"),
            K::Import => ("対象者の取り込み（CSV）", "Import eligible residents (CSV)"),
            K::File => (
                "CSVファイル（UTF-8 または Shift_JIS）",
                "CSV file (UTF-8 or Shift_JIS)",
            ),
            K::ImportValidRows => ("正しい行だけを取り込む", "Import the valid rows"),
            K::DoImport => ("取り込む", "Import"),
            K::Imported => ("取り込みました", "Imported"),
            K::NothingImported => (
                "誤りがあるため、何も取り込んでいません。",
                "Some rows are invalid; nothing was imported.",
            ),
            K::Line => ("行", "Line"),
            K::Column => ("列", "Column"),
            K::Reason => ("理由", "Reason"),
            K::Lookup => ("接種券番号で検索", "Look up by ticket number"),
            K::TicketNo => ("接種券番号", "Ticket number"),
            K::Search => ("検索", "Search"),
            K::NoResident => (
                "該当する対象者はいません。",
                "No resident with this ticket number.",
            ),
            K::Audit => ("監査ログ", "Audit log"),
            K::When => ("日時", "When"),
            K::Who => ("誰が", "Who"),
            K::What => ("操作", "What"),
            K::Object => ("対象", "Object"),
            K::From => ("接続元", "From"),
            K::YourCities => ("担当の自治体", "Your municipalities"),
            K::None => ("なし", "none"),
            K::Remove => ("削除", "Remove"),
            K::InvitedExisting => (
                "権限を追加しました（既存のアカウント：本人のログイン後に有効）。",
                "Role added to an existing account; it applies when the person logs in.",
            ),
            K::ApiKeys => ("APIキー", "API keys"),
            K::BookingRules => ("予約ルール", "Booking rules"),
            K::Statistics => ("統計", "Statistics"),
            K::UsageAndInvoices => ("利用状況と請求", "Usage and invoices"),
            K::CallCenter => ("コールセンター", "Call centre"),
            K::Exports => ("エクスポート", "Exports"),
            K::Overview => ("概況", "Overview"),
            K::Intake => ("受付", "Intake"),
            K::Notifications => ("お知らせ", "Notifications"),
            K::Webhooks => ("Webhook（外部連携）", "Webhooks"),
        }
    }
}

/// The label of a form field a platform error names (`SetupError::Invalid { field, .. }`); a field
/// this table does not know is shown by its name.
pub fn field_label(lang: Lang, field: &str) -> &str {
    let key = match field {
        "name" => K::Name,
        "maker" => K::Maker,
        "doses" => K::Doses,
        "min_interval_days" => K::MinIntervalDays,
        "booster_interval_months" => K::BoosterIntervalMonths,
        "days_until_effective" => K::DaysUntilEffective,
        "validity_days" => K::ValidityDays,
        "kind" => K::Kind,
        "vaccine_id" => K::Vaccine,
        "booking_opens_at" => K::BookingOpensAt,
        "booking_deadline_hours" => K::BookingDeadlineHours,
        "cancel_cutoff_days" => K::CancelCutoffDays,
        "weekdays" => K::Weekdays,
        "start_time" => K::StartTime,
        "end_time" => K::EndTime,
        "slot_minutes" => K::SlotMinutes,
        "capacity" => K::Capacity,
        "valid_from" => K::ValidFrom,
        "valid_until" => K::ValidUntil,
        "closed_dates" => K::ClosedDates,
        "ticket_no" => K::TicketNo,
        other => return other,
    };
    lang.t(key)
}

/// A venue's kind as stored (`mass`, `hospital`) in words.
pub fn venue_kind(lang: Lang, kind: &str) -> &str {
    match kind {
        "mass" => lang.t(K::Mass),
        "hospital" => lang.t(K::Hospital),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn labels_differ_by_language() {
        for key in [
            K::Login,
            K::Csrf,
            K::NotFound,
            K::Forbidden,
            K::Import,
            K::Audit,
            K::ApiKeys,
        ] {
            assert!(!Lang::Ja.t(key).is_empty(), "{key:?}");
            assert_ne!(Lang::Ja.t(key), Lang::En.t(key), "{key:?}");
        }
    }

    #[test]
    fn platform_field_names_have_labels() {
        assert_eq!(field_label(Lang::En, "vaccine_id"), "Vaccine");
        assert_eq!(field_label(Lang::Ja, "capacity"), "定員");
        assert_eq!(field_label(Lang::En, "unheard_of"), "unheard_of");
        assert_eq!(venue_kind(Lang::En, "hospital"), "Hospital");
    }

    #[test]
    fn accept_language_q_values_pick_the_language() {
        let mut h = HeaderMap::new();
        h.insert(
            "accept-language",
            HeaderValue::from_static("fr, en;q=0.8, ja;q=0.5"),
        );
        assert_eq!(Lang::from_headers(&h), Lang::En);
        h.insert(
            "accept-language",
            HeaderValue::from_static("ja-JP, en;q=0.9"),
        );
        assert_eq!(Lang::from_headers(&h), Lang::Ja);
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::Ja);
    }
}
