//! Authorization: casbin "RBAC with domains", the domain being the tenant, and the one guard every
//! GraphQL resolver and every admin page goes through.
//!
//! The guard hands out a [`Scope`] (a tenant-scoped transaction plus the actor) only after the check,
//! and every tenant-owned operation in `platform` takes a `&mut Scope`, so a handler cannot reach a
//! tenant's data without having asked first (the lldap pattern).
//!
//! Rules live in `authz_rules` (casbin's ptype, v0…v5) and are read and written by [`PgAdapter`] (`policy_store.rs`), our
//! own casbin adapter on sqlx 0.9 (STACK.md: why not `sqlx-adapter`).
//! * role rules `p, <role>, *, <object>, <action>` (seeded by the migration);
//! * role grants `g, <subject>, <role>, <tenant id>`; the platform operator's domain is `*`;
//! * venue assignments and API-key scopes are personal rules `p, <subject>, <tenant id>, <object>, <action>`.
//!
//! The guard also decides on the tenant's status, once, here: a suspended city is closed to
//! everyone but the platform operator (staff sessions and API keys alike get
//! [`Denied::Suspended`]); a city being onboarded is open to its staff and keys (they set it up).
//! The status is read through the process's one tenant cache ([`TenantCache`]); the operator's
//! status change ([`crate::staff::set_status`]) drops the entry at once.

use std::sync::Arc;

use casbin::{CoreApi, DefaultModel, Enforcer, MgmtApi, RbacApi};
use sqlx::PgPool;
use tenants::{TenantId, TenantStatus, TenantTx};
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::tenant_cache::TenantCache;

pub use super::policy_store::PgAdapter;

const MODEL: &str = r#"
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = (g(r.sub, p.sub, r.dom) || g(r.sub, p.sub, "*")) && (p.dom == "*" || p.dom == r.dom) && keyMatch(r.obj, p.obj) && (p.act == "*" || p.act == r.act)
"#;

/// The casbin domain of platform-wide objects (the tenant list).
pub const PLATFORM: &str = "platform";

/// Every role there is; the order is the order the admin UI offers them in.
pub const ROLES: [Role; 7] = [
    Role::CityAdmin,
    Role::CityStaff,
    Role::VenueStaff,
    Role::HospitalStaff,
    Role::CallCenter,
    Role::Auditor,
    Role::PlatformOperator,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    PlatformOperator,
    CityAdmin,
    CityStaff,
    VenueStaff,
    HospitalStaff,
    CallCenter,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlatformOperator => "platform_operator",
            Self::CityAdmin => "city_admin",
            Self::CityStaff => "city_staff",
            Self::VenueStaff => "venue_staff",
            Self::HospitalStaff => "hospital_staff",
            Self::CallCenter => "call_center",
            Self::Auditor => "auditor",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        ROLES.into_iter().find(|r| r.as_str() == raw)
    }
    /// Roles that only mean something together with assigned venues.
    pub fn is_venue_scoped(self) -> bool {
        matches!(self, Self::VenueStaff | Self::HospitalStaff)
    }
}

/// What is being accessed. A specific venue (its page, schedules and slots) is its own object so
/// venue staff can be limited to theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Tenants,
    Staff,
    Vaccines,
    Venues,
    Venue(Uuid),
    Residents,
    Imports,
    Audit,
    ApiKeys,
    /// Usage, contract and invoices of the tenant (city admin, auditor, platform operator).
    Billing,
    /// Aggregate booking statistics (no personal data).
    Statistics,
    /// The call centre: resident search by kana / birth date / ticket, booking on behalf.
    CallCenter,
    /// Export jobs: read = list and download, write = create.
    Exports,
    /// Passing a venue's booking deadline or change/cancel cut-off on a resident's behalf.
    BookingOverride,
    /// The venue intake list and its steps; always checked together with `Venue(id)`
    /// (`intake::enter`), so venue staff stay on their venues and the call centre has none.
    Intake,
    /// Notification channels (masked credentials), templates and the SMS budget (city admin).
    Notifications,
    /// Delivery log of notifications (masked recipients; city staff may read it).
    DeliveryLog,
    /// Event webhook subscriptions and their delivery log (city admin; the auditor reads).
    Webhooks,
    /// A city's bookings: read = page through them (resident ids, audited), write = book, change
    /// and cancel on a resident's behalf (GraphQL; the call centre pages use `CallCenter`).
    Bookings,
    /// A city's vaccination records, city-wide (GraphQL `city { vaccinations }`; personal and
    /// health data, audited per page): city staff, auditors (read), city admins, the operator.
    Records,
}

