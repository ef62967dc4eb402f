//! Booking, changing and cancelling seats — the invariants of DESIGN.md ("Booking invariants") in one
//! place:
//!
//! * **Never overbook.** A seat is taken by ONE conditional statement, [`take_seats`]:
//!   `UPDATE slots SET booked = booked + n WHERE … AND booked + n <= capacity RETURNING …`, in the same
//!   transaction as the booking rows. No read-then-write: when it updates no row the slot is full (or
//!   past its deadline) and the transaction rolls back. A group takes all its seats in that one
//!   statement, so it gets all or none. The CHECK on `slots` is the last wall.
//! * **One live booking per resident and dose**: the partial unique index `bookings_one_live_per_dose`.
//! * **Dose order and intervals**: dose 2 at least the vaccine's `min_interval_days` after dose 1 (same
//!   vaccine unless the city allows mixing); booster at least `booster_interval_months` after dose 2.
//! * **Deadlines**: a slot can be booked until `booking_deadline_hours` before it starts (checked inside
//!   the seat statement); a booking can be changed or cancelled until `cancel_cutoff_days` before.
//! * **Idempotency**: every mutation carries a key; the key row is inserted first in the same
//!   transaction, so a replay (even a concurrent one) returns the first result and books nothing.
//! * **Outbox**: each booking, change and cancel pushes its notification job in the same transaction.
//! * **Short transactions**: no network calls here; the notification is sent later by the worker.

use chrono::{DateTime, Duration, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool, Row};
use tenants::{Tenant, TenantTx};
use uuid::Uuid;

use crate::i18n::{Lang, pick};
use crate::jobs::{self, Notification};

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
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl BookingError {
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

/// A booking as residents and integrators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Booking {
    pub id: Uuid,
    pub resident_id: Uuid,
    pub slot_id: Uuid,
    pub venue_id: Uuid,
    pub venue_name: String,
    pub vaccine_name: String,
    pub dose: Dose,
    pub status: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub group_id: Uuid,
    /// The last moment the resident may change or cancel it.
    pub change_until: DateTime<Utc>,
}

/// The columns of [`Booking`], shared by every query that returns bookings.
macro_rules! booking_select {
    () => {
        concat!(
            "SELECT b.id, b.resident_id, b.slot_id, s.venue_id, v.name AS venue_name, x.name AS vaccine_name, ",
            "b.dose, b.status, s.starts_at, s.ends_at, b.group_id, ",
            "s.starts_at - make_interval(days => v.cancel_cutoff_days) AS change_until ",
            "FROM bookings b JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id ",
            "JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id ",
            "JOIN vaccines x ON x.tenant_id = b.tenant_id AND x.id = b.vaccine_id ",
        )
    };
}

fn booking_from_row(r: &sqlx::postgres::PgRow) -> Result<Booking, sqlx::Error> {
    Ok(Booking {
        id: r.try_get("id")?,
        resident_id: r.try_get("resident_id")?,
        slot_id: r.try_get("slot_id")?,
        venue_id: r.try_get("venue_id")?,
        venue_name: r.try_get("venue_name")?,
        vaccine_name: r.try_get("vaccine_name")?,
        dose: {
            let n: i16 = r.try_get("dose")?;
            Dose::from_number(n)
                .ok_or_else(|| sqlx::Error::Decode(BadDose(n.to_string()).into()))?
        },
        status: r.try_get("status")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
        group_id: r.try_get("group_id")?,
        change_until: r.try_get("change_until")?,
    })
}

/// The city's booking policy (table `booking_settings`; defaults when the city has no row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingSettings {
    pub few_left_percent: i32,
    pub few_left_seats: i32,
    pub allow_mixing: bool,
    pub book_dose2_with_dose1: bool,
    pub max_group_size: i32,
    /// Share of every slot held for dose 2 (0–100 %) …
    pub dose2_reserve_percent: i32,
    /// … until this moment (no hold when `None` or past).
    pub dose2_reserve_until: Option<DateTime<Utc>>,
}

impl Default for BookingSettings {
    fn default() -> Self {
        Self {
            few_left_percent: 20,
            few_left_seats: 3,
            allow_mixing: false,
            book_dose2_with_dose1: false,
            max_group_size: 4,
            dose2_reserve_percent: 0,
            dose2_reserve_until: None,
        }
    }
}

pub async fn settings(conn: &mut PgConnection) -> Result<BookingSettings, sqlx::Error> {
    let row = sqlx::query(
        "SELECT few_left_percent, few_left_seats, allow_mixing, book_dose2_with_dose1, max_group_size, \
                dose2_reserve_percent, dose2_reserve_until \
         FROM booking_settings WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid",
    )
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        None => BookingSettings::default(),
        Some(r) => BookingSettings {
            few_left_percent: r.try_get(0)?,
            few_left_seats: r.try_get(1)?,
            allow_mixing: r.try_get(2)?,
            book_dose2_with_dose1: r.try_get(3)?,
            max_group_size: r.try_get(4)?,
            dose2_reserve_percent: r.try_get(5)?,
            dose2_reserve_until: r.try_get(6)?,
        },
    })
}

/// What to book: `resident` books `dose` in `slot`, for themself and `companions` (other residents,
/// already identified by ticket number and birth date), optionally with dose 2 in `second_dose_slot`.
#[derive(Debug, Clone)]
pub struct BookRequest {
    pub resident_id: Uuid,
    pub slot_id: Uuid,
    pub dose: Dose,
    pub companions: Vec<Uuid>,
    pub second_dose_slot: Option<Uuid>,
    pub idempotency_key: String,
}

