//! Onboarding and staff management: the operator registers a city and invites its first admin; a
//! city admin invites staff with roles. Each invitation is a single-use link to set a first password.

use serde_json::json;
use tenants::{NewTenant, Tenant, TenantId, TenantStatus};
use uuid::Uuid;

use crate::staff::audit;
use crate::staff::authz::{Authz, AuthzError, PlatformScope, Role, Scope, staff_subject};
use crate::staff::identity::{self, AuthPolicy, IdentityError, LinkPurpose};

#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Registry(#[from] tenants::RegistryError),
    #[error(transparent)]
    Authz(#[from] AuthzError),
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Registers a municipality (status onboarding).
pub async fn onboard(scope: &PlatformScope, new: &NewTenant) -> Result<Tenant, StaffError> {
    let tenant = tenants::create_tenant(&scope.pool, new).await?;
    audit::record_platform(
        &scope.pool,
        &scope.actor,
        "tenant.onboard",
        &format!("tenant/{}", tenant.slug),
        json!({ "name": tenant.name, "code": tenant.local_government_code }),
    )
    .await?;
    Ok(tenant)
}

/// Onboarding / active / suspended. The status, its audit entry and its announcement on the
/// change feed commit together. The guard's copy of the status in this process is dropped at
/// once after the commit, so a suspension applies to the very next request here; other processes
/// drop theirs when the feed delivers the change (at most [`crate::tenant_cache::TENANT_TTL`]
/// later while their listener is down).
pub async fn set_status(
    scope: &PlatformScope,
    authz: &Authz,
    tenant: &Tenant,
    status: TenantStatus,
) -> Result<(), StaffError> {
    let mut tx = scope.pool.begin().await?;
    tenants::set_status(&mut *tx, tenant.id, status).await?;
    crate::changes::announce(&mut tx, &crate::changes::Change::Tenant(tenant.id)).await?;
    audit::record_platform_in(
        &mut tx,
        &scope.actor,
        "tenant.status",
        &format!("tenant/{}", tenant.slug),
        json!({ "status": status.as_str() }),
    )
    .await?;
    tx.commit().await?;
    authz.forget_tenant_status(tenant.id);
    Ok(())
}

/// An invitation that was issued: the person and the one-time token for the link.
pub struct Invitation {
    pub account_id: Uuid,
    pub email: String,
    pub token: String,
}

/// The operator invites the first city admin of a tenant (a link only for an account without a
/// password). The grant is recorded in the tenant's
/// audit log by a tenant-scoped write, since it changes who may see the tenant's data.
pub async fn invite_first_admin(
    scope: &PlatformScope,
    authz: &Authz,
    policy: &AuthPolicy,
    tenant: TenantId,
    email: &str,
) -> Result<Option<Invitation>, StaffError> {
    let account = identity::ensure_account(&scope.pool, email, "").await?;
    authz
        .grant(&staff_subject(account.id), tenant, Role::CityAdmin, &[])
        .await?;
    // someone who has a password already keeps it (and gets the role when they log in)
    let token = if account.active {
        None
    } else {
        Some(identity::issue_link(&scope.pool, policy, account.id, LinkPurpose::Invitation).await?)
    };
    let mut tx = tenants::begin(&scope.pool, tenant).await?;
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, id, actor, action, object, detail, ip) \
         VALUES ($1, $2, $3, 'role.grant', $4, $5, $6)",
    )
    .bind(tenant.0)
    .bind(Uuid::now_v7())
    .bind(&scope.actor.label)
    .bind(format!("staff/{}", account.id))
    .bind(json!({ "email": account.email, "role": "city_admin", "by": "platform operator" }))
    .bind(&scope.actor.ip)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(token.map(|token| Invitation {
        account_id: account.id,
        email: account.email,
        token,
    }))
}