impl Object {
    pub fn casbin(self) -> String {
        match self {
            Self::Tenants => "tenants".into(),
            Self::Staff => "staff".into(),
            Self::Vaccines => "vaccines".into(),
            Self::Venues => "venues".into(),
            Self::Venue(id) => format!("venue/{id}/"),
            Self::Residents => "residents".into(),
            Self::Imports => "imports".into(),
            Self::Audit => "audit".into(),
            Self::ApiKeys => "api_keys".into(),
            Self::Billing => "billing".into(),
            Self::Statistics => "statistics".into(),
            Self::CallCenter => "callcenter".into(),
            Self::Exports => "exports".into(),
            Self::BookingOverride => "booking_override".into(),
            Self::Intake => "intake".into(),
            Self::Notifications => "notifications".into(),
            Self::DeliveryLog => "delivery_log".into(),
            Self::Webhooks => "webhooks".into(),
            Self::Bookings => "bookings".into(),
            Self::Records => "records".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Read,
    Write,
}

impl Act {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// Who is asking: a logged-in staff member or an integrator's API key, and from where.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The casbin subject: `staff:<uuid>` or `apikey:<uuid>`.
    pub subject: String,
    /// What the audit log shows: the e-mail address or `API key <name>`.
    pub label: String,
    pub ip: Option<String>,
}

impl Actor {
    pub fn staff(id: Uuid, email: &str, ip: Option<String>) -> Self {
        Self {
            subject: staff_subject(id),
            label: email.to_owned(),
            ip,
        }
    }
}

pub fn staff_subject(id: Uuid) -> String {
    format!("staff:{id}")
}

/// Why the guard said no. `NotFound` when the actor has nothing to do with the tenant or the object
/// (another tenant's ids, another venue): no existence oracle. `Forbidden` when the actor works for
/// the tenant but their role does not allow this.
///
/// `Suspended` when the tenant is suspended and the actor works for it (staff or API key) but is not
/// the platform operator: no data, whatever the role (front ends show [`SUSPENDED_MESSAGE`]).
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    #[error("not found")]
    NotFound,
    #[error("your role does not allow this")]
    Forbidden,
    #[error("{}", SUSPENDED_MESSAGE.1)]
    Suspended,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a suspended city's staff and API keys are told (Japanese, English).
pub const SUSPENDED_MESSAGE: (&str, &str) = (
    "この自治体の利用は停止されています。プラットフォーム運営者にお問い合わせください。",
    "This municipality is suspended; contact the platform operator.",
);

/// A capability: the check passed, this is the tenant's transaction and who acts in it.
///
/// The transaction is private to `platform`: front ends hold a scope and pass it to platform
/// functions, which run the SQL and write the audit entry; they cannot run SQL in it themselves.
pub struct Scope {
    pub(crate) tx: TenantTx,
    pub actor: Actor,
}

impl Scope {
    pub fn tenant_id(&self) -> TenantId {
        self.tx.tenant_id()
    }
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

/// A capability for platform-wide work (the tenant registry): only the platform operator gets one.
pub struct PlatformScope {
    pub pool: PgPool,
    pub actor: Actor,
}

/// The one guard. Cheap to clone; one enforcer per process.
#[derive(Clone)]
pub struct Authz {
    pool: PgPool,
    enforcer: Arc<RwLock<Enforcer>>,
    tenants: TenantCache,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error("authorization policy: {0}")]
    Casbin(#[from] casbin::Error),
}

impl Authz {
    /// Loads every rule from `authz_rules`.
    pub async fn load(pool: PgPool) -> Result<Self, AuthzError> {
        let model = DefaultModel::from_str(MODEL).await?;
        let adapter = PgAdapter::new(pool.clone());
        let enforcer = Enforcer::new(model, adapter).await?;
        Ok(Self {
            pool,
            enforcer: Arc::new(RwLock::new(enforcer)),
            tenants: TenantCache::new(),
        })
    }

    /// Re-reads the rules (after another process changed them, or in tests after direct SQL).
    pub async fn reload(&self) -> Result<(), AuthzError> {
        self.enforcer.write().await.load_policy().await?;
        Ok(())
    }

    /// Re-reads the policy every `every`, so role changes made by other server processes apply here
    /// too; stops when the pool is closed.
    pub fn spawn_reload(&self, every: std::time::Duration) {
        let authz = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if authz.pool.is_closed() {
                    break;
                }
                if let Err(e) = authz.reload().await {
                    tracing::warn!(error = %e, "reloading the authorization policy failed; keeping the old one");
                }
            }
        });
    }