struct SlotInfo {
    starts_at: DateTime<Utc>,
    vaccine_id: Uuid,
    min_interval_days: i32,
    booster_interval_months: i32,
}

async fn slot_info(
    conn: &mut PgConnection,
    tenant: Uuid,
    slot: Uuid,
) -> Result<SlotInfo, BookingError> {
    let row = sqlx::query(
        "SELECT s.starts_at, v.vaccine_id, x.min_interval_days, x.booster_interval_months \
         FROM slots s JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
         JOIN vaccines x ON x.tenant_id = v.tenant_id AND x.id = v.vaccine_id \
         WHERE s.tenant_id = $1 AND s.id = $2",
    )
    .bind(tenant)
    .bind(slot)
    .fetch_optional(conn)
    .await?
    .ok_or(BookingError::NotFound)?;
    Ok(SlotInfo {
        starts_at: row.try_get(0)?,
        vaccine_id: row.try_get(1)?,
        min_interval_days: row.try_get(2)?,
        booster_interval_months: row.try_get(3)?,
    })
}

/// Dose order, intervals and product for one person booking `dose` in `slot`. Reads the person's own
/// earlier booking only; the seat itself is never read here.
async fn check_dose_rules(
    conn: &mut PgConnection,
    tenant: &Tenant,
    resident: Uuid,
    dose: Dose,
    slot: &SlotInfo,
    policy: &BookingSettings,
    earlier_in_this_request: Option<&SlotInfo>,
) -> Result<(), BookingError> {
    let previous = match dose {
        Dose::First => return Ok(()),
        Dose::Second => 1i16,
        Dose::Booster => 2i16,
    };
    let earlier: Option<(DateTime<Utc>, Uuid, i32, i32)> =
        match earlier_in_this_request {
            Some(e) => Some((
                e.starts_at,
                e.vaccine_id,
                e.min_interval_days,
                e.booster_interval_months,
            )),
            None => sqlx::query_as(
                "SELECT s.starts_at, b.vaccine_id, x.min_interval_days, x.booster_interval_months \
             FROM bookings b JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
             JOIN vaccines x ON x.tenant_id = b.tenant_id AND x.id = b.vaccine_id \
             WHERE b.tenant_id = $1 AND b.resident_id = $2 AND b.dose = $3 AND b.status = 'booked'",
            )
            .bind(tenant.id.0)
            .bind(resident)
            .bind(previous)
            .fetch_optional(&mut *conn)
            .await?,
        };
    let Some((earlier_start, earlier_vaccine, interval_days, booster_months)) = earlier else {
        return Err(BookingError::NeedsEarlierDose);
    };
    if dose == Dose::Second && earlier_vaccine != slot.vaccine_id && !policy.allow_mixing {
        return Err(BookingError::OtherVaccine);
    }
    let earliest = match dose {
        Dose::Second => earlier_start + Duration::days(i64::from(interval_days)),
        _ => earlier_start
            .checked_add_months(Months::new(booster_months.max(0) as u32))
            .unwrap_or(earlier_start),
    };
    let tz = tenant.time_zone.0;
    // Intervals count in calendar days of the city: a dose on day D + interval is on time.
    let earliest_day = earliest.with_timezone(&tz).date_naive();
    if slot.starts_at.with_timezone(&tz).date_naive() < earliest_day {
        return Err(BookingError::TooEarly {
            earliest: earliest_day,
        });
    }
    Ok(())
}

/// Rules staff may pass on a resident's behalf. Only the call centre hands one out, and only to roles
/// the guard allows `booking_override` (city admins); everything else (seats, dose rules, booking
/// opening) holds as for residents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Book a slot past its booking deadline (until it ends), and change or cancel past the
    /// change/cancel cut-off.
    pub deadlines: bool,
}

impl Pass {
    pub const NONE: Pass = Pass { deadlines: false };
    pub const DEADLINES: Pass = Pass { deadlines: true };
}

/// THE seat statement: takes `seats` seats in `slot` if (and only if) they are free and the slot is
/// still bookable. One conditional UPDATE; when it matches no row, nothing changed and the caller
/// rolls back. Returns why it refused.
///
/// Seats held for dose 2 (booking_settings.dose2_reserve_*) count against every other dose while the
/// hold is on: `booked - booked_dose2 + seats <= capacity - held`. Dose 2 may take any free seat.
pub async fn take_seats(
    conn: &mut PgConnection,
    tenant: Uuid,
    slot: Uuid,
    seats: i32,
    dose: Dose,
) -> Result<(), BookingError> {
    take_seats_with(conn, tenant, slot, seats, dose, Pass::NONE).await
}

