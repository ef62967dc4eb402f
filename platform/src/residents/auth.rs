//! Resident login: ticket number + birth date, then a 6-digit code by SMS (DESIGN.md, Identity).
//!
//! * The code is **never stored**: it is derived from the login row's random id with a server secret
//!   (HMAC-SHA256) when the SMS job runs; the row keeps only a salted SHA-256 of it for checking.
//!   Nothing here logs a code or a session token.
//! * A code is valid for [`CODE_TTL_MINUTES`] and [`MAX_TRIES`] tries; a new request replaces it.
//! * Requests are throttled per ticket, per phone and per client address ([`LIMITS`]); a throttled
//!   request is refused with the seconds until the next one is allowed.
//! * The SMS is a notification job pushed in the same transaction as the login row.
//! * A session is a random token (only its hash is stored) with a CSRF token bound to it.

use chrono::NaiveDate;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use tenants::{Tenant, TenantId};
use uuid::Uuid;

use crate::i18n::{Lang, pick};
use crate::notifications::outbox::{self, Notification};

pub const CODE_TTL_MINUTES: i64 = 10;
pub const MAX_TRIES: i32 = 5;
pub const SESSION_HOURS: i64 = 2;

/// Throttle buckets: (kind, requests allowed, per this many minutes).
pub const LIMITS: [(&str, i64, i64); 3] = [("ticket", 3, 15), ("phone", 5, 60), ("ip", 30, 15)];

/// The server secret codes are derived with. Every server process of one deployment needs the same
/// one (setting `residents.code_secret`); without it, a random secret per process.
#[derive(Clone)]
pub struct CodeSecret([u8; 32]);

impl CodeSecret {
    pub fn random() -> Self {
        Self(rand::random())
    }
    pub fn from_setting(value: &str) -> Self {
        Self(Sha256::digest(value.as_bytes()).into())
    }
}

impl std::fmt::Debug for CodeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeSecret(…)")
    }
}

/// The code for a login row. Only the SMS job and the check below call this.
pub fn code_for(secret: &CodeSecret, login_id: Uuid) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret.0).expect("any key length");
    mac.update(login_id.as_bytes());
    let out = mac.finalize().into_bytes();
    let n = u32::from_be_bytes([out[0], out[1], out[2], out[3]]) % 1_000_000;
    format!("{n:06}")
}

/// What is stored of a code (never the code itself).
pub fn code_hash(login_id: Uuid, code: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(login_id.as_bytes());
    h.update(code.as_bytes());
    h.finalize().to_vec()
}