    async fn allowed(&self, subject: &str, domain: &str, obj: &str, act: Act) -> bool {
        let enforcer = self.enforcer.read().await;
        match enforcer.enforce((subject, domain, obj, act.as_str())) {
            Ok(allowed) => allowed,
            Err(e) => {
                tracing::error!(error = %e, "casbin enforce failed; denying");
                false
            }
        }
    }

    /// Does the actor hold any role in the tenant (or everywhere)?
    pub async fn is_member(&self, actor: &Actor, tenant: TenantId) -> bool {
        let enforcer = self.enforcer.read().await;
        let domain = tenant.to_string();
        if !enforcer
            .get_roles_for_user(&actor.subject, Some(&domain))
            .is_empty()
            || !enforcer
                .get_roles_for_user(&actor.subject, Some("*"))
                .is_empty()
        {
            return true;
        }
        // an API key holds no role, only personal rules in its tenant
        !enforcer
            .get_filtered_policy(0, vec![actor.subject.clone(), domain])
            .is_empty()
    }

    /// The tenant's status (None: no such tenant), through the process's one tenant cache
    /// ([`TenantCache`], entries live [`crate::tenant_cache::TENANT_TTL`]).
    pub async fn tenant_status(
        &self,
        tenant: TenantId,
    ) -> Result<Option<TenantStatus>, sqlx::Error> {
        Ok(self
            .tenants
            .by_id(&self.pool, tenant)
            .await?
            .map(|t| t.status))
    }

    /// Drops this process's copy of the tenant (its status was just changed): the guard and the
    /// resident desk, which share the cache ([`Self::tenant_cache`]), both read it afresh.
    pub fn forget_tenant_status(&self, tenant: TenantId) {
        self.tenants.forget(tenant);
    }

    /// The tenant cache this guard reads through, for the resident desk to share.
    pub fn tenant_cache(&self) -> TenantCache {
        self.tenants.clone()
    }

    /// The tenant-status half of the guard, for every caller that reaches a tenant: a suspended
    /// tenant admits only the platform operator; its own staff and API keys are told it is
    /// suspended, everyone else that it does not exist (no existence oracle). Onboarding and
    /// active tenants admit their members (the role check follows in [`Authz::enter`]).
    /// Fields that only name the city (GraphQL `city`, the city's start page) call this alone.
    pub async fn admit(&self, actor: &Actor, tenant: TenantId) -> Result<(), Denied> {
        match self.tenant_status(tenant).await? {
            None => Err(Denied::NotFound),
            Some(TenantStatus::Suspended) => {
                if self.is_platform_operator(actor).await {
                    Ok(())
                } else if self.is_member(actor, tenant).await {
                    tracing::info!(actor = %actor.subject, tenant = %tenant, "tenant suspended");
                    Err(Denied::Suspended)
                } else {
                    Err(Denied::NotFound)
                }
            }
            Some(TenantStatus::Onboarding | TenantStatus::Active) => {
                if self.is_member(actor, tenant).await {
                    Ok(())
                } else {
                    Err(Denied::NotFound)
                }
            }
        }
    }

