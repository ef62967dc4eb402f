//! Japanese and English for the admin UI. The staff UI has a small, fixed vocabulary, so it is a
//! table here rather than Fluent files; the resident site (many languages, plurals) uses Fluent.
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
        if let Some(l) = crate::cookie(headers, "lang") {
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

    pub fn t(self, key: &str) -> &'static str {
        let (ja, en) = match key {
            "admin" => ("管理", "admin"),
            "logout" => ("ログアウト", "Log out"),
            "login" => ("ログイン", "Log in"),
            "email" => ("メールアドレス", "E-mail address"),
            "password" => ("パスワード", "Password"),
            "new_password" => (
                "新しいパスワード（10文字以上）",
                "New password (at least 10 characters)",
            ),
            "set_password" => ("パスワードを設定", "Set password"),
            "forgot" => ("パスワードを忘れた場合", "Forgot your password?"),
            "reset_sent" => (
                "アカウントがあれば、パスワード再設定のリンクを発行しました。",
                "If the account exists, a password reset link has been issued.",
            ),
            "request_reset" => ("再設定リンクを発行", "Issue a reset link"),
            "error" => ("エラー", "Error"),
            "not_found" => ("ページが見つかりません。", "Page not found."),
            "forbidden" => (
                "この操作は許可されていません。",
                "Your role does not allow this.",
            ),
            "csrf" => (
                "フォームの有効期限が切れました。ページを再読み込みしてやり直してください。",
                "This form has expired; reload the page and try again.",
            ),
            "back_home" => ("管理トップへ", "Back to the start page"),
            "dashboard" => ("管理トップ", "Start page"),
            "municipalities" => ("自治体", "Municipalities"),
            "onboard" => ("自治体を登録", "Onboard a municipality"),
            "name" => ("名称", "Name"),
            "slug" => ("スラッグ（URL用）", "Slug (for URLs)"),
            "code" => ("地方公共団体コード", "Local-government code"),
            "time_zone" => ("タイムゾーン", "Time zone"),
            "locales" => ("言語（カンマ区切り）", "Languages (comma-separated)"),
            "status" => ("状態", "Status"),
            "invite_admin" => ("最初の自治体管理者を招待", "Invite the first city admin"),
            "invite" => ("招待", "Invite"),
            "invitation_link" => (
                "招待リンク（本人に送ってください）",
                "Invitation link (send it to the person)",
            ),
            "suspend" => ("停止", "Suspend"),
            "activate" => ("有効化", "Activate"),
            "staff" => ("職員と権限", "Staff and roles"),
            "role" => ("権限", "Role"),
            "venue" => ("会場", "Venue"),
            "venues" => ("会場", "Venues"),
            "vaccines" => ("ワクチン", "Vaccines"),
            "maker" => ("メーカー", "Maker"),
            "doses" => ("接種回数", "Doses"),
            "min_interval_days" => ("接種間隔（日）", "Minimum days between doses"),
            "booster_interval_months" => ("追加接種の間隔（月）", "Booster interval (months)"),
            "days_until_effective" => ("効果が出るまで（日）", "Days until effective"),
            "validity_days" => ("有効期間（日）", "Validity (days)"),
            "create" => ("作成", "Create"),
            "address" => ("住所", "Address"),
            "kind" => ("種別", "Kind"),
            "mass" => ("集団接種会場", "Mass venue"),
            "hospital" => ("医療機関", "Hospital"),
            "vaccine" => ("ワクチン", "Vaccine"),
            "booking_opens_at" => (
                "予約受付開始（空欄＝すぐ）",
                "Booking opens at (empty = now)",
            ),
            "booking_deadline_hours" => (
                "予約締切（枠の何時間前）",
                "Booking deadline (hours before the slot)",
            ),
            "cancel_cutoff_days" => (
                "変更・取消の締切（何日前）",
                "Change/cancel cut-off (days before)",
            ),
            "schedules" => ("接種枠のスケジュール", "Capacity schedules"),
            "weekdays" => ("曜日", "Weekdays"),
            "start_time" => ("開始時刻", "Start time"),
            "end_time" => ("終了時刻", "End time"),
            "slot_minutes" => ("1枠の長さ（分）", "Slot length (minutes)"),
            "capacity" => ("定員", "Capacity"),
            "valid_from" => ("開始日", "From"),
            "valid_until" => ("終了日", "Until"),
            "closed_dates" => (
                "休業日（YYYY-MM-DD、カンマ区切り）",
                "Closed dates (YYYY-MM-DD, comma-separated)",
            ),
            "slots" => ("接種枠", "Slots"),
            "slots_created" => ("件の接種枠を作成しました", "slots created"),
            "booked" => ("予約数", "Booked"),
            "save" => ("保存", "Save"),
            "residents" => ("対象者", "Residents"),
            "import" => ("対象者の取り込み（CSV）", "Import eligible residents (CSV)"),
            "file" => (
                "CSVファイル（UTF-8 または Shift_JIS）",
                "CSV file (UTF-8 or Shift_JIS)",
            ),
            "import_valid_rows" => ("正しい行だけを取り込む", "Import the valid rows"),
            "do_import" => ("取り込む", "Import"),
            "imported" => ("取り込みました", "Imported"),
            "nothing_imported" => (
                "誤りがあるため、何も取り込んでいません。",
                "Some rows are invalid; nothing was imported.",
            ),
            "line" => ("行", "Line"),
            "column" => ("列", "Column"),
            "reason" => ("理由", "Reason"),
            "lookup" => ("接種券番号で検索", "Look up by ticket number"),
            "ticket_no" => ("接種券番号", "Ticket number"),
            "search" => ("検索", "Search"),
            "no_resident" => (
                "該当する対象者はいません。",
                "No resident with this ticket number.",
            ),
            "audit" => ("監査ログ", "Audit log"),
            "when" => ("日時", "When"),
            "who" => ("誰が", "Who"),
            "what" => ("操作", "What"),
            "object" => ("対象", "Object"),
            "from" => ("接続元", "From"),
            "your_cities" => ("担当の自治体", "Your municipalities"),
            "none" => ("なし", "none"),
            "remove" => ("削除", "Remove"),
            "invited_existing" => (
                "権限を追加しました（既存のアカウント：本人のログイン後に有効）。",
                "Role added to an existing account; it applies when the person logs in.",
            ),
            "api_keys" => ("APIキー", "API keys"),
            _ => ("?", "?"),
        };
        match self {
            Self::Ja => ja,
            Self::En => en,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn every_label_has_both_languages() {
        for key in [
            "login",
            "csrf",
            "not_found",
            "forbidden",
            "import",
            "audit",
            "api_keys",
        ] {
            assert_ne!(Lang::Ja.t(key), "?", "{key}");
            assert_ne!(Lang::Ja.t(key), Lang::En.t(key), "{key}");
        }
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