/// [`take_seats`], where `pass.deadlines` moves the deadline to the slot's end (staff override).
pub async fn take_seats_with(
    conn: &mut PgConnection,
    tenant: Uuid,
    slot: Uuid,
    seats: i32,
    dose: Dose,
    pass: Pass,
) -> Result<(), BookingError> {
    let taken = sqlx::query(
        "UPDATE slots s SET booked = s.booked + $3, \
                booked_dose2 = s.booked_dose2 + CASE WHEN $4 THEN $3 ELSE 0 END \
         FROM venues v LEFT JOIN booking_settings bs ON bs.tenant_id = v.tenant_id \
         WHERE s.tenant_id = $1 AND s.id = $2 AND v.tenant_id = s.tenant_id AND v.id = s.venue_id \
           AND s.booked + $3 <= s.capacity \
           AND ($4 OR s.booked - s.booked_dose2 + $3 <= s.capacity \
                - dose2_held_seats(s.capacity, bs.dose2_reserve_percent, bs.dose2_reserve_until)) \
           AND CASE WHEN $5 THEN s.ends_at > now() \
                    ELSE s.starts_at - make_interval(hours => v.booking_deadline_hours) > now() END \
           AND (v.booking_opens_at IS NULL OR v.booking_opens_at <= now()) \
         RETURNING s.id",
    )
    .bind(tenant)
    .bind(slot)
    .bind(seats)
    .bind(dose == Dose::Second)
    .bind(pass.deadlines)
    .fetch_optional(&mut *conn)
    .await?;
    if taken.is_some() {
        return Ok(());
    }
    // Diagnosis only (nothing is written on this path): say why, so the resident can act.
    let why: Option<(bool, bool)> = sqlx::query_as(
        "SELECT CASE WHEN $3 THEN s.ends_at <= now() \
                     ELSE s.starts_at - make_interval(hours => v.booking_deadline_hours) <= now() END, \
                COALESCE(v.booking_opens_at > now(), false) \
         FROM slots s JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
         WHERE s.tenant_id = $1 AND s.id = $2",
    )
    .bind(tenant)
    .bind(slot)
    .bind(pass.deadlines)
    .fetch_optional(conn)
    .await?;
    Err(match why {
        None => BookingError::NotFound,
        Some((true, _)) => BookingError::DeadlinePassed,
        Some((_, true)) => BookingError::NotOpenYet,
        _ => BookingError::Full,
    })
}

/// Gives seats back (cancel, or the old side of a change). Never below zero (CHECK on slots).
async fn release_seat(
    conn: &mut PgConnection,
    tenant: Uuid,
    slot: Uuid,
    dose: Dose,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE slots SET booked = booked - 1, \
                booked_dose2 = booked_dose2 - CASE WHEN $3 THEN 1 ELSE 0 END \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(slot)
    .bind(dose == Dose::Second)
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims the idempotency key for this transaction. `Some(result)` when the key was used before
/// (by a committed request): the caller returns that result and books nothing.
async fn claim_key(
    conn: &mut PgConnection,
    tenant: Uuid,
    key: &str,
    resident: Uuid,
) -> Result<Option<Vec<Uuid>>, BookingError> {
    let key = key.trim();
    if key.len() < 8 || key.len() > 200 {
        return Err(BookingError::KeyReused);
    }
    let fresh = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, key, resident_id) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING RETURNING key",
    )
    .bind(tenant)
    .bind(key)
    .bind(resident)
    .fetch_optional(&mut *conn)
    .await?;
    if fresh.is_some() {
        return Ok(None);
    }
    let (owner, result): (Uuid, Option<serde_json::Value>) = sqlx::query_as(
        "SELECT resident_id, result FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_one(conn)
    .await?;
    if owner != resident {
        return Err(BookingError::KeyReused);
    }
    let ids = result
        .and_then(|r| serde_json::from_value::<Vec<Uuid>>(r).ok())
        .unwrap_or_default();
    Ok(Some(ids))
}

async fn store_result(
    conn: &mut PgConnection,
    tenant: Uuid,
    key: &str,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE idempotency_keys SET result = $3 WHERE tenant_id = $1 AND key = $2")
        .bind(tenant)
        .bind(key.trim())
        .bind(serde_json::json!(ids))
        .execute(conn)
        .await?;
    Ok(())
}

fn unique_violation_to_already(e: sqlx::Error, dose: Dose) -> BookingError {
    let is_dup = e
        .as_database_error()
        .and_then(|d| d.constraint())
        .is_some_and(|c| c == "bookings_one_live_per_dose");
    if is_dup {
        BookingError::AlreadyBooked { dose }
    } else {
        e.into()
    }
}

/// Who asks for a fast-path booking: a resident already identified (resident site), or the bearer
/// of a resident token (API), checked inside the same statement.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    Resident(Uuid),
    Token(&'a str),
}

/// What the fast path did.
#[derive(Debug)]
pub enum FastOutcome {
    /// Booked now, or the replay of an earlier request with the same key.
    Done(Vec<Booking>),
    /// The token names no live session.
    Unauthenticated,
    /// The single statement could not decide (a concurrent duplicate, or the person already holds a
    /// dose-1 booking): run the general path, which answers exactly.
    Fallback,
}

/// One first-dose request of the fast path, ready for `book_first_dose` or, with others,
/// `book_first_doses` (crate::booking_batch).
#[derive(Debug)]
pub(crate) struct FastRequest {
    pub token_hash: Option<Vec<u8>>,
    pub resident: Option<Uuid>,
    pub slot: Uuid,
    pub prefix: Option<&'static str>,
    pub key: String,
    pub booking: Uuid,
    pub job: Uuid,
    pub job_key: String,
    pub payload: serde_json::Value,
}

