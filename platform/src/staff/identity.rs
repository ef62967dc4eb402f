//! Staff identity: accounts (e-mail + argon2id password), server-side sessions, single-use links
//! (invitation, password reset) and login throttling. These tables are deliberately cross-tenant
//! (a person logs in before the tenant is known); what a person may do in a tenant is decided by
//! [`crate::staff::authz`].
//!
//! Secrets (passwords, session tokens, link tokens) never leave this module except as the one value
//! handed to the caller to put in a cookie or link; the database only holds hashes.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// The knobs of identity, from the server's settings (`[auth]`).
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    pub max_login_failures: i64,
    pub throttle_window: Duration,
    pub invitation_valid: Duration,
    pub reset_valid: Duration,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            argon2_memory_kib: Params::DEFAULT_M_COST,
            argon2_iterations: Params::DEFAULT_T_COST,
            argon2_parallelism: Params::DEFAULT_P_COST,
            session_idle: Duration::minutes(30),
            session_absolute: Duration::hours(12),
            max_login_failures: 5,
            throttle_window: Duration::minutes(15),
            invitation_valid: Duration::hours(72),
            reset_valid: Duration::minutes(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("e-mail address or password is wrong")]
    BadCredentials,
    #[error("too many failed logins; try again in {0} minutes")]
    Throttled(i64),
    #[error("this link is invalid, already used or expired; ask for a new one")]
    BadLink,
    #[error("{0}")]
    Invalid(String),
    #[error("password hashing failed")]
    Hash,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A staff member as the rest of the code sees them after login.
#[derive(Debug, Clone)]
pub struct StaffAccount {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub active: bool,
}

/// A live session: who, and the CSRF token every form of this session must carry.
#[derive(Debug, Clone)]
pub struct Session {
    pub account: StaffAccount,
    pub csrf_token: String,
}

/// A new random secret (256 bits) as URL-safe text.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Equality that takes the same time wherever the first difference is.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Parses an e-mail address at the edge: trimmed, lower-case, one '@' with text on both sides.
pub fn parse_email(raw: &str) -> Result<String, IdentityError> {
    let email = raw.trim().to_lowercase();
    let ok = email.len() <= 254
        && email.split('@').count() == 2
        && email.split('@').all(|p| !p.is_empty())
        && !email.contains(char::is_whitespace);
    if ok {
        Ok(email)
    } else {
        Err(IdentityError::Invalid(format!(
            "{:?} is not an e-mail address",
            raw.trim()
        )))
    }
}

fn argon2(policy: &AuthPolicy) -> Result<Argon2<'static>, IdentityError> {
    let params = Params::new(
        policy.argon2_memory_kib,
        policy.argon2_iterations,
        policy.argon2_parallelism,
        None,
    )
    .map_err(|_| IdentityError::Hash)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// An argon2id PHC string (`$argon2id$v=19$m=…`) with a fresh salt.
pub fn hash_password(policy: &AuthPolicy, password: &str) -> Result<String, IdentityError> {
    if password.chars().count() < 10 {
        return Err(IdentityError::Invalid(
            "the password must be at least 10 characters long".into(),
        ));
    }
    argon2(policy)?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| IdentityError::Hash)
}

fn verify_password(policy: &AuthPolicy, password: &str, phc: &str) -> bool {
    // the parameters in the PHC string win over the policy's, so old hashes keep verifying
    argon2(policy)
        .map(|a| a.verify_password(password.as_bytes(), phc).is_ok())
        .unwrap_or(false)
}

fn account_from_row(row: &sqlx::postgres::PgRow) -> Result<StaffAccount, sqlx::Error> {
    let hash: Option<String> = row.try_get("password_hash")?;
    let disabled: bool = row.try_get("disabled")?;
    Ok(StaffAccount {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        display_name: row.try_get("display_name")?,
        active: hash.is_some() && !disabled,
    })
}

pub async fn find_by_email(
    pool: &PgPool,
    email: &str,
) -> Result<Option<StaffAccount>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, email, display_name, password_hash, disabled FROM staff_accounts WHERE email = $1",
    )
    .bind(email.trim().to_lowercase())
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(account_from_row).transpose()
}

pub async fn find_by_id(pool: &PgPool, id: Uuid) -> Result<Option<StaffAccount>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, email, display_name, password_hash, disabled FROM staff_accounts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(account_from_row).transpose()
}