    /// The whole decision without a transaction: tenant status ([`Authz::admit`]), then the
    /// role. Denials: a venue outside the assignment or a stranger → `NotFound`; a member whose
    /// role is too small → `Forbidden`; a suspended tenant's member → `Suspended`.
    pub async fn allow(
        &self,
        actor: &Actor,
        tenant: TenantId,
        object: Object,
        act: Act,
    ) -> Result<(), Denied> {
        if self.check(actor, tenant, object, act).await? {
            return Ok(());
        }
        tracing::info!(actor = %actor.subject, object = %object.casbin(), act = act.as_str(), "denied");
        Err(if matches!(object, Object::Venue(_)) {
            Denied::NotFound
        } else {
            Denied::Forbidden
        })
    }

    /// The check for tenant-owned work ([`Authz::allow`]). On success, the tenant's transaction.
    pub async fn enter(
        &self,
        actor: &Actor,
        tenant: TenantId,
        object: Object,
        act: Act,
    ) -> Result<Scope, Denied> {
        self.allow(actor, tenant, object, act).await?;
        tenants::record_in_span(tenant);
        tenants::record_user_in_span(&actor.subject);
        let tx = tenants::begin(&self.pool, tenant).await?;
        Ok(Scope {
            tx,
            actor: actor.clone(),
        })
    }

    /// A scope for the command line, which runs with the database owner's credentials and so is
    /// trusted already; the actor names the OS user in the audit log.
    pub async fn enter_as_system(&self, tenant: TenantId, label: &str) -> Result<Scope, Denied> {
        let tx = tenants::begin(&self.pool, tenant).await?;
        Ok(Scope {
            tx,
            actor: Actor {
                subject: "system".into(),
                label: label.to_owned(),
                ip: None,
            },
        })
    }

    /// The decision alone, for showing or hiding links. The tenant's status is checked first
    /// ([`Authz::admit`]): a suspended tenant answers `Err(Suspended)`, a stranger `Err(NotFound)`.
    pub async fn check(
        &self,
        actor: &Actor,
        tenant: TenantId,
        object: Object,
        act: Act,
    ) -> Result<bool, Denied> {
        self.admit(actor, tenant).await?;
        Ok(self
            .allowed(&actor.subject, &tenant.to_string(), &object.casbin(), act)
            .await)
    }

    /// The check for platform-wide work.
    pub async fn enter_platform(&self, actor: &Actor, act: Act) -> Result<PlatformScope, Denied> {
        if self
            .allowed(&actor.subject, PLATFORM, &Object::Tenants.casbin(), act)
            .await
        {
            Ok(PlatformScope {
                pool: self.pool.clone(),
                actor: actor.clone(),
            })
        } else {
            Err(Denied::NotFound)
        }
    }

    pub async fn is_platform_operator(&self, actor: &Actor) -> bool {
        self.allowed(
            &actor.subject,
            PLATFORM,
            &Object::Tenants.casbin(),
            Act::Read,
        )
        .await
    }

    /// The tenants (by id) where the actor holds a role, with the roles.
    pub async fn memberships(&self, subject: &str) -> Vec<(String, String)> {
        let enforcer = self.enforcer.read().await;
        enforcer
            .get_filtered_grouping_policy(0, vec![subject.to_owned()])
            .into_iter()
            .filter_map(|rule| match rule.as_slice() {
                [_, role, domain, ..] => Some((domain.clone(), role.clone())),
                _ => None,
            })
            .collect()
    }