fn bucket(tenant: TenantId, kind: &str, value: &str) -> String {
    let mut h = Sha256::new();
    h.update(tenant.0.as_bytes());
    h.update(kind.as_bytes());
    h.update(b":");
    h.update(value.as_bytes());
    format!("{kind}:{}", hex::encode(&h.finalize()[..16]))
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("ticket number and birth date do not match")]
    NotRecognised,
    #[error("a mobile number is needed")]
    PhoneNeeded,
    #[error("not a mobile number")]
    BadPhone,
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: i64 },
    #[error("wrong code")]
    WrongCode { tries_left: i32 },
    #[error("no valid code")]
    Expired,
    #[error("too many wrong codes")]
    TooManyTries,
    /// A field holds a NUL or another control character ([`crate::text::clean_line`]).
    #[error(transparent)]
    BadText(#[from] crate::text::BadText),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::RateLimited { .. } => "RATE_LIMITED",
            AuthError::Database(_) => "INTERNAL",
            _ => "VALIDATION",
        }
    }

    pub fn message(&self, lang: Lang) -> String {
        match self {
            AuthError::BadText(bad) => bad.message(lang),
            AuthError::NotRecognised => pick(
                lang,
                "接種券番号または生年月日が正しくありません。接種券をご確認ください。",
                "The ticket number or birth date is not correct. Please check your vaccination ticket.",
                "接种券号码或出生日期不正确，请核对接种券。",
                "O número do cupom ou a data de nascimento não está correto. Confira seu cupom de vacinação.",
            )
            .into(),
            AuthError::PhoneNeeded => pick(
                lang,
                "初めての方は携帯電話番号を入力してください。認証コードをSMSで送ります。",
                "First time here? Please enter your mobile number; we will text you a code.",
                "首次使用请填写手机号码，我们将通过短信发送验证码。",
                "Primeira vez? Informe seu celular; enviaremos um código por SMS.",
            )
            .into(),
            AuthError::BadPhone => pick(
                lang,
                "携帯電話番号を数字で入力してください（例: 09012345678）。",
                "Please enter a mobile number in digits (e.g. 09012345678).",
                "请用数字填写手机号码（例如 09012345678）。",
                "Informe o celular só com números (ex.: 09012345678).",
            )
            .into(),
            AuthError::RateLimited { retry_after_secs } => {
                let minutes = (retry_after_secs + 59) / 60;
                match lang {
                    Lang::Ja => format!("申し込みが多すぎます。{minutes}分後にもう一度お試しください。"),
                    Lang::En => format!("Too many attempts. Please try again in {minutes} min."),
                    Lang::ZhHans => format!("尝试次数过多，请在 {minutes} 分钟后再试。"),
                    Lang::Pt => format!("Muitas tentativas. Tente novamente em {minutes} min."),
                }
            }
            AuthError::WrongCode { tries_left } => match lang {
                Lang::Ja => format!("コードが違います。あと{tries_left}回入力できます。"),
                Lang::En => format!("That code is not right. You can try {tries_left} more times."),
                Lang::ZhHans => format!("验证码不正确，还可尝试 {tries_left} 次。"),
                Lang::Pt => format!("Código incorreto. Você pode tentar mais {tries_left} vezes."),
            },
            AuthError::Expired => pick(
                lang,
                "コードの有効期限が切れています。もう一度コードを受け取ってください。",
                "This code has expired. Please ask for a new code.",
                "验证码已过期，请重新获取。",
                "O código expirou. Peça um novo código.",
            )
            .into(),
            AuthError::TooManyTries => pick(
                lang,
                "入力回数の上限に達しました。新しいコードを受け取ってください。",
                "Too many wrong codes. Please ask for a new code.",
                "错误次数过多，请重新获取验证码。",
                "Códigos errados demais. Peça um novo código.",
            )
            .into(),
            AuthError::Database(_) => pick(
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

/// Digits only, Japanese mobile (070/080/090 + 8) or international (+ and 8–15 digits).
pub fn normalise_phone(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    let cleaned: String = cleaned
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            other => other,
        })
        .collect();
    let (plus, digits) = match cleaned.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, cleaned.as_str()),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let ok = if plus {
        (8..=15).contains(&digits.len())
    } else {
        digits.len() == 11 && ["070", "080", "090"].iter().any(|p| digits.starts_with(p))
    };
    ok.then(|| {
        if plus {
            format!("+{digits}")
        } else {
            digits.to_owned()
        }
    })
}

/// `090****5678`: enough to recognise one's own number.
pub fn mask_phone(phone: &str) -> String {
    let n = phone.chars().count();
    phone
        .chars()
        .enumerate()
        .map(|(i, c)| if i >= 3 && i + 4 < n { '*' } else { c })
        .collect()
}

async fn throttle(
    conn: &mut PgConnection,
    tenant: TenantId,
    kind: &str,
    value: &str,
) -> Result<(), AuthError> {
    let (_, limit, minutes) = LIMITS
        .iter()
        .find(|l| l.0 == kind)
        .copied()
        .unwrap_or((kind, 10, 15));
    let b = bucket(tenant, kind, value);
    let (count, retry): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM min(at) + make_interval(mins => $3::int) - now())::float8 \
         FROM login_throttle WHERE tenant_id = $1 AND bucket = $2 AND at > now() - make_interval(mins => $3::int)",
    )
    .bind(tenant.0)
    .bind(&b)
    .bind(minutes as i32)
    .fetch_one(&mut *conn)
    .await?;
    if count >= limit {
        return Err(AuthError::RateLimited {
            retry_after_secs: retry.unwrap_or(60.0).ceil().max(1.0) as i64,
        });
    }
    sqlx::query("INSERT INTO login_throttle (tenant_id, id, bucket) VALUES ($1, $2, $3)")
        .bind(tenant.0)
        .bind(Uuid::new_v4())
        .bind(&b)
        .execute(conn)
        .await?;
    Ok(())
}

/// The answer to a code request: where the code went (masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeSent {
    pub masked_phone: String,
}