/// The account with this e-mail, created (without a password) if there is none yet. Inviting a
/// person who already works for another city adds a role, not a second account.
pub async fn ensure_account(
    pool: &PgPool,
    email: &str,
    display_name: &str,
) -> Result<StaffAccount, IdentityError> {
    let email = parse_email(email)?;
    sqlx::query(
        "INSERT INTO staff_accounts (id, email, display_name) VALUES ($1, $2, $3) \
         ON CONFLICT (email) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(&email)
    .bind(display_name.trim())
    .execute(pool)
    .await?;
    find_by_email(pool, &email)
        .await?
        .ok_or(IdentityError::Invalid("account vanished".into()))
}

/// Creates an account with a password at once (the first platform operator, tests, the demo).
pub async fn create_with_password(
    pool: &PgPool,
    policy: &AuthPolicy,
    email: &str,
    password: &str,
) -> Result<StaffAccount, IdentityError> {
    let account = ensure_account(pool, email, "").await?;
    let hash = hash_password(policy, password)?;
    sqlx::query("UPDATE staff_accounts SET password_hash = $2 WHERE id = $1")
        .bind(account.id)
        .bind(hash)
        .execute(pool)
        .await?;
    Ok(StaffAccount {
        active: true,
        ..account
    })
}

/// Creates a single-use link token for `purpose` ("invitation" or "password_reset"); returns the
/// token to put in the link (only its hash is stored).
pub async fn issue_link(
    pool: &PgPool,
    policy: &AuthPolicy,
    account: Uuid,
    purpose: LinkPurpose,
) -> Result<String, sqlx::Error> {
    let token = random_token();
    let valid = match purpose {
        LinkPurpose::Invitation => policy.invitation_valid,
        LinkPurpose::PasswordReset => policy.reset_valid,
    };
    sqlx::query(
        "INSERT INTO staff_tokens (token_hash, account_id, purpose, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash(&token))
    .bind(account)
    .bind(purpose.as_str())
    .bind(Utc::now() + valid)
    .execute(pool)
    .await?;
    Ok(token)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    Invitation,
    PasswordReset,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invitation => "invitation",
            Self::PasswordReset => "password_reset",
        }
    }
}

/// The account a still-valid link belongs to (for showing the "set your password" page).
pub async fn peek_link(
    pool: &PgPool,
    token: &str,
    purpose: LinkPurpose,
) -> Result<StaffAccount, IdentityError> {
    let row = sqlx::query(
        "SELECT a.id, a.email, a.display_name, a.password_hash, a.disabled FROM staff_tokens t \
         JOIN staff_accounts a ON a.id = t.account_id \
         WHERE t.token_hash = $1 AND t.purpose = $2 AND t.used_at IS NULL AND t.expires_at > now()",
    )
    .bind(token_hash(token))
    .bind(purpose.as_str())
    .fetch_optional(pool)
    .await?;
    row.as_ref()
        .map(account_from_row)
        .transpose()?
        .ok_or(IdentityError::BadLink)
}

/// Uses the link once: sets the password and ends every existing session of the account.
pub async fn redeem_link(
    pool: &PgPool,
    policy: &AuthPolicy,
    token: &str,
    purpose: LinkPurpose,
    new_password: &str,
) -> Result<StaffAccount, IdentityError> {
    let hash = hash_password(policy, new_password)?;
    let mut tx = pool.begin().await?;
    // the conditional UPDATE is the single-use guarantee: a second redemption finds no row
    let account: Option<Uuid> = sqlx::query_scalar(
        "UPDATE staff_tokens SET used_at = now() \
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now() \
         RETURNING account_id",
    )
    .bind(token_hash(token))
    .bind(purpose.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let account = account.ok_or(IdentityError::BadLink)?;
    sqlx::query("UPDATE staff_accounts SET password_hash = $2 WHERE id = $1")
        .bind(account)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM staff_sessions WHERE account_id = $1")
        .bind(account)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    find_by_id(pool, account)
        .await?
        .ok_or(IdentityError::BadLink)
}

async fn failures(pool: &PgPool, key: &str, policy: &AuthPolicy) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM login_failures WHERE key = $1 AND at > $2")
        .bind(key)
        .bind(Utc::now() - policy.throttle_window)
        .fetch_one(pool)
        .await
}

async fn record_failure(pool: &PgPool, key: &str, policy: &AuthPolicy) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failures WHERE key = $1 AND at <= $2")
        .bind(key)
        .bind(Utc::now() - policy.throttle_window)
        .execute(pool)
        .await?;
    sqlx::query("INSERT INTO login_failures (key) VALUES ($1)")
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}

/// A staff login as the admin UI makes it: [`login`], then the entry in the platform audit log and in
/// the log of every tenant the person works for (their auditors see who logged in to their data).
/// Returns the session token for the cookie, the session and the actor.
pub async fn staff_login(
    pool: &PgPool,
    policy: &AuthPolicy,
    authz: &crate::staff::authz::Authz,
    email: &str,
    password: &str,
    ip: &str,
) -> Result<(String, Session, crate::staff::authz::Actor), IdentityError> {
    let (token, session) = login(pool, policy, email, password, ip).await?;
    let actor = crate::staff::authz::Actor::staff(
        session.account.id,
        &session.account.email,
        Some(ip.to_owned()),
    );
    let tenants: Vec<tenants::TenantId> = authz
        .memberships(&actor.subject)
        .await
        .into_iter()
        .filter_map(|(domain, _)| Uuid::parse_str(&domain).ok().map(tenants::TenantId))
        .collect();
    crate::staff::audit::record_login(pool, &actor, &tenants).await?;
    Ok((token, session, actor))
}