    /// Every (subject, role) granted in the tenant.
    pub async fn tenant_grants(&self, tenant: TenantId) -> Vec<(String, String)> {
        let enforcer = self.enforcer.read().await;
        enforcer
            .get_filtered_grouping_policy(2, vec![tenant.to_string()])
            .into_iter()
            .filter_map(|rule| match rule.as_slice() {
                [subject, role, ..] => Some((subject.clone(), role.clone())),
                _ => None,
            })
            .collect()
    }

    /// Venues a venue-scoped subject is assigned to in the tenant.
    pub async fn assigned_venues(&self, subject: &str, tenant: TenantId) -> Vec<Uuid> {
        let enforcer = self.enforcer.read().await;
        enforcer
            .get_filtered_policy(0, vec![subject.to_owned(), tenant.to_string()])
            .into_iter()
            .filter_map(|rule| {
                rule.get(2)
                    .and_then(|o| o.strip_prefix("venue/"))
                    .and_then(|o| o.strip_suffix("/*"))
                    .and_then(|id| Uuid::parse_str(id).ok())
            })
            .collect()
    }

    /// Makes someone the platform operator (CLI bootstrap and tests).
    pub async fn grant_platform_operator(&self, subject: &str) -> Result<(), AuthzError> {
        self.enforcer
            .write()
            .await
            .add_grouping_policy(vec![
                subject.to_owned(),
                Role::PlatformOperator.as_str().to_owned(),
                "*".to_owned(),
            ])
            .await?;
        Ok(())
    }

    /// Grants `role` in the scope's tenant; venue-scoped roles also get one rule per venue.
    /// Callers must hold a `Scope` on `Object::Staff` for writing (or be the operator inviting the
    /// first city admin, with a `PlatformScope`).
    pub async fn grant(
        &self,
        subject: &str,
        tenant: TenantId,
        role: Role,
        venues: &[Uuid],
    ) -> Result<(), AuthzError> {
        let mut enforcer = self.enforcer.write().await;
        let domain = tenant.to_string();
        enforcer
            .add_grouping_policy(vec![
                subject.to_owned(),
                role.as_str().to_owned(),
                domain.clone(),
            ])
            .await?;
        if role.is_venue_scoped() {
            for venue in venues {
                // add_policy answers false (not an error) when the rule exists already
                enforcer
                    .add_policy(vec![
                        subject.to_owned(),
                        domain.clone(),
                        format!("venue/{venue}/*"),
                        "*".to_owned(),
                    ])
                    .await?;
            }
        }
        Ok(())
    }

    /// Removes every role and personal rule of `subject` in the tenant.
    pub async fn revoke_all(&self, subject: &str, tenant: TenantId) -> Result<(), AuthzError> {
        let mut enforcer = self.enforcer.write().await;
        let domain = tenant.to_string();
        for role in ROLES {
            enforcer
                .remove_grouping_policy(vec![
                    subject.to_owned(),
                    role.as_str().to_owned(),
                    domain.clone(),
                ])
                .await?;
        }
        enforcer
            .remove_filtered_policy(0, vec![subject.to_owned(), domain])
            .await?;
        Ok(())
    }

    /// A personal rule (an API key's scope): `object` may be a casbin pattern such as `venue/*`.
    pub async fn grant_rule(
        &self,
        subject: &str,
        tenant: TenantId,
        object: &str,
        act: &str,
    ) -> Result<(), AuthzError> {
        self.enforcer
            .write()
            .await
            .add_policy(vec![
                subject.to_owned(),
                tenant.to_string(),
                object.to_owned(),
                act.to_owned(),
            ])
            .await?;
        Ok(())
    }

    /// Removes every personal rule of `subject` (revoked API keys).
    pub async fn forget_subject(&self, subject: &str) -> Result<(), AuthzError> {
        self.enforcer
            .write()
            .await
            .remove_filtered_policy(0, vec![subject.to_owned()])
            .await?;
        Ok(())
    }
}