/// Checks what can be checked without the database; `Err(outcome)` answers at once.
pub(crate) fn fast_request(
    tenant: &Tenant,
    caller: Caller<'_>,
    slot: Uuid,
    key: &str,
) -> Result<Result<FastRequest, FastOutcome>, BookingError> {
    let key = key.trim();
    let (token_hash, resident, prefix) = match caller {
        Caller::Resident(r) => (None, Some(r), None),
        Caller::Token(t) => {
            if crate::residents::auth::tenant_of_token(t) != Some(tenant.id) {
                return Ok(Err(FastOutcome::Unauthenticated));
            }
            (
                Some(crate::residents::auth::token_hash(t)),
                None,
                Some("api:"),
            )
        }
    };
    let full_len = key.len() + prefix.map_or(0, |p| p.len() + 37);
    if !(8..=200).contains(&full_len) {
        return Ok(Err(FastOutcome::Fallback));
    }
    let booking = Uuid::now_v7();
    let payload = serde_json::to_value(Notification::BookingConfirmed {
        booking_id: booking,
    })
    .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    Ok(Ok(FastRequest {
        token_hash,
        resident,
        slot,
        prefix,
        key: key.to_owned(),
        booking,
        job: Uuid::now_v7(),
        job_key: format!("booking-confirmed:{booking}"),
        payload,
    }))
}

/// The fast path of [`book`]: one person, dose 1, one slot — one round trip to PostgreSQL (the
/// function `book_first_dose`, migrations/20261122000001_dose2_reserve_and_fast_path.sql, which
/// keeps every invariant of this module). `key` is the whole idempotency key for
/// [`Caller::Resident`] and the part after `api:<resident>:` for [`Caller::Token`]. Requests that
/// arrive together are better sent through [`crate::booking_batch::Batcher`], which decides many
/// in one statement.
pub async fn book_first_dose(
    pool: &PgPool,
    tenant: &Tenant,
    caller: Caller<'_>,
    slot: Uuid,
    key: &str,
) -> Result<FastOutcome, BookingError> {
    match fast_request(tenant, caller, slot, key)? {
        Ok(req) => book_one_first_dose(pool, tenant, &req).await,
        Err(early) => Ok(early),
    }
}

