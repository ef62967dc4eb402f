//! The scoped unit of work (DESIGN.md, "Tenancy and isolation").
//!
//! Every tenant-owned query runs inside a transaction that first sets `app.tenant_id`
//! transaction-locally. Row-level security policies compare each row's `tenant_id` with that setting,
//! so a query that forgets its tenant filter still sees only this tenant's rows, and a pooled
//! connection never carries a tenant into the next request.

use std::ops::{Deref, DerefMut};

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::TenantId;

/// A transaction in which PostgreSQL sees only one tenant's rows.
pub struct TenantTx {
    tenant_id: TenantId,
    tx: Transaction<'static, Postgres>,
}

/// Opens a transaction scoped to `tenant_id`.
pub async fn begin(pool: &PgPool, tenant_id: TenantId) -> Result<TenantTx, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant_id.0.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(TenantTx { tenant_id, tx })
}

impl TenantTx {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

/// Like sqlx's `Transaction`, a `TenantTx` derefs to the connection: `.execute(&mut *tx)`.
impl Deref for TenantTx {
    type Target = PgConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}