/// Step 1: ticket + birth date (+ phone the first time) → a code by SMS.
#[expect(
    clippy::too_many_arguments,
    reason = "each is one field of the login form"
)]
pub async fn request_code(
    pool: &PgPool,
    tenant: &Tenant,
    ticket_no: &str,
    birth_date: NaiveDate,
    phone: Option<&str>,
    client_ip: &str,
    lang: Lang,
    secret: &CodeSecret,
) -> Result<CodeSent, AuthError> {
    // A ticket number with a NUL or another control character is refused before anything is read
    // or written; then throttle, in its own transaction, so refused and failed attempts count too.
    let ticket_no = crate::text::clean_line("ticket_no", ticket_no)?;
    let ticket_no = ticket_no.as_str();
    let mut tx = tenants::begin(pool, tenant.id).await?;
    throttle(&mut tx, tenant.id, "ip", client_ip).await?;
    throttle(&mut tx, tenant.id, "ticket", ticket_no).await?;
    tx.commit().await?;

    let mut tx = tenants::begin(pool, tenant.id).await?;
    let found: Option<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT id, phone FROM residents WHERE tenant_id = $1 AND ticket_no = $2 AND birth_date = $3 FOR UPDATE",
    )
    .bind(tenant.id.0)
    .bind(ticket_no.trim())
    .bind(birth_date)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((resident, on_file)) = found else {
        return Err(AuthError::NotRecognised);
    };
    let given = phone.map(str::trim).filter(|p| !p.is_empty());
    // A number on file wins: someone who knows a ticket and birth date must not redirect the code.
    let phone = match (on_file, given) {
        (Some(p), _) => p,
        (None, None) => return Err(AuthError::PhoneNeeded),
        (None, Some(raw)) => {
            let p = normalise_phone(raw).ok_or(AuthError::BadPhone)?;
            sqlx::query("UPDATE residents SET phone = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2")
                .bind(tenant.id.0)
                .bind(resident)
                .bind(&p)
                .execute(&mut *tx)
                .await?;
            p
        }
    };
    throttle(&mut tx, tenant.id, "phone", &phone).await?;
    let login_id = Uuid::new_v4();
    // The hash needs the code once, here; it is dropped at the end of this statement.
    let hash = code_hash(login_id, &code_for(secret, login_id));
    sqlx::query(
        "INSERT INTO login_codes (tenant_id, id, resident_id, phone, code_hash, expires_at) \
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(mins => $6::int))",
    )
    .bind(tenant.id.0)
    .bind(login_id)
    .bind(resident)
    .bind(&phone)
    .bind(hash)
    .bind(CODE_TTL_MINUTES as i32)
    .execute(&mut *tx)
    .await?;
    outbox::push(
        &mut tx,
        tenant.id.0,
        &format!("login-code:{login_id}"),
        &Notification::LoginCode {
            login_code_id: login_id,
            lang: lang.tag().to_owned(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(CodeSent {
        masked_phone: mask_phone(&phone),
    })
}

/// A new resident session. `token` goes into the cookie / the API client; only its hash is stored.
#[derive(Clone)]
pub struct NewSession {
    pub token: String,
    pub resident_id: Uuid,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("resident_id", &self.resident_id)
            .finish_non_exhaustive()
    }
}

/// Step 2: the code the resident typed, for their ticket → a session.
pub async fn verify_code(
    pool: &PgPool,
    tenant: &Tenant,
    ticket_no: &str,
    code: &str,
) -> Result<NewSession, AuthError> {
    let ticket_no = crate::text::clean_line("ticket_no", ticket_no)?;
    let ticket_no = ticket_no.as_str();
    let mut tx = tenants::begin(pool, tenant.id).await?;
    let latest: Option<(Uuid, Uuid, Vec<u8>, i32, bool)> = sqlx::query_as(
        "SELECT c.id, c.resident_id, c.code_hash, c.attempts, c.expires_at <= now() \
         FROM login_codes c JOIN residents r ON r.tenant_id = c.tenant_id AND r.id = c.resident_id \
         WHERE c.tenant_id = $1 AND r.ticket_no = $2 AND c.used_at IS NULL \
         ORDER BY c.created_at DESC LIMIT 1 FOR UPDATE OF c",
    )
    .bind(tenant.id.0)
    .bind(ticket_no.trim())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((login_id, resident, hash, attempts, expired)) = latest else {
        return Err(AuthError::Expired);
    };
    if expired {
        return Err(AuthError::Expired);
    }
    if attempts >= MAX_TRIES {
        return Err(AuthError::TooManyTries);
    }
    if !code_matches(login_id, &hash, code) {
        sqlx::query(
            "UPDATE login_codes SET attempts = attempts + 1 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.id.0)
        .bind(login_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let left = MAX_TRIES - attempts - 1;
        return Err(if left <= 0 {
            AuthError::TooManyTries
        } else {
            AuthError::WrongCode { tries_left: left }
        });
    }
    sqlx::query("UPDATE login_codes SET used_at = now(), attempts = attempts + 1 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.id.0)
        .bind(login_id)
        .execute(&mut *tx)
        .await?;
    let session = create_session(&mut tx, tenant.id, resident).await?;
    tx.commit().await?;
    Ok(session)
}

/// Whether what the resident typed is the code whose hash is `stored`: its ASCII digits are
/// compared (spaces and dashes a phone keyboard adds do not matter), in constant time.
pub fn code_matches(login_id: Uuid, stored: &[u8], typed: &str) -> bool {
    let digits: String = typed.chars().filter(|c| c.is_ascii_digit()).collect();
    constant_time_eq(&code_hash(login_id, &digits), stored)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a session for a resident (after a correct code; the benchmark uses it to skip SMS).
pub async fn create_session(
    conn: &mut PgConnection,
    tenant: TenantId,
    resident: Uuid,
) -> Result<NewSession, sqlx::Error> {
    use base64::Engine;
    let random: [u8; 32] = rand::random();
    // The tenant is part of the token so an API client needs nothing else to be recognised.
    let token = format!(
        "{}.{}",
        tenant.0.simple(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    let csrf_random: [u8; 24] = rand::random();
    let csrf = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(csrf_random);
    sqlx::query(
        "INSERT INTO resident_sessions (tenant_id, token_hash, resident_id, csrf_token, expires_at) \
         VALUES ($1, $2, $3, $4, now() + make_interval(hours => $5::int))",
    )
    .bind(tenant.0)
    .bind(token_hash(&token))
    .bind(resident)
    .bind(csrf)
    .bind(SESSION_HOURS as i32)
    .execute(conn)
    .await?;
    Ok(NewSession {
        token,
        resident_id: resident,
    })
}

/// Sessions for many residents at once (load tests and imports of pre-verified residents): one
/// statement, tokens returned in the order of `residents`.
pub async fn create_sessions_bulk(
    conn: &mut PgConnection,
    tenant: TenantId,
    residents: &[Uuid],
) -> Result<Vec<String>, sqlx::Error> {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut tokens = Vec::with_capacity(residents.len());
    let mut hashes = Vec::with_capacity(residents.len());
    let mut csrfs = Vec::with_capacity(residents.len());
    for _ in residents {
        let token = format!(
            "{}.{}",
            tenant.0.simple(),
            engine.encode(rand::random::<[u8; 32]>())
        );
        hashes.push(token_hash(&token));
        csrfs.push(engine.encode(rand::random::<[u8; 24]>()));
        tokens.push(token);
    }
    sqlx::query(
        "INSERT INTO resident_sessions (tenant_id, token_hash, resident_id, csrf_token, expires_at) \
         SELECT $1, h, r, c, now() + make_interval(hours => $5::int) \
         FROM unnest($2::bytea[], $3::uuid[], $4::text[]) AS x(h, r, c)",
    )
    .bind(tenant.0)
    .bind(&hashes)
    .bind(residents)
    .bind(&csrfs)
    .bind(SESSION_HOURS as i32)
    .execute(conn)
    .await?;
    Ok(tokens)
}

/// The tenant a session token belongs to (without touching the database).
pub fn tenant_of_token(token: &str) -> Option<TenantId> {
    let (tenant, _) = token.split_once('.')?;
    Uuid::parse_str(tenant).ok().map(TenantId)
}

/// A live session.
#[derive(Clone)]
pub struct ResidentSession {
    pub resident_id: Uuid,
    pub csrf_token: String,
    pub ticket_no: String,
}

impl std::fmt::Debug for ResidentSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResidentSession")
            .field("resident_id", &self.resident_id)
            .finish_non_exhaustive()
    }
}

/// The live session of `token` in `tenant`, if any (whatever the city's status; the resident desk
/// uses [`session_and_city_status`]).
pub async fn session(
    pool: &PgPool,
    tenant: TenantId,
    token: &str,
) -> Result<Option<ResidentSession>, sqlx::Error> {
    Ok(session_and_city_status(pool, tenant, token)
        .await?
        .map(|(s, _)| s))
}

/// The live session of `token` in `tenant` and the city's status read in the same statement, so
/// a check of both costs one round trip and sees the status as it is now (not as a cache saw it).
pub async fn session_and_city_status(
    pool: &PgPool,
    tenant: TenantId,
    token: &str,
) -> Result<Option<(ResidentSession, tenants::TenantStatus)>, sqlx::Error> {
    Ok(check_session(pool, tenant, token)
        .await?
        .map(|c| (c.session, c.status)))
}

/// What one session check read: the session, the city's status and how long the session has
/// left (by the database's clock).
pub(crate) struct SessionCheck {
    pub session: ResidentSession,
    pub status: tenants::TenantStatus,
    pub valid_for: std::time::Duration,
}

pub(crate) async fn check_session(
    pool: &PgPool,
    tenant: TenantId,
    token: &str,
) -> Result<Option<SessionCheck>, sqlx::Error> {
    if tenant_of_token(token) != Some(tenant) {
        return Ok(None);
    }
    let mut tx = tenants::begin(pool, tenant).await?;
    let row: Option<(Uuid, String, String, String, f64)> = sqlx::query_as(
        "SELECT s.resident_id, s.csrf_token, r.ticket_no, t.status, \
                extract(epoch FROM s.expires_at - now())::float8 FROM resident_sessions s \
         JOIN residents r ON r.tenant_id = s.tenant_id AND r.id = s.resident_id \
         JOIN tenants t ON t.id = s.tenant_id \
         WHERE s.tenant_id = $1 AND s.token_hash = $2 AND s.expires_at > now()",
    )
    .bind(tenant.0)
    .bind(token_hash(token))
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    row.map(|(resident_id, csrf_token, ticket_no, status, left)| {
        let status = status
            .parse::<tenants::TenantStatus>()
            .map_err(|e| sqlx::Error::Decode(e.into()))?;
        Ok(SessionCheck {
            session: ResidentSession {
                resident_id,
                csrf_token,
                ticket_no,
            },
            status,
            valid_for: std::time::Duration::try_from_secs_f64(left).unwrap_or_default(),
        })
    })
    .transpose()
}

/// The key a session is cached under (the SHA-256 of its token, as stored).
pub(crate) fn session_key(token: &str) -> crate::residents::sessions::SessionKey {
    Sha256::digest(token.as_bytes()).into()
}

/// Ends a session; every process forgets it (announced on the change feed in the same
/// transaction as the delete, so only a delete that happened is announced).
pub async fn end_session(pool: &PgPool, tenant: TenantId, token: &str) -> Result<(), sqlx::Error> {
    let mut tx = tenants::begin(pool, tenant).await?;
    let ended =
        sqlx::query("DELETE FROM resident_sessions WHERE tenant_id = $1 AND token_hash = $2")
            .bind(tenant.0)
            .bind(token_hash(token))
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if ended > 0 {
        crate::changes::announce(
            &mut tx,
            &crate::changes::Change::SessionEnded {
                tenant,
                key: session_key(token),
            },
        )
        .await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_depend_on_the_secret() {
        let id = Uuid::new_v4();
        let a = code_for(&CodeSecret::from_setting("a"), id);
        let b = code_for(&CodeSecret::from_setting("b"), id);
        assert_eq!(a.len(), 6);
        assert!(a.chars().all(|c| c.is_ascii_digit()));
        assert_ne!(a, b, "(one in a million this fails by chance)");
    }

    #[test]
    fn phones_are_normalised_and_masked() {
        assert_eq!(
            normalise_phone("090-1234-5678").as_deref(),
            Some("09012345678")
        );
        assert_eq!(
            normalise_phone("０９０１２３４５６７８").as_deref(),
            Some("09012345678")
        );
        assert_eq!(normalise_phone("12345"), None);
        assert_eq!(mask_phone("09012345678"), "090****5678");
    }
}