pub(crate) async fn book_one_first_dose(
    pool: &PgPool,
    tenant: &Tenant,
    req: &FastRequest,
) -> Result<FastOutcome, BookingError> {
    let row =
        sqlx::query("SELECT * FROM book_first_dose($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
            .bind(tenant.id.0)
            .bind(req.token_hash.as_deref())
            .bind(req.resident)
            .bind(req.slot)
            .bind(req.prefix)
            .bind(&req.key)
            .bind(req.booking)
            .bind(req.booking)
            .bind(req.job)
            .bind(&req.job_key)
            .bind(&req.payload)
            .fetch_one(pool)
            .await;
    match row {
        Ok(r) => fast_outcome(pool, tenant, req.booking, &r).await,
        Err(e) if is_unique_violation(&e) => Ok(FastOutcome::Fallback),
        Err(e) => Err(e.into()),
    }
}

/// What a row of `book_first_dose` / `book_first_doses` says. `fallback` (batch only: run the
/// request alone) is answered as [`FastOutcome::Fallback`]; the batcher handles it before.
pub(crate) async fn fast_outcome(
    pool: &PgPool,
    tenant: &Tenant,
    id: Uuid,
    row: &sqlx::postgres::PgRow,
) -> Result<FastOutcome, BookingError> {
    let outcome: String = row.try_get("out_outcome")?;
    let resident: Option<Uuid> = row.try_get("out_resident")?;
    match outcome.as_str() {
        "booked" => Ok(FastOutcome::Done(vec![Booking {
            id,
            resident_id: resident.unwrap_or_default(),
            slot_id: row.try_get("out_slot")?,
            venue_id: row.try_get("out_venue")?,
            venue_name: row.try_get("out_venue_name")?,
            vaccine_name: row.try_get("out_vaccine_name")?,
            dose: Dose::First,
            status: "booked".into(),
            starts_at: row.try_get("out_starts_at")?,
            ends_at: row.try_get("out_ends_at")?,
            group_id: id,
            change_until: row.try_get("out_change_until")?,
        }])),
        "replay" => {
            let result: Option<serde_json::Value> = row.try_get("out_result")?;
            let ids = result
                .and_then(|r| serde_json::from_value::<Vec<Uuid>>(r).ok())
                .unwrap_or_default();
            let mut tx = tenants::begin(pool, tenant.id).await?;
            let found = load(&mut tx, tenant.id.0, &ids).await?;
            tx.commit().await?;
            Ok(FastOutcome::Done(found))
        }
        "unauthenticated" => Ok(FastOutcome::Unauthenticated),
        "fallback" => Ok(FastOutcome::Fallback),
        "key_reused" => Err(BookingError::KeyReused),
        "not_found" => Err(BookingError::NotFound),
        "deadline" => Err(BookingError::DeadlinePassed),
        "not_open" => Err(BookingError::NotOpenYet),
        _ => Err(BookingError::Full),
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23505")
}

/// Runs one booking operation (`*_in`) in a savepoint of a staff scope's transaction: on success the savepoint
/// is released (the booking commits with the scope, together with its audit entry); on an error it
/// is rolled back, so nothing half-done can be committed by the caller.
macro_rules! in_savepoint {
    ($scope:expr, |$conn:ident| $op:expr) => {{
        let mut sp = sqlx::Connection::begin(&mut *$scope.tx).await?;
        let $conn: &mut sqlx::PgConnection = &mut sp;
        let result = $op.await;
        match result {
            Ok(v) => {
                sp.commit().await?;
                Ok(v)
            }
            Err(e) => {
                sp.rollback().await?;
                Err(e)
            }
        }
    }};
}
pub(crate) use in_savepoint;

/// Books a seat (or a group's seats, or dose 1 and dose 2) — all or nothing.
pub async fn book(
    pool: &PgPool,
    tenant: &Tenant,
    req: &BookRequest,
) -> Result<Vec<Booking>, BookingError> {
    book_via(None, pool, tenant, req).await
}

/// Like [`book`], with the fast path decided in a batch ([`crate::booking_batch`]): what the
/// resident-facing front ends use.
pub async fn book_batched(
    batcher: &crate::booking_batch::Batcher,
    pool: &PgPool,
    tenant: &Tenant,
    req: &BookRequest,
) -> Result<Vec<Booking>, BookingError> {
    book_via(Some(batcher), pool, tenant, req).await
}

/// The commonest booking (the resident alone, dose 1, one slot) by the one-statement fast path,
/// alone or in a batch; everything else, and whatever the fast path leaves open, by the general
/// path, which says precisely why a booking is refused.
async fn book_via(
    batcher: Option<&crate::booking_batch::Batcher>,
    pool: &PgPool,
    tenant: &Tenant,
    req: &BookRequest,
) -> Result<Vec<Booking>, BookingError> {
    if req.companions.is_empty() && req.second_dose_slot.is_none() && req.dose == Dose::First {
        let caller = Caller::Resident(req.resident_id);
        let key = &req.idempotency_key;
        let fast = match batcher {
            Some(b) => b.book_first_dose(tenant, caller, req.slot_id, key).await?,
            None => book_first_dose(pool, tenant, caller, req.slot_id, key).await?,
        };
        match fast {
            FastOutcome::Done(booked) => return Ok(booked),
            FastOutcome::Unauthenticated | FastOutcome::Fallback => {}
        }
    }
    book_general(pool, tenant, req, false).await
}

/// Like [`book`], for a group that may be split over the chosen slot and the one right before or
/// after it at the same venue on the same day when the chosen slot has too few seats for everyone:
/// still all seats or none, each taken by the conditional seat statement. (Not with dose 2 booked in
/// the same step.)
pub async fn book_allowing_adjacent(
    pool: &PgPool,
    tenant: &Tenant,
    req: &BookRequest,
) -> Result<Vec<Booking>, BookingError> {
    if req.companions.is_empty() || req.second_dose_slot.is_some() {
        return book(pool, tenant, req).await;
    }
    book_general(pool, tenant, req, true).await
}

/// Where a group that does not fit in `slot` could sit: `(slot, seats there)` for the chosen slot
/// and one neighbour. The free counts read here are only a plan; the seat statements decide.
async fn adjacent_split(
    conn: &mut PgConnection,
    tenant: &Tenant,
    slot: Uuid,
    dose: Dose,
    people: i32,
) -> Result<Option<Vec<(Uuid, i32)>>, BookingError> {
    let rows: Vec<(Uuid, DateTime<Utc>, i32)> = sqlx::query_as(
        "WITH me AS (SELECT venue_id, starts_at FROM slots WHERE tenant_id = $1 AND id = $2) \
         SELECT s.id, s.starts_at, GREATEST(0, LEAST(s.capacity - s.booked, CASE WHEN $3 THEN s.capacity ELSE \
                s.capacity - dose2_held_seats(s.capacity, bs.dose2_reserve_percent, bs.dose2_reserve_until) \
                - (s.booked - s.booked_dose2) END)) \
         FROM slots s JOIN me ON s.venue_id = me.venue_id \
         LEFT JOIN booking_settings bs ON bs.tenant_id = s.tenant_id \
         WHERE s.tenant_id = $1 AND s.starts_at BETWEEN me.starts_at - interval '1 day' AND me.starts_at + interval '1 day' \
         ORDER BY s.starts_at",
    )
    .bind(tenant.id.0)
    .bind(slot)
    .bind(dose == Dose::Second)
    .fetch_all(&mut *conn)
    .await?;
    let Some(i) = rows.iter().position(|r| r.0 == slot) else {
        return Ok(None);
    };
    let tz = tenant.time_zone.0;
    let day = |t: DateTime<Utc>| t.with_timezone(&tz).date_naive();
    let here = rows[i].2.min(people - 1);
    if here < 1 {
        return Ok(None);
    }
    let neighbours = [i.checked_add(1), i.checked_sub(1)];
    for j in neighbours.into_iter().flatten() {
        if let Some(n) = rows.get(j)
            && day(n.1) == day(rows[i].1)
            && n.2 >= people - here
        {
            return Ok(Some(vec![(slot, here), (n.0, people - here)]));
        }
    }
    Ok(None)
}

/// The general path of [`book`]: groups, dose 2 and boosters, dose 1 + dose 2 together.
async fn book_general(
    pool: &PgPool,
    tenant: &Tenant,
    req: &BookRequest,
    adjacent: bool,
) -> Result<Vec<Booking>, BookingError> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    let booked = book_in(&mut tx, tenant, req, adjacent, Pass::NONE).await?;
    tx.commit().await?;
    Ok(booked)
}

/// The booking itself, in the caller's transaction (`conn` must be scoped to `tenant`): staff
/// modules run it inside their own scope so that the booking and its audit entry commit together.
/// On an error the caller must roll back (or run this inside a savepoint it drops): seats may
/// already have been taken. `adjacent`: see [`book_allowing_adjacent`].
pub async fn book_in(
    tx: &mut PgConnection,
    tenant: &Tenant,
    req: &BookRequest,
    adjacent: bool,
    pass: Pass,
) -> Result<Vec<Booking>, BookingError> {
    let tid = tenant.id.0;
    if let Some(ids) = claim_key(tx, tid, &req.idempotency_key, req.resident_id).await? {
        return Ok(load(tx, tid, &ids).await?);
    }
    let policy = settings(tx).await?;
    if req.companions.len() > policy.max_group_size.max(0) as usize {
        return Err(BookingError::GroupTooLarge {
            max: policy.max_group_size,
        });
    }
    if req.second_dose_slot.is_some() && (!policy.book_dose2_with_dose1 || req.dose != Dose::First)
    {
        return Err(BookingError::PairingNotOffered);
    }
    let mut people = vec![req.resident_id];
    people.extend(
        req.companions
            .iter()
            .copied()
            .filter(|c| *c != req.resident_id),
    );
    people.dedup();

    let first = slot_info(tx, tid, req.slot_id).await?;
    let second = match req.second_dose_slot {
        Some(s) => Some((s, slot_info(tx, tid, s).await?)),
        None => None,
    };
    for person in &people {
        check_dose_rules(tx, tenant, *person, req.dose, &first, &policy, None).await?;
        if let Some((_, info)) = &second {
            check_dose_rules(
                tx,
                tenant,
                *person,
                Dose::Second,
                info,
                &policy,
                Some(&first),
            )
            .await?;
        }
    }

    // Seats: one statement per slot, in slot-id order so two transactions never wait on each other
    // in opposite orders.
    let n = people.len() as i32;
    // Where each person sits for the first booking of the request (all in the chosen slot, unless
    // a group may spill into the adjacent slot).
    let mut seat_of = vec![req.slot_id; people.len()];
    let mut slots = vec![(req.slot_id, req.dose, n)];
    if adjacent && n > 1 && second.is_none() {
        match take_seats_with(tx, tid, req.slot_id, n, req.dose, pass).await {
            Ok(()) => slots.clear(),
            Err(BookingError::Full) => {
                let split = adjacent_split(tx, tenant, req.slot_id, req.dose, n)
                    .await?
                    .ok_or(BookingError::Full)?;
                let mut at = 0;
                for (slot, seats) in &split {
                    for s in seat_of.iter_mut().skip(at).take(*seats as usize) {
                        *s = *slot;
                    }
                    at += *seats as usize;
                }
                slots = split.into_iter().map(|(s, k)| (s, req.dose, k)).collect();
            }
            Err(other) => return Err(other),
        }
    }
    if let Some((s, _)) = &second {
        slots.push((*s, Dose::Second, n));
    }
    slots.sort_by_key(|(s, _, _)| *s);
    for (s, dose, seats) in &slots {
        take_seats_with(tx, tid, *s, *seats, *dose, pass).await?;
    }

    let group_id = Uuid::now_v7();
    let mut ids = Vec::new();
    for (person, first_slot) in people.iter().zip(&seat_of) {
        let mut plan = vec![(*first_slot, req.dose, first.vaccine_id)];
        if let Some((s, info)) = &second {
            plan.push((*s, Dose::Second, info.vaccine_id));
        }
        for (slot, dose, vaccine) in &plan {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO bookings (tenant_id, id, resident_id, slot_id, vaccine_id, dose, booked_by, group_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(tid)
            .bind(id)
            .bind(person)
            .bind(slot)
            .bind(vaccine)
            .bind(dose.number())
            .bind(req.resident_id)
            .bind(group_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique_violation_to_already(e, *dose))?;
            jobs::push(
                tx,
                tid,
                &format!("booking-confirmed:{id}"),
                &Notification::BookingConfirmed { booking_id: id },
            )
            .await?;
            ids.push(id);
        }
    }
    store_result(tx, tid, &req.idempotency_key, &ids).await?;
    Ok(load(tx, tid, &ids).await?)
}

/// Moves a booking to another slot atomically: the old seat is released only if the new one was taken.
pub async fn change(
    pool: &PgPool,
    tenant: &Tenant,
    resident: Uuid,
    booking_id: Uuid,
    new_slot: Uuid,
    idempotency_key: &str,
) -> Result<Booking, BookingError> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    let moved = change_in(
        &mut tx,
        tenant,
        resident,
        booking_id,
        new_slot,
        idempotency_key,
        Pass::NONE,
    )
    .await?;
    tx.commit().await?;
    Ok(moved)
}

/// [`change`] in the caller's transaction (see [`book_in`] for what the caller owes on an error).
pub async fn change_in(
    tx: &mut PgConnection,
    tenant: &Tenant,
    resident: Uuid,
    booking_id: Uuid,
    new_slot: Uuid,
    idempotency_key: &str,
    pass: Pass,
) -> Result<Booking, BookingError> {
    let tid = tenant.id.0;
    if let Some(ids) = claim_key(tx, tid, idempotency_key, resident).await? {
        let found = load(tx, tid, &ids).await?;
        return found.into_iter().next().ok_or(BookingError::NotFound);
    }
    let current = lock_own_booking(tx, tid, resident, booking_id).await?;
    if current.change_until <= Utc::now() && !pass.deadlines {
        return Err(BookingError::CutoffPassed);
    }
    if current.slot_id == new_slot {
        store_result(tx, tid, idempotency_key, &[booking_id]).await?;
        return Ok(current);
    }
    let policy = settings(tx).await?;
    let target = slot_info(tx, tid, new_slot).await?;
    check_dose_rules(tx, tenant, resident, current.dose, &target, &policy, None).await?;
    if current.dose == Dose::First {
        // dose 1 may not move past a booked dose 2's interval … nor change product under it
        let dose2: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT s.starts_at FROM bookings b JOIN slots s ON s.tenant_id = b.tenant_id AND s.id = b.slot_id \
             WHERE b.tenant_id = $1 AND b.resident_id = $2 AND b.dose = 2 AND b.status = 'booked'",
        )
        .bind(tid)
        .bind(resident)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(d2) = dose2
            && target.starts_at + Duration::days(i64::from(target.min_interval_days)) > d2
        {
            return Err(BookingError::TooEarly {
                earliest: (d2 - Duration::days(i64::from(target.min_interval_days)))
                    .with_timezone(&tenant.time_zone.0)
                    .date_naive(),
            });
        }
    }
    take_seats_with(tx, tid, new_slot, 1, current.dose, pass).await?;
    release_seat(tx, tid, current.slot_id, current.dose).await?;
    sqlx::query(
        "UPDATE bookings SET slot_id = $3, vaccine_id = $4, updated_at = now() WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tid)
    .bind(booking_id)
    .bind(new_slot)
    .bind(target.vaccine_id)
    .execute(&mut *tx)
    .await?;
    jobs::push(
        tx,
        tid,
        &format!("booking-changed:{booking_id}:{}", idempotency_key.trim()),
        &Notification::BookingChanged { booking_id },
    )
    .await?;
    store_result(tx, tid, idempotency_key, &[booking_id]).await?;
    let moved = load(tx, tid, &[booking_id]).await?;
    moved.into_iter().next().ok_or(BookingError::NotFound)
}

/// Cancels a booking and releases its seat at once.
pub async fn cancel(
    pool: &PgPool,
    tenant: &Tenant,
    resident: Uuid,
    booking_id: Uuid,
    idempotency_key: &str,
) -> Result<Booking, BookingError> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    let cancelled = cancel_in(
        &mut tx,
        tenant,
        resident,
        booking_id,
        idempotency_key,
        Pass::NONE,
    )
    .await?;
    tx.commit().await?;
    Ok(cancelled)
}