/// A city admin invites a person with a role (venue-scoped roles need at least one venue).
/// People who have a password already keep it: the link is only issued to new accounts that work
/// for no other tenant (None otherwise: the role applies once they log in).
pub async fn invite(
    scope: &mut Scope,
    authz: &Authz,
    policy: &AuthPolicy,
    pool: &sqlx::PgPool,
    email: &str,
    role: Role,
    venues: &[Uuid],
) -> Result<Option<Invitation>, StaffError> {
    if role == Role::PlatformOperator {
        return Err(StaffError::Invalid(
            "the platform operator role cannot be granted here".into(),
        ));
    }
    if role.is_venue_scoped() && venues.is_empty() {
        return Err(StaffError::Invalid(
            "choose at least one venue for venue or hospital staff".into(),
        ));
    }
    for venue in venues {
        let known: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM venues WHERE id = $1)")
            .bind(venue)
            .fetch_one(&mut *scope.tx)
            .await?;
        if !known {
            return Err(StaffError::Invalid(
                "choose one of the city's venues".into(),
            ));
        }
    }
    let account = identity::ensure_account(pool, email, "").await?;
    authz
        .grant(&staff_subject(account.id), scope.tenant_id(), role, venues)
        .await?;
    audit::record(
        scope,
        "role.grant",
        &format!("staff/{}", account.id),
        json!({ "email": account.email, "role": role.as_str(), "venues": venues }),
    )
    .await?;
    // A link sets the password; never hand one out for an account that (also) works elsewhere,
    // or this city's admin could take over a pending invitation of another city.
    let tenant = scope.tenant_id().to_string();
    let elsewhere = authz
        .memberships(&staff_subject(account.id))
        .await
        .iter()
        .any(|(domain, _)| *domain != tenant);
    if account.active || elsewhere {
        return Ok(None);
    }
    let token = identity::issue_link(pool, policy, account.id, LinkPurpose::Invitation).await?;
    Ok(Some(Invitation {
        account_id: account.id,
        email: account.email,
        token,
    }))
}

/// One member of the tenant's staff with their roles.
pub struct Member {
    pub account_id: Uuid,
    pub email: String,
    pub roles: Vec<String>,
    pub venues: Vec<Uuid>,
    pub active: bool,
}

pub async fn members(
    scope: &mut Scope,
    authz: &Authz,
    pool: &sqlx::PgPool,
) -> Result<Vec<Member>, StaffError> {
    let tenant = scope.tenant_id();
    let grants = authz.tenant_grants(tenant).await;
    let mut by_account: Vec<Member> = Vec::new();
    for (subject, role) in grants {
        let Some(id) = subject
            .strip_prefix("staff:")
            .and_then(|s| Uuid::parse_str(s).ok())
        else {
            continue;
        };
        if let Some(m) = by_account.iter_mut().find(|m| m.account_id == id) {
            m.roles.push(role);
            continue;
        }
        let Some(account) = identity::find_by_id(pool, id).await? else {
            continue;
        };
        by_account.push(Member {
            account_id: id,
            email: account.email,
            roles: vec![role],
            venues: authz.assigned_venues(&subject, tenant).await,
            active: account.active,
        });
    }
    by_account.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(by_account)
}

/// Removes every role of a person in the tenant.
pub async fn remove(scope: &mut Scope, authz: &Authz, account: Uuid) -> Result<(), StaffError> {
    authz
        .revoke_all(&staff_subject(account), scope.tenant_id())
        .await?;
    audit::record(scope, "role.revoke", &format!("staff/{account}"), json!({})).await?;
    Ok(())
}

/// A password-reset link for a member of the scope's tenant, to be handed over by the admin. Refused
/// for people who also work for another tenant or the platform: otherwise one city's admin could
/// take over an account that reaches another city's data.
pub async fn password_reset_link(
    scope: &mut Scope,
    authz: &Authz,
    policy: &AuthPolicy,
    pool: &sqlx::PgPool,
    account: Uuid,
) -> Result<String, StaffError> {
    let subject = staff_subject(account);
    let tenant = scope.tenant_id().to_string();
    let memberships = authz.memberships(&subject).await;
    if !memberships.iter().any(|(domain, _)| *domain == tenant) {
        return Err(StaffError::NotFound);
    }
    if memberships.iter().any(|(domain, _)| *domain != tenant) {
        return Err(StaffError::Invalid(
            "this person also works for another municipality or the platform; ask the platform operator to reset the password".into(),
        ));
    }
    let token = identity::issue_link(pool, policy, account, LinkPurpose::PasswordReset).await?;
    audit::record(
        scope,
        "staff.password_reset_link",
        &format!("staff/{account}"),
        json!({}),
    )
    .await?;
    Ok(token)
}
