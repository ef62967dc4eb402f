//! Why a booking, change or cancel was refused, with the message a resident reads in their language.

use chrono::NaiveDate;

use super::dose::Dose;
use crate::i18n::{Lang, pick};

/// Why a booking, change or cancel was refused. Each has a message a resident can act on.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error("no such slot or booking")]
    NotFound,
    #[error("the slot is full")]
    Full,
    #[error("the booking deadline has passed")]
    DeadlinePassed,
    #[error("booking has not opened yet")]
    NotOpenYet,
    #[error("the change/cancel cut-off has passed")]
    CutoffPassed,
    #[error("already booked for this dose")]
    AlreadyBooked { dose: Dose },
    #[error("too early for this dose; earliest {earliest}")]
    TooEarly { earliest: NaiveDate },
    #[error("the earlier dose must be booked first")]
    NeedsEarlierDose,
    #[error("this venue uses another vaccine than the earlier dose")]
    OtherVaccine,
    #[error("group too large (max {max} others)")]
    GroupTooLarge { max: i32 },
    #[error("booking dose 2 together with dose 1 is not offered")]
    PairingNotOffered,
    #[error("idempotency key reused by someone else")]
    KeyReused,
    /// The idempotency key is not 8–200 characters of one line (issue 15, finding 11).
    #[error("the idempotency key must be 8 to 200 characters without control characters")]
    BadKey,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl BookingError {
    /// The `outcome` label of the booking counter ([`super::record_decision`]).
    pub fn outcome(&self) -> &'static str {
        match self {
            BookingError::NotFound => "not_found",
            BookingError::Full => "full",
            BookingError::DeadlinePassed => "deadline",
            BookingError::NotOpenYet => "not_open",
            BookingError::CutoffPassed => "cutoff",
            BookingError::AlreadyBooked { .. } => "already_booked",
            BookingError::TooEarly { .. } => "too_early",
            BookingError::NeedsEarlierDose => "needs_earlier_dose",
            BookingError::OtherVaccine => "other_vaccine",
            BookingError::GroupTooLarge { .. } => "group_too_large",
            BookingError::PairingNotOffered => "pairing_not_offered",
            BookingError::KeyReused => "key_reused",
            BookingError::BadKey => "bad_key",
            BookingError::Database(_) => "error",
        }
    }

    /// `NOT_FOUND`, `CONFLICT` (the state of the world said no) or `VALIDATION` (the request did).
    pub fn code(&self) -> &'static str {
        match self {
            BookingError::NotFound => "NOT_FOUND",
            BookingError::Full
            | BookingError::AlreadyBooked { .. }
            | BookingError::KeyReused
            | BookingError::DeadlinePassed
            | BookingError::CutoffPassed => "CONFLICT",
            BookingError::Database(_) => "INTERNAL",
            _ => "VALIDATION",
        }
    }

    /// A message in the resident's language.
    pub fn message(&self, lang: Lang) -> String {
        match self {
            BookingError::NotFound => pick(
                lang,
                "予約または枠が見つかりません。",
                "That booking or time slot was not found.",
                "找不到该预约或时段。",
                "Reserva ou horário não encontrado.",
            )
            .into(),
            BookingError::Full => pick(
                lang,
                "この時間は満員です。別の時間を選んでください。",
                "This time is full. Please choose another time.",
                "该时段已满，请选择其他时间。",
                "Este horário está lotado. Escolha outro horário.",
            )
            .into(),
            BookingError::DeadlinePassed => pick(
                lang,
                "この時間の予約受付は終了しました。",
                "Booking for this time has closed.",
                "该时段的预约已截止。",
                "As reservas para este horário foram encerradas.",
            )
            .into(),
            BookingError::NotOpenYet => pick(
                lang,
                "この会場の予約受付はまだ始まっていません。",
                "Booking for this venue has not opened yet.",
                "该接种点尚未开放预约。",
                "As reservas para este local ainda não abriram.",
            )
            .into(),
            BookingError::CutoffPassed => pick(
                lang,
                "変更・キャンセルの受付期限を過ぎています。会場に電話してください。",
                "It is too late to change or cancel online. Please call the venue.",
                "已过更改或取消的期限，请致电接种点。",
                "Já passou o prazo para alterar ou cancelar. Ligue para o local.",
            )
            .into(),
            BookingError::AlreadyBooked { dose } => match lang {
                Lang::Ja => format!("{}はすでに予約済みです。", dose.label(lang)),
                Lang::En => format!("You already have a booking for the {}.", dose.label(lang)),
                Lang::ZhHans => format!("您已预约{}。", dose.label(lang)),
                Lang::Pt => format!("Você já tem uma reserva para a {}.", dose.label(lang)),
            },
            BookingError::TooEarly { earliest } => match lang {
                Lang::Ja => format!("前回の接種から間隔が足りません。{earliest} 以降の日を選んでください。"),
                Lang::En => format!("Too soon after the previous dose. Please choose a day on or after {earliest}."),
                Lang::ZhHans => format!("距上一剂间隔不足，请选择 {earliest} 或之后的日期。"),
                Lang::Pt => format!("Cedo demais após a dose anterior. Escolha um dia a partir de {earliest}."),
            },
            BookingError::NeedsEarlierDose => pick(
                lang,
                "先に前の回の接種を予約してください。",
                "Please book the earlier dose first.",
                "请先预约前一剂。",
                "Reserve primeiro a dose anterior.",
            )
            .into(),
            BookingError::OtherVaccine => pick(
                lang,
                "この会場は前回と違うワクチンです。前回と同じワクチンの会場を選んでください。",
                "This venue uses a different vaccine from your earlier dose. Please choose a venue with the same vaccine.",
                "该接种点的疫苗与上一剂不同，请选择相同疫苗的接种点。",
                "Este local usa outra vacina. Escolha um local com a mesma vacina da dose anterior.",
            )
            .into(),
            BookingError::GroupTooLarge { max } => match lang {
                Lang::Ja => format!("一緒に予約できるのは{max}人までです。"),
                Lang::En => format!("You can book for at most {max} other people."),
                Lang::ZhHans => format!("最多可为 {max} 位其他人预约。"),
                Lang::Pt => format!("Você pode reservar para no máximo {max} outras pessoas."),
            },
            BookingError::PairingNotOffered => pick(
                lang,
                "1回目と2回目を同時に予約することはできません。",
                "Booking the 2nd dose together with the 1st is not offered.",
                "不能同时预约第1剂和第2剂。",
                "Não é possível reservar a 2ª dose junto com a 1ª.",
            )
            .into(),
            BookingError::KeyReused => pick(
                lang,
                "この操作はすでに別の内容で処理されました。もう一度やり直してください。",
                "This request was already used for something else. Please start again.",
                "该请求已被用于其他操作，请重新开始。",
                "Este pedido já foi usado para outra coisa. Comece de novo.",
            )
            .into(),
            BookingError::BadKey => pick(
                lang,
                "リクエストのキー（idempotencyKey）は制御文字を含まない8〜200文字にしてください。ページを再読み込みしてやり直してください。",
                "The request key (idempotencyKey) must be 8 to 200 characters without control characters. Please reload the page and try again.",
                "请求键（idempotencyKey）须为 8 至 200 个字符且不含控制字符。请刷新页面后重试。",
                "A chave do pedido (idempotencyKey) deve ter de 8 a 200 caracteres, sem caracteres de controle. Recarregue a página e tente de novo.",
            )
            .into(),
            BookingError::Database(_) => pick(
                lang,
                "ただいま混み合っています。少し待ってからもう一度お試しください。",
                "Something went wrong on our side. Please try again in a moment.",
                "系统繁忙，请稍后再试。",
                "Ocorreu um erro do nosso lado. Tente novamente em instantes.",
            )
            .into(),
        }
    }
}