/// [`cancel`] in the caller's transaction (see [`book_in`] for what the caller owes on an error).
pub async fn cancel_in(
    tx: &mut PgConnection,
    tenant: &Tenant,
    resident: Uuid,
    booking_id: Uuid,
    idempotency_key: &str,
    pass: Pass,
) -> Result<Booking, BookingError> {
    let tid = tenant.id.0;
    if let Some(ids) = claim_key(tx, tid, idempotency_key, resident).await? {
        let found = load(tx, tid, &ids).await?;
        return found.into_iter().next().ok_or(BookingError::NotFound);
    }
    let current = lock_own_booking(tx, tid, resident, booking_id).await?;
    if current.change_until <= Utc::now() && !pass.deadlines {
        return Err(BookingError::CutoffPassed);
    }
    sqlx::query("UPDATE bookings SET status = 'cancelled', updated_at = now() WHERE tenant_id = $1 AND id = $2")
        .bind(tid)
        .bind(booking_id)
        .execute(&mut *tx)
        .await?;
    release_seat(tx, tid, current.slot_id, current.dose).await?;
    jobs::push(
        tx,
        tid,
        &format!("booking-cancelled:{booking_id}"),
        &Notification::BookingCancelled { booking_id },
    )
    .await?;
    store_result(tx, tid, idempotency_key, &[booking_id]).await?;
    let cancelled = load(tx, tid, &[booking_id]).await?;
    cancelled.into_iter().next().ok_or(BookingError::NotFound)
}