/// Logs in: checks the throttle (per account and per IP; the IP limit is ten times the account
/// limit, since many staff may share an office address), then the password. On success returns the
/// session token for the cookie and the session.
pub async fn login(
    pool: &PgPool,
    policy: &AuthPolicy,
    email: &str,
    password: &str,
    ip: &str,
) -> Result<(String, Session), IdentityError> {
    let email = email.trim().to_lowercase();
    let account_key = format!("account:{email}");
    let ip_key = format!("ip:{ip}");
    if failures(pool, &account_key, policy).await? >= policy.max_login_failures
        || failures(pool, &ip_key, policy).await? >= policy.max_login_failures * 10
    {
        return Err(IdentityError::Throttled(
            policy.throttle_window.num_minutes(),
        ));
    }
    let row = sqlx::query(
        "SELECT id, email, display_name, password_hash, disabled FROM staff_accounts WHERE email = $1",
    )
    .bind(&email)
    .fetch_optional(pool)
    .await?;
    let verified = match &row {
        Some(row) => {
            let hash: Option<String> = row.try_get("password_hash")?;
            let disabled: bool = row.try_get("disabled")?;
            !disabled
                && hash
                    .as_deref()
                    .is_some_and(|h| verify_password(policy, password, h))
        }
        None => {
            // spend the same time as a real check, so response times do not reveal accounts
            let _ = hash_password(policy, "not-a-real-password-0000");
            false
        }
    };
    let Some(row) = row.filter(|_| verified) else {
        record_failure(pool, &account_key, policy).await?;
        record_failure(pool, &ip_key, policy).await?;
        return Err(IdentityError::BadCredentials);
    };
    let account = account_from_row(&row)?;
    sqlx::query("DELETE FROM login_failures WHERE key = $1")
        .bind(&account_key)
        .execute(pool)
        .await?;
    let token = random_token();
    let csrf_token = random_token();
    sqlx::query(
        "INSERT INTO staff_sessions (token_hash, account_id, csrf_token) VALUES ($1, $2, $3)",
    )
    .bind(token_hash(&token))
    .bind(account.id)
    .bind(&csrf_token)
    .execute(pool)
    .await?;
    Ok((
        token,
        Session {
            account,
            csrf_token,
        },
    ))
}

/// The session behind a cookie value, if it is still within its idle and absolute lifetime; touching
/// it extends the idle lifetime.
pub async fn session(
    pool: &PgPool,
    policy: &AuthPolicy,
    token: &str,
) -> Result<Option<Session>, sqlx::Error> {
    let now: DateTime<Utc> = Utc::now();
    let row = sqlx::query(
        "UPDATE staff_sessions s SET last_seen_at = now() FROM staff_accounts a \
         WHERE s.token_hash = $1 AND a.id = s.account_id AND NOT a.disabled \
           AND s.last_seen_at > $2 AND s.created_at > $3 \
         RETURNING a.id, a.email, a.display_name, a.password_hash, a.disabled, s.csrf_token",
    )
    .bind(token_hash(token))
    .bind(now - policy.session_idle)
    .bind(now - policy.session_absolute)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(row) => Ok(Some(Session {
            account: account_from_row(&row)?,
            csrf_token: row.try_get("csrf_token")?,
        })),
        None => Ok(None),
    }
}

pub async fn logout(pool: &PgPool, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM staff_sessions WHERE token_hash = $1")
        .bind(token_hash(token))
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> AuthPolicy {
        AuthPolicy {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            ..AuthPolicy::default()
        }
    }

    #[test]
    fn passwords_hash_to_argon2id_and_verify() {
        let h = hash_password(&cheap(), "correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify_password(&cheap(), "correct horse battery", &h));
        assert!(!verify_password(&cheap(), "wrong horse battery", &h));
    }

    #[test]
    fn short_passwords_are_refused_with_a_reason() {
        let err = hash_password(&cheap(), "short").unwrap_err().to_string();
        assert!(err.contains("at least 10"), "{err}");
    }

    #[test]
    fn e_mail_addresses_are_normalised_at_the_edge() {
        assert_eq!(parse_email(" Ann@City.JP ").unwrap(), "ann@city.jp");
        for bad in ["", "ann", "@city.jp", "ann@", "a b@c.jp", "a@b@c"] {
            assert!(parse_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
