//! Where the guard's rules are kept: casbin's `Adapter` over the `authz_rules` table (ptype, v0…v5),
//! our own on sqlx 0.9 (STACK.md: why not `sqlx-adapter`).

use async_trait::async_trait;
use casbin::{Adapter, Filter, Model};
use sqlx::PgPool;

/// casbin's `Adapter` over `authz_rules` on sqlx 0.9. Filters match whole values (never LIKE).
pub struct PgAdapter {
    pool: PgPool,
}

fn adapter_err(e: sqlx::Error) -> casbin::Error {
    casbin::error::AdapterError(Box::new(e)).into()
}

/// A rule padded to the six value columns.
fn padded(rule: &[String]) -> [String; 6] {
    std::array::from_fn(|i| rule.get(i).cloned().unwrap_or_default())
}

impl PgAdapter {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn insert(&self, ptype: &str, rules: &[Vec<String>]) -> casbin::Result<bool> {
        let mut tx = self.pool.begin().await.map_err(adapter_err)?;
        let mut added = true;
        for rule in rules {
            let v = padded(rule);
            let done = sqlx::query(
                "INSERT INTO authz_rules (ptype, v0, v1, v2, v3, v4, v5) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(ptype)
            .bind(&v[0])
            .bind(&v[1])
            .bind(&v[2])
            .bind(&v[3])
            .bind(&v[4])
            .bind(&v[5])
            .execute(&mut *tx)
            .await
            .map_err(adapter_err)?;
            added &= done.rows_affected() == 1;
        }
        tx.commit().await.map_err(adapter_err)?;
        Ok(added)
    }

    async fn delete(&self, ptype: &str, rules: &[Vec<String>]) -> casbin::Result<bool> {
        let mut tx = self.pool.begin().await.map_err(adapter_err)?;
        let mut removed = true;
        for rule in rules {
            let v = padded(rule);
            let done = sqlx::query(
                "DELETE FROM authz_rules WHERE ptype = $1 AND v0 = $2 AND v1 = $3 AND v2 = $4 \
                 AND v3 = $5 AND v4 = $6 AND v5 = $7",
            )
            .bind(ptype)
            .bind(&v[0])
            .bind(&v[1])
            .bind(&v[2])
            .bind(&v[3])
            .bind(&v[4])
            .bind(&v[5])
            .execute(&mut *tx)
            .await
            .map_err(adapter_err)?;
            removed &= done.rows_affected() == 1;
        }
        tx.commit().await.map_err(adapter_err)?;
        Ok(removed)
    }
}

#[async_trait]
impl Adapter for PgAdapter {
    async fn load_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        let rows: Vec<(String, String, String, String, String, String, String)> =
            sqlx::query_as("SELECT ptype, v0, v1, v2, v3, v4, v5 FROM authz_rules ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(adapter_err)?;
        for (ptype, v0, v1, v2, v3, v4, v5) in rows {
            let mut rule = vec![v0, v1, v2, v3, v4, v5];
            while rule.last().is_some_and(String::is_empty) {
                rule.pop();
            }
            let sec = if ptype.starts_with('g') { "g" } else { "p" };
            m.add_policy(sec, &ptype, rule);
        }
        Ok(())
    }

    async fn load_filtered_policy<'a>(
        &mut self,
        m: &mut dyn Model,
        _f: Filter<'a>,
    ) -> casbin::Result<()> {
        // one enforcer decides for every tenant: it always holds the whole policy
        self.load_policy(m).await
    }

    async fn save_policy(&mut self, m: &mut dyn Model) -> casbin::Result<()> {
        let mut tx = self.pool.begin().await.map_err(adapter_err)?;
        sqlx::query("DELETE FROM authz_rules")
            .execute(&mut *tx)
            .await
            .map_err(adapter_err)?;
        tx.commit().await.map_err(adapter_err)?;
        for sec in ["p", "g"] {
            let ptypes: Vec<String> = m
                .get_model()
                .get(sec)
                .map(|a| a.keys().cloned().collect())
                .unwrap_or_default();
            for ptype in ptypes {
                let rules = m.get_policy(sec, &ptype);
                self.insert(&ptype, &rules).await?;
            }
        }
        Ok(())
    }

    async fn clear_policy(&mut self) -> casbin::Result<()> {
        sqlx::query("DELETE FROM authz_rules")
            .execute(&self.pool)
            .await
            .map_err(adapter_err)?;
        Ok(())
    }

    fn is_filtered(&self) -> bool {
        false
    }

    async fn add_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.insert(ptype, &[rule]).await
    }

    async fn add_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        self.insert(ptype, &rules).await
    }

    async fn remove_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        rule: Vec<String>,
    ) -> casbin::Result<bool> {
        self.delete(ptype, &[rule]).await
    }

    async fn remove_policies(
        &mut self,
        _sec: &str,
        ptype: &str,
        rules: Vec<Vec<String>>,
    ) -> casbin::Result<bool> {
        self.delete(ptype, &rules).await
    }

    async fn remove_filtered_policy(
        &mut self,
        _sec: &str,
        ptype: &str,
        field_index: usize,
        field_values: Vec<String>,
    ) -> casbin::Result<bool> {
        // exact matches on the given columns; an empty value means "any" (casbin's convention)
        let mut wanted: [Option<String>; 6] = Default::default();
        for (i, v) in field_values.into_iter().enumerate() {
            if let Some(slot) = wanted.get_mut(field_index + i) {
                *slot = (!v.is_empty()).then_some(v);
            }
        }
        let [w0, w1, w2, w3, w4, w5] = wanted;
        let done = sqlx::query(
            "DELETE FROM authz_rules WHERE ptype = $1 \
             AND ($2::text IS NULL OR v0 = $2) AND ($3::text IS NULL OR v1 = $3) \
             AND ($4::text IS NULL OR v2 = $4) AND ($5::text IS NULL OR v3 = $5) \
             AND ($6::text IS NULL OR v4 = $6) AND ($7::text IS NULL OR v5 = $7)",
        )
        .bind(ptype)
        .bind(w0)
        .bind(w1)
        .bind(w2)
        .bind(w3)
        .bind(w4)
        .bind(w5)
        .execute(&self.pool)
        .await
        .map_err(adapter_err)?;
        Ok(done.rows_affected() > 0)
    }
}