/// The resident's own live booking, locked for this transaction. Someone else's booking is "not
/// found" (no existence oracle).
async fn lock_own_booking(
    conn: &mut PgConnection,
    tenant: Uuid,
    resident: Uuid,
    booking_id: Uuid,
) -> Result<Booking, BookingError> {
    let locked: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM bookings WHERE tenant_id = $1 AND id = $2 AND status = 'booked' \
         AND (resident_id = $3 OR booked_by = $3) FOR UPDATE",
    )
    .bind(tenant)
    .bind(booking_id)
    .bind(resident)
    .fetch_optional(&mut *conn)
    .await?;
    if locked.is_none() {
        return Err(BookingError::NotFound);
    }
    load(conn, tenant, &[booking_id])
        .await?
        .into_iter()
        .next()
        .ok_or(BookingError::NotFound)
}

async fn load(
    conn: &mut PgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<Vec<Booking>, sqlx::Error> {
    let rows = sqlx::query(concat!(
        booking_select!(),
        "WHERE b.tenant_id = $1 AND b.id = ANY($2) ORDER BY s.starts_at, b.id"
    ))
    .bind(tenant)
    .bind(ids)
    .fetch_all(conn)
    .await?;
    rows.iter().map(booking_from_row).collect()
}

/// The resident's bookings (their own and those they made for others), live ones first.
pub async fn my_bookings(
    pool: &PgPool,
    tenant: &Tenant,
    resident: Uuid,
) -> Result<Vec<Booking>, sqlx::Error> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    let rows = sqlx::query(concat!(
        booking_select!(),
        "WHERE b.tenant_id = $1 AND (b.resident_id = $2 OR b.booked_by = $2) ",
        "ORDER BY b.status = 'booked' DESC, s.starts_at"
    ))
    .bind(tenant.id.0)
    .bind(resident)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter().map(booking_from_row).collect()
}

