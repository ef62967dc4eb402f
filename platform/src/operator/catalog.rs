//! A city's tables as the database itself lists them: every ordinary or partitioned table (not a
//! partition) with a `tenant_id` column, in any schema but PostgreSQL's own, ordered so that a table
//! comes after every table it has a foreign key to (parents first: the import order; the delete
//! order is the reverse).

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgConnection;

/// One tenant-owned table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantTable {
    /// `schema.table`, or `table` in `public`: the name in archives and messages.
    pub name: String,
    /// The name quoted for SQL (`"public"."bookings"`), by PostgreSQL's own `format('%I.%I')`.
    pub quoted: String,
    /// The columns an INSERT may name (not generated), quoted and comma-separated.
    pub insert_columns: String,
    /// Has a `GENERATED ALWAYS AS IDENTITY` column (its values are kept on import).
    pub identity_always: bool,
    /// Has a foreign key to itself (an invoice correcting an invoice): imported in one statement, so
    /// the rows may refer to each other in any order.
    pub self_referencing: bool,
}

/// oid, name, quoted name, insertable columns, identity always.
type Described = (i64, String, String, String, bool);

/// The columns of [`Described`], for one `pg_class c JOIN pg_namespace n`.
macro_rules! describe {
    () => {
        "SELECT c.oid::bigint, \
                CASE WHEN n.nspname = 'public' THEN c.relname::text ELSE n.nspname || '.' || c.relname END, \
                format('%I.%I', n.nspname, c.relname), \
                (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a \
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), \
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attidentity = 'a') \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    };
}

/// One table by name (`public.tenants`), described like a tenant table (not self-referencing).
pub async fn describe(conn: &mut PgConnection, table: &str) -> Result<TenantTable, sqlx::Error> {
    let (_, name, quoted, insert_columns, identity_always): Described =
        sqlx::query_as(concat!(describe!(), " WHERE c.oid = $1::regclass"))
            .bind(table)
            .fetch_one(&mut *conn)
            .await?;
    Ok(TenantTable {
        name,
        quoted,
        insert_columns,
        identity_always,
        self_referencing: false,
    })
}

/// Every tenant-owned table, parents first.
pub async fn tenant_tables(conn: &mut PgConnection) -> Result<Vec<TenantTable>, sqlx::Error> {
    let rows: Vec<Described> = sqlx::query_as(concat!(
        describe!(),
        " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' \
            AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                          AND a.attname = 'tenant_id' AND NOT a.attisdropped)"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let edges: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT conrelid::oid::bigint, confrelid::oid::bigint FROM pg_constraint WHERE contype = 'f'",
    )
    .fetch_all(&mut *conn)
    .await?;
    let by_oid: BTreeMap<i64, usize> = rows.iter().enumerate().map(|(i, r)| (r.0, i)).collect();
    let mut parents: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); rows.len()];
    let mut self_ref = vec![false; rows.len()];
    for (child, parent) in edges {
        if let (Some(&c), Some(&p)) = (by_oid.get(&child), by_oid.get(&parent)) {
            if c == p {
                self_ref[c] = true;
            } else {
                parents[c].insert(p);
            }
        }
    }
    let names: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let order = parents_first(&names, &parents);
    Ok(order
        .into_iter()
        .map(|i| {
            let (_, name, quoted, columns, identity) = &rows[i];
            TenantTable {
                name: name.clone(),
                quoted: quoted.clone(),
                insert_columns: columns.clone(),
                identity_always: *identity,
                self_referencing: self_ref[i],
            }
        })
        .collect())
}

/// Kahn's algorithm, ties broken by name (a stable order, so two exports of one schema list the
/// tables alike). A cycle between different tables (none today) is appended by name at the end;
/// its import would then fail on the foreign key and say which table.
fn parents_first(names: &[&str], parents: &[BTreeSet<usize>]) -> Vec<usize> {
    let mut done = vec![false; names.len()];
    let mut order = Vec::with_capacity(names.len());
    loop {
        let mut ready: Vec<usize> = (0..names.len())
            .filter(|&i| !done[i] && parents[i].iter().all(|&p| done[p]))
            .collect();
        if ready.is_empty() {
            break;
        }
        ready.sort_by_key(|&i| names[i]);
        let next = ready[0];
        done[next] = true;
        order.push(next);
    }
    let mut rest: Vec<usize> = (0..names.len()).filter(|&i| !done[i]).collect();
    rest.sort_by_key(|&i| names[i]);
    order.extend(rest);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_ties_go_by_name() {
        // 0 bookings -> 1 slots -> 2 venues; 3 audit_log alone
        let names = ["bookings", "slots", "venues", "audit_log"];
        let parents = vec![
            BTreeSet::from([1]),
            BTreeSet::from([2]),
            BTreeSet::new(),
            BTreeSet::new(),
        ];
        assert_eq!(parents_first(&names, &parents), vec![3, 2, 1, 0]);
    }

    #[test]
    fn a_cycle_is_left_for_the_end_not_lost() {
        let names = ["a", "b", "c"];
        let parents = vec![BTreeSet::from([1]), BTreeSet::from([0]), BTreeSet::new()];
        assert_eq!(parents_first(&names, &parents), vec![2, 0, 1]);
    }
}
