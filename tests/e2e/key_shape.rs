//! The key shape Citus needs to distribute every tenant table by `tenant_id` (docs/scaling.md):
//! every primary key, unique constraint, unique index, exclusion constraint and foreign key of a
//! table with a `tenant_id` column starts with `tenant_id`, and a foreign key between tenant tables
//! joins `tenant_id` to `tenant_id`. A foreign key into a reference table (platform data that every
//! node holds a copy of) need not, and each one is listed here with its reason.

use crate::support::spawn_app;

/// Tables without `tenant_id` that tenant tables refer to; on Citus these are reference tables.
const REFERENCE_TABLES: [(&str, &str); 2] = [
    (
        "tenants",
        "the registry of cities: small, read on every request, the parent of every tenant row",
    ),
    (
        "plans",
        "the operator's price list: shared by every city, changed rarely",
    ),
];

/// Foreign keys of tenant tables that do not start with `tenant_id`, each into a reference table.
/// The test fails when one is added or one disappears, so this list stays exact.
const KNOWN_REFERENCE_KEYS: [(&str, &str); 1] = [(
    "contracts_plan_id_fkey",
    "a city's contract names its plan; plans is a reference table, and Citus allows a foreign key \
     from a distributed table to a reference table on any column",
)];

/// (table, constraint or index, kind, first column, referenced table, its first column)
type Key = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

#[tokio::test]
async fn every_key_of_a_tenant_table_leads_with_tenant_id() {
    let app = spawn_app().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
            AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' \
                          AND NOT a.attisdropped) ORDER BY 1",
    )
    .fetch_all(&app.owner)
    .await
    .expect("tenant tables");
    for known in ["bookings", "slots", "residents", "audit_log", "invoices"] {
        assert!(tables.iter().any(|t| t == known), "{known} not found");
    }

    let keys: Vec<Key> =
        sqlx::query_as(
            "WITH tt AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                          WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                            AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                                          AND a.attname = 'tenant_id' AND NOT a.attisdropped)) \
             SELECT k.conrelid::regclass::text, k.conname::text, k.contype::text, \
                    (SELECT attname::text FROM pg_attribute WHERE attrelid = k.conrelid AND attnum = k.conkey[1]), \
                    CASE WHEN k.contype = 'f' THEN k.confrelid::regclass::text END, \
                    (SELECT attname::text FROM pg_attribute WHERE attrelid = k.confrelid AND attnum = k.confkey[1]) \
               FROM pg_constraint k WHERE k.conrelid IN (SELECT oid FROM tt) AND k.contype IN ('p', 'u', 'f', 'x') \
             UNION ALL \
             SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, 'unique index', \
                    COALESCE((SELECT attname::text FROM pg_attribute WHERE attrelid = i.indrelid AND attnum = i.indkey[0]), \
                             '(an expression)'), NULL, NULL \
               FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM tt) AND i.indisunique \
                AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
        )
        .fetch_all(&app.owner)
        .await
        .expect("keys");
    assert!(keys.len() > tables.len(), "too few keys read: {keys:?}");
    for table in &tables {
        assert!(
            keys.iter().any(|k| &k.0 == table && k.2 == "p"),
            "{table} has no primary key"
        );
    }

    let mut wrong = Vec::new();
    let mut into_ref = Vec::new();
    for (table, name, kind, first, referenced, referenced_first) in &keys {
        let leads = first == "tenant_id";
        let into_reference = referenced
            .as_ref()
            .is_some_and(|parent| REFERENCE_TABLES.iter().any(|(r, _)| r == parent));
        match referenced {
            Some(_) if into_reference && !leads => into_ref.push(name.clone()),
            Some(_) if into_reference => {}
            Some(parent) if !leads || referenced_first.as_deref() != Some("tenant_id") => wrong
                .push(format!(
                    "{table}.{name}: foreign key to {parent} does not join tenant_id to tenant_id"
                )),
            Some(_) => {}
            None if !leads => wrong.push(format!("{table}.{name} ({kind}) starts with {first}")),
            None => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "keys Citus could not keep on one node:\n{}",
        wrong.join("\n")
    );
    into_ref.sort();
    let known: Vec<&str> = KNOWN_REFERENCE_KEYS.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        into_ref, known,
        "foreign keys into reference tables not led by tenant_id changed: list each with its reason"
    );
}

/// No table indexes the same columns twice (same columns, expressions and predicate): a second
/// copy costs an entry on every insert and serves no query. apalis-postgres's own migrations left
/// two on `apalis.jobs` (`unique_job_id` beside the primary key, `lidx` beside
/// `idx_apalis_jobs_lock_by`), paid by every booking's confirmation task, and two more on
/// `apalis.workers`, until migrations/20261207001001_booking_row_work.sql dropped them.
#[tokio::test]
async fn no_table_indexes_the_same_columns_twice() {
    let app = spawn_app().await;
    let indexes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'apalis')",
    )
    .fetch_one(&app.owner)
    .await
    .expect("indexes");
    assert!(indexes > 50, "too few indexes read: {indexes}");
    let twice: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indrelid::regclass::text, string_agg(i.indexrelid::regclass::text, ', ' ORDER BY 1) \
           FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname IN ('public', 'apalis') \
          GROUP BY i.indrelid, i.indkey::text, i.indclass::text, \
                   COALESCE(pg_get_expr(i.indexprs, i.indrelid), ''), \
                   COALESCE(pg_get_expr(i.indpred, i.indrelid), '') \
         HAVING count(*) > 1 ORDER BY 1",
    )
    .fetch_all(&app.owner)
    .await
    .expect("duplicates");
    // apalis's `jobs.lock_by` foreign key was made on `unique_worker_id`, so it cannot go; the
    // table is written once per worker, not per booking
    let known = vec![(
        "apalis.workers".to_owned(),
        "apalis.unique_worker_id, apalis.workers_pkey".to_owned(),
    )];
    assert_eq!(twice, known, "indexes on the same columns twice");
}