/// Resolves another person for a group booking by ticket number and birth date. `None` for any
/// mismatch (one answer for every wrong combination).
pub async fn identify_companion(
    tx: &mut TenantTx,
    ticket_no: &str,
    birth_date: NaiveDate,
) -> Result<Option<Uuid>, sqlx::Error> {
    crate::residents::find_by_ticket(tx, ticket_no, birth_date).await
}

/// Why the city's booking rules were not saved: the field and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl BookingSettings {
    /// The rules a city may set, each within its range.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |field, reason| Err(SettingsError::Invalid { field, reason });
        if !(0..=100).contains(&self.few_left_percent) {
            return bad("few_left_percent", "0–100");
        }
        if !(0..=1000).contains(&self.few_left_seats) {
            return bad("few_left_seats", "0–1000");
        }
        if !(0..=20).contains(&self.max_group_size) {
            return bad("max_group_size", "0–20");
        }
        if !(0..=100).contains(&self.dose2_reserve_percent) {
            return bad("dose2_reserve_percent", "0–100");
        }
        if self.dose2_reserve_percent > 0 && self.dose2_reserve_until.is_none() {
            return bad("dose2_reserve_until", "required when seats are held");
        }
        Ok(())
    }
}

/// The city's booking rules as the scope's tenant has them ([`settings`]).
pub async fn city_settings(
    scope: &mut crate::authz::Scope,
) -> Result<BookingSettings, sqlx::Error> {
    settings(&mut scope.tx).await
}

/// Saves the city's booking rules (thresholds, mixing, dose 1 + 2 together, group size, seats
/// held for dose 2) and records the change in the audit log. Nothing changes when a value is out
/// of range.
pub async fn save_settings(
    scope: &mut crate::authz::Scope,
    new: &BookingSettings,
) -> Result<(), SettingsError> {
    new.validate()?;
    let before = settings(&mut scope.tx).await?;
    sqlx::query(
        "INSERT INTO booking_settings (tenant_id, few_left_percent, few_left_seats, allow_mixing, \
             book_dose2_with_dose1, max_group_size, dose2_reserve_percent, dose2_reserve_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (tenant_id) DO UPDATE SET few_left_percent = EXCLUDED.few_left_percent, \
             few_left_seats = EXCLUDED.few_left_seats, allow_mixing = EXCLUDED.allow_mixing, \
             book_dose2_with_dose1 = EXCLUDED.book_dose2_with_dose1, \
             max_group_size = EXCLUDED.max_group_size, \
             dose2_reserve_percent = EXCLUDED.dose2_reserve_percent, \
             dose2_reserve_until = EXCLUDED.dose2_reserve_until",
    )
    .bind(scope.tenant_id().0)
    .bind(new.few_left_percent)
    .bind(new.few_left_seats)
    .bind(new.allow_mixing)
    .bind(new.book_dose2_with_dose1)
    .bind(new.max_group_size)
    .bind(new.dose2_reserve_percent)
    .bind(new.dose2_reserve_until)
    .execute(&mut *scope.tx)
    .await?;
    crate::audit::record(
        scope,
        "booking_rules.update",
        "booking_settings",
        serde_json::json!({
            "before": settings_json(&before),
            "after": settings_json(new),
        }),
    )
    .await?;
    Ok(())
}

fn settings_json(s: &BookingSettings) -> serde_json::Value {
    serde_json::json!({
        "few_left_percent": s.few_left_percent,
        "few_left_seats": s.few_left_seats,
        "allow_mixing": s.allow_mixing,
        "book_dose2_with_dose1": s.book_dose2_with_dose1,
        "max_group_size": s.max_group_size,
        "dose2_reserve_percent": s.dose2_reserve_percent,
        "dose2_reserve_until": s.dose2_reserve_until,
    })
}

/// Slots where dose 2 could be booked together with dose 1 in `first_slot`: at the same venue, on
/// or after the vaccine's interval (calendar days in the city), still bookable, with a seat for a
/// second dose; the first `limit` by time. `None` when the city does not offer booking both at once.
pub async fn second_dose_options(
    pool: &PgPool,
    tenant: &Tenant,
    first_slot: Uuid,
    limit: i64,
) -> Result<Option<Vec<(Uuid, DateTime<Utc>)>>, sqlx::Error> {
    let mut tx = tenants::begin(pool, tenant.id).await?;
    if !settings(&mut tx).await?.book_dose2_with_dose1 {
        tx.commit().await?;
        return Ok(None);
    }
    let tz = tenant.time_zone.0.name();
    let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT s.id, s.starts_at FROM slots f \
         JOIN venues v ON v.tenant_id = f.tenant_id AND v.id = f.venue_id \
         JOIN vaccines x ON x.tenant_id = v.tenant_id AND x.id = v.vaccine_id \
         JOIN slots s ON s.tenant_id = f.tenant_id AND s.venue_id = f.venue_id \
         WHERE f.tenant_id = $1 AND f.id = $2 \
           AND (s.starts_at AT TIME ZONE $3)::date >= (f.starts_at AT TIME ZONE $3)::date + x.min_interval_days \
           AND s.booked < s.capacity \
           AND s.starts_at - make_interval(hours => v.booking_deadline_hours) > now() \
         ORDER BY s.starts_at LIMIT $4",
    )
    .bind(tenant.id.0)
    .bind(first_slot)
    .bind(tz)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(rows))
}
