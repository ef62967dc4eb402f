//! Row-level security (DESIGN.md, Tenancy and isolation), proven against the real database with the
//! server's own runtime role.

use chrono::{Datelike, Utc};
use sqlx::{Executor, PgPool, Row};
use tenants::{TenantId, TimeZone};

use crate::support::{Options, TestApp, arrange_sms_budget, new_tenant, spawn_app, spawn_app_with};

async fn seeded_tenant(pool: &PgPool, slug: &str, code: &str) -> TenantId {
    // Created and filled by the runtime role, through the scoped unit of work: the policies'
    // WITH CHECK must accept a tenant's own rows.
    let tenant = tenants::create_tenant(pool, &new_tenant(slug, slug, code))
        .await
        .expect("create tenant");
    let mut tx = tenants::begin(pool, tenant.id).await.expect("scope");
    platform::demo::seed_city(&mut tx, TimeZone::default(), Utc::now().date_naive())
        .await
        .expect("seed city");
    // billing: a contract, a usage event and a draft invoice with lines
    let month = Utc::now().date_naive().with_day(1).expect("first of month");
    tenants::billing::start_contract(
        &mut tx,
        "basic",
        month,
        serde_json::json!({}),
        Default::default(),
    )
    .await
    .expect("contract");
    tenants::billing::usage::record(
        &mut tx,
        "sms-1",
        tenants::billing::MeteredKind::SmsSegment,
        2_000,
        Utc::now(),
    )
    .await
    .expect("usage");
    tenants::billing::build_draft(&mut tx, month, "Asia/Tokyo", chrono::Duration::days(5))
        .await
        .expect("draft invoice");
    // notifications: a configured channel (sealed secrets) and a budget
    platform::notifications::channels::save(
        &mut tx,
        &platform::notifications::channels::SealingKey::new([9; 32]),
        "webhook",
        "webhook",
        serde_json::json!({ "url": "https://gateway.example/hook", "secret": "0123456789abcdef-city" }),
    )
    .await
    .expect("channel");
    arrange_sms_budget(&mut tx, 10_000).await;
    // exports: a finished job with its file chunk
    let export = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO export_jobs (tenant_id, id, kind, format, state, created_by) \
         VALUES ($1, $2, 'booking_ledger', 'csv_utf8', 'done', 'isolation')",
    )
    .bind(tenant.id.0)
    .bind(export)
    .execute(&mut *tx)
    .await
    .expect("export job");
    sqlx::query(
        "INSERT INTO export_chunks (tenant_id, job_id, seq, data) VALUES ($1, $2, 0, '\\x00')",
    )
    .bind(tenant.id.0)
    .bind(export)
    .execute(&mut *tx)
    .await
    .expect("export chunk");
    // a template of the city's own and a budget alert already sent
    platform::notifications::templates::save_override(
        &mut tx,
        platform::notifications::templates::Event::Reminder,
        "ja",
        &platform::notifications::templates::default_template(
            platform::notifications::templates::Event::Reminder,
            "ja",
        ),
        "isolation",
    )
    .await
    .expect("template");
    platform::notifications::channels::record_budget_alert(&mut tx, month, 80, 8_000, 10_000, 0)
        .await
        .expect("budget alert");
    // a plan cap alert (platform::caps records them in the unit of work that reaches 80 %)
    sqlx::query(
        "INSERT INTO plan_cap_alerts (tenant_id, kind, month, level, used, cap, recipients) \
         VALUES ($1, 'api_call', $2, 80, 8, 10, 0)",
    )
    .bind(tenant.id.0)
    .bind(month)
    .execute(&mut *tx)
    .await
    .expect("cap alert");
    tx.commit().await.expect("commit");
    // Login codes, throttle rows and sessions only exist once someone logs in.
    let resident = platform::demo::demo_resident(3);
    let secret = platform::residents::auth::CodeSecret::random();
    platform::residents::auth::request_code(
        pool,
        &tenant,
        &resident.ticket_no,
        resident.birth_date,
        None,
        "192.0.2.1",
        platform::i18n::Lang::Ja,
        &secret,
    )
    .await
    .expect("request a login code");
    let mut tx = tenants::begin(pool, tenant.id).await.expect("scope");
    let id = platform::residents::find_by_ticket(&mut tx, &resident.ticket_no, resident.birth_date)
        .await
        .expect("find resident")
        .expect("resident exists");
    platform::residents::auth::create_session(&mut tx, tenant.id, id)
        .await
        .expect("session");
    tx.commit().await.expect("commit");
    tenant.id
}

/// Two tenants, A (yokohama) and B (kawasaki), both with rows in every tenant-owned table.
pub(crate) async fn two_tenants() -> (TestApp, TenantId, TenantId) {
    // the notification worker is run by hand (below), so no row appears while a test counts rows
    let app = spawn_app_with(Options {
        manual_worker: true,
        ..Options::default()
    })
    .await;
    crate::billing::price_list(&app.pool).await;
    let a = seeded_tenant(&app.pool, "yokohama", "141003").await;
    let b = seeded_tenant(&app.pool, "kawasaki", "141305").await;
    // an integrator key in each (api_keys), created through the guard like the admin UI does
    let operator = app.staff("op@yoyaku.example", None).await;
    let actor = platform::staff::authz::Actor::staff(operator.id, &operator.email, None);
    for t in [a, b] {
        let mut scope = app
            .authz
            .enter(
                &actor,
                t,
                platform::staff::authz::Object::ApiKeys,
                platform::staff::authz::Act::Write,
            )
            .await
            .expect("operator scope");
        platform::staff::api_keys::create(
            &mut scope,
            &app.authz,
            "isolation",
            &["venues:read".into()],
        )
        .await
        .expect("api key");
        scope.commit().await.expect("commit");
        // an eligible-resident import (resident_imports), through the guard like the admin UI
        let mut scope = app
            .authz
            .enter(
                &actor,
                t,
                platform::staff::authz::Object::Imports,
                platform::staff::authz::Act::Write,
            )
            .await
            .expect("operator scope");
        platform::residents::import_runs::run(
            &mut scope,
            "ticket_no,birth_date,kana_name,sex\n6000000001,1950-04-01,イソレーション,female\n"
                .as_bytes(),
            false,
            "isolation.csv",
        )
        .await
        .expect("import");
        scope.commit().await.expect("commit");
    }
    // event webhooks (subscriptions; the vaccination below queues an event; its delivery to a
    // closed port fails and is logged), made through the guard like the admin page does
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    for t in [a, b] {
        let mut scope = app
            .authz
            .enter(
                &actor,
                t,
                platform::staff::authz::Object::Webhooks,
                platform::staff::authz::Act::Write,
            )
            .await
            .expect("operator scope");
        platform::webhooks::create(
            &app.authz,
            &mut scope,
            &app.worker.sealing_key,
            platform::webhooks::EndpointPolicy {
                allow_loopback_http: true,
            },
            &platform::webhooks::NewSubscription {
                url: format!("http://127.0.0.1:{closed}/hook"),
                description: "isolation".into(),
                events: vec!["vaccination.recorded".into()],
            },
        )
        .await
        .expect("webhook subscription");
        scope.commit().await.expect("commit");
    }
    // intake (visits, visit events, vaccination records, side-effect notes, questionnaires): the
    // demo booking of each city checked in, vaccinated and noted, through the intake guard
    for t in [a, b] {
        let (venue, booking): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
            "SELECT s.venue_id, b.id FROM bookings b JOIN slots s ON s.id = b.slot_id \
             WHERE b.tenant_id = $1 ORDER BY b.id LIMIT 1",
        )
        .bind(t.0)
        .fetch_one(&app.owner)
        .await
        .expect("a demo booking");
        let mut scope = platform::intake::enter(
            &app.authz,
            &actor,
            t,
            venue,
            platform::staff::authz::Act::Write,
        )
        .await
        .expect("intake scope");
        platform::intake::step(&mut scope, venue, booking, platform::intake::Step::CheckIn)
            .await
            .expect("check in");
        let vaccination = platform::intake::NewVaccination {
            lot_number: "ISO-1".into(),
            dose_ml: 0.3,
            vaccinator: "Dr. Iso".into(),
            vaccinated_at: Utc::now(),
        };
        platform::intake::vaccinate(&mut scope, venue, booking, &vaccination)
            .await
            .expect("vaccinate");
        let note = platform::intake::NewSideEffect {
            kind: "fever".into(),
            severity: "mild".into(),
            onset_at: Utc::now(),
            note: String::new(),
        };
        platform::intake::add_side_effect(&mut scope, venue, booking, &note)
            .await
            .expect("side effect");
        let answers = platform::intake::Answers {
            conditions: "asthma".into(),
            ..Default::default()
        };
        platform::intake::save_questionnaire(&mut scope, venue, booking, &answers)
            .await
            .expect("questionnaire");
        scope.commit().await.expect("commit");
    }
    // the notifications of both cities sent now (delivery log, usage events), the webhooks tried
    while app.worker.run_once().await.expect("work jobs") > 0 {}
    app.webhooks.run_once().await.expect("webhook attempts");
    (app, a, b)
}

async fn tenant_owned_tables(owner: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.table_name::text FROM information_schema.columns c \
         JOIN information_schema.tables t USING (table_schema, table_name) \
         WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE' \
         ORDER BY 1",
    )
    .fetch_all(owner)
    .await
    .expect("list tables")
}

/// Views over tenant tables (`metered_usage`): they must read as their caller
/// (`security_invoker`), so the tables' row-level security applies through them.
async fn tenant_owned_views(owner: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.table_name::text FROM information_schema.columns c \
         JOIN information_schema.tables t USING (table_schema, table_name) \
         WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' AND t.table_type = 'VIEW' \
         ORDER BY 1",
    )
    .fetch_all(owner)
    .await
    .expect("list views")
}

#[tokio::test]
async fn every_table_with_a_tenant_id_has_forced_rls_and_the_tenant_policy() {
    let app = spawn_app().await;
    let tables = tenant_owned_tables(&app.owner).await;
    for known in ["residents", "slots", "vaccines", "venues"] {
        assert!(
            tables.iter().any(|t| t == known),
            "{known} missing from {tables:?}"
        );
    }
    for table in &tables {
        let row = sqlx::query(
            "SELECT c.relrowsecurity, c.relforcerowsecurity, \
                    (SELECT count(*) FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename = c.relname \
                       AND p.cmd = 'ALL' AND p.permissive = 'PERMISSIVE' \
                       AND p.qual LIKE '%tenant_id = (NULLIF(current_setting(''app.tenant_id''::text, true), ''''::text))::uuid%' \
                       AND p.with_check = p.qual) AS policies \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = $1",
        )
        .bind(table)
        .fetch_one(&app.owner)
        .await
        .expect("catalog");
        assert!(
            row.get::<bool, _>(0),
            "{table}: row level security not enabled"
        );
        assert!(
            row.get::<bool, _>(1),
            "{table}: row level security not forced"
        );
        assert_eq!(
            row.get::<i64, _>(2),
            1,
            "{table}: no tenant_isolation policy (USING and WITH CHECK)"
        );
        // tenant_id leads the primary key (Citus-ready, and every lookup is per tenant)
        let pk_first: Option<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
               ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = ('public.' || $1)::regclass AND i.indisprimary",
        )
        .bind(table)
        .fetch_optional(&app.owner)
        .await
        .expect("primary key");
        assert_eq!(
            pk_first.as_deref(),
            Some("tenant_id"),
            "{table}: tenant_id must lead the primary key"
        );
    }
}

#[tokio::test]
async fn an_unfiltered_select_in_tenant_a_scope_sees_none_of_tenant_b_rows() {
    let (app, a, b) = two_tenants().await;
    let mut tables = tenant_owned_tables(&app.owner).await;
    let views = tenant_owned_views(&app.owner).await;
    assert!(views.iter().any(|v| v == "metered_usage"), "{views:?}");
    for view in &views {
        let invoker: bool = sqlx::query_scalar(
            "SELECT coalesce('security_invoker=true' = ANY (c.reloptions), false) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = $1",
        )
        .bind(view)
        .fetch_one(&app.owner)
        .await
        .expect("view options");
        assert!(invoker, "{view}: a view must be security_invoker");
    }
    tables.extend(views);
    for table in &tables {
        let count_for = |t: TenantId| {
            let sql = format!("SELECT count(*) FROM {table} WHERE tenant_id = $1");
            let owner = app.owner.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                    .bind(t.0)
                    .fetch_one(&owner)
                    .await
                    .expect("owner count")
            }
        };
        let (of_a, of_b) = (count_for(a).await, count_for(b).await);
        assert!(
            of_b > 0,
            "the test must give tenant B rows in {table}; extend platform::demo::seed_city"
        );

        let mut tx = tenants::begin(&app.pool, a).await.expect("scope A");
        let rows = tx
            .fetch_all(sqlx::AssertSqlSafe(format!(
                "SELECT tenant_id FROM {table}"
            )))
            .await
            .expect("unfiltered select");
        let foreign = rows
            .iter()
            .filter(|r| r.get::<uuid::Uuid, _>(0) != a.0)
            .count();
        assert_eq!(
            foreign, 0,
            "{table}: tenant A's scope saw {foreign} rows of another tenant"
        );
        assert_eq!(
            rows.len() as i64,
            of_a,
            "{table}: tenant A sees all of its own rows"
        );
    }
}

#[tokio::test]
async fn without_a_tenant_setting_or_after_a_scope_ends_no_rows_are_visible() {
    let (app, a, _b) = two_tenants().await;
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM residents")
        .fetch_one(&app.pool)
        .await
        .expect("count without scope");
    assert_eq!(none, 0);

    // One connection, so the next query reuses the connection the scoped transaction used.
    let single = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(app.pool.connect_options().as_ref().clone())
        .await
        .expect("single-connection pool");
    let mut tx = tenants::begin(&single, a).await.expect("scope");
    let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM residents")
        .fetch_one(&mut *tx)
        .await
        .expect("count inside");
    assert!(inside > 0);
    tx.commit().await.expect("commit");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM residents")
        .fetch_one(&single)
        .await
        .expect("count after");
    assert_eq!(
        after, 0,
        "a pooled connection must not carry the tenant into the next request"
    );
}

#[tokio::test]
async fn the_runtime_role_cannot_switch_rls_off_or_write_across_tenants() {
    let (app, a, b) = two_tenants().await;
    let role: (bool, bool, i64) = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, (SELECT count(*) FROM pg_class WHERE relowner = r.oid) \
         FROM pg_roles r WHERE rolname = current_user",
    )
    .fetch_one(&app.pool)
    .await
    .expect("role");
    assert_eq!(
        role,
        (false, false, 0),
        "runtime role: not superuser, no BYPASSRLS, owns nothing"
    );
    // …and works the job runtime's tables with what it was granted
    let usable: (bool, bool, bool) = sqlx::query_as(
        "SELECT has_schema_privilege('apalis', 'USAGE'), \
                has_table_privilege('apalis.jobs', 'INSERT') AND has_table_privilege('apalis.jobs', 'UPDATE') \
                    AND has_table_privilege('apalis.jobs', 'DELETE') AND has_table_privilege('apalis.workers', 'UPDATE'), \
                has_function_privilege('apalis.get_jobs(text, text, integer)', 'EXECUTE')",
    )
    .fetch_one(&app.pool)
    .await
    .expect("grants");
    assert_eq!(usable, (true, true, true));

    for attack in [
        "ALTER TABLE residents DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE residents NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON residents",
        "CREATE POLICY everything ON residents USING (true)",
        "SET ROLE postgres",
        "CREATE FUNCTION peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT count(*) FROM residents'",
        "CREATE TABLE stash AS SELECT * FROM residents",
        "GRANT yoyaku_app TO PUBLIC",
        // the job runtime's schema: rows only, nothing to create, alter or own
        "CREATE TABLE apalis.stash (x int)",
        "CREATE FUNCTION apalis.peek() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "ALTER TABLE apalis.jobs ADD COLUMN x int",
        "CREATE TRIGGER t AFTER INSERT ON apalis.jobs EXECUTE FUNCTION apalis.get_jobs()",
        "DELETE FROM apalis._sqlx_migrations",
        "SELECT count(*) FROM apalis._sqlx_migrations",
    ] {
        let result = app.pool.execute(attack).await;
        assert!(result.is_err(), "the runtime role could run: {attack}");
    }

    let mut tx = tenants::begin(&app.pool, a).await.expect("scope A");
    // row_security = off makes PostgreSQL raise rather than silently filter
    tx.execute("SET LOCAL row_security = off")
        .await
        .expect("set");
    assert!(
        tx.execute("SELECT * FROM residents").await.is_err(),
        "row_security=off must not reveal rows"
    );
    tx.rollback().await.expect("rollback");

    let mut tx = tenants::begin(&app.pool, a).await.expect("scope A");
    let crafted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM residents WHERE tenant_id = $1 OR true OR tenant_id IS NULL",
    )
    .bind(b.0)
    .fetch_one(&mut *tx)
    .await
    .expect("crafted read");
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM residents")
        .fetch_one(&mut *tx)
        .await
        .expect("own");
    assert_eq!(
        crafted, own,
        "a crafted predicate reads only tenant A's rows"
    );
    let moved = tx
        .execute(sqlx::query("UPDATE residents SET tenant_id = $1").bind(b.0))
        .await;
    assert!(
        moved.is_err(),
        "moving rows to tenant B must violate WITH CHECK"
    );
    tx.rollback().await.expect("rollback");

    let mut tx = tenants::begin(&app.pool, a).await.expect("scope A");
    let insert = tx
        .execute(
            sqlx::query(
                "INSERT INTO residents (tenant_id, id, ticket_no, birth_date, kana_name, sex) \
                 VALUES ($1, gen_random_uuid(), '9999999999', '1980-01-01', 'テスト', 'other')",
            )
            .bind(b.0),
        )
        .await;
    assert!(
        insert.is_err(),
        "inserting a row for tenant B from A's scope must fail"
    );
    tx.rollback().await.expect("rollback");

    let mut tx = tenants::begin(&app.pool, a).await.expect("scope A");
    let deleted = tx
        .execute(sqlx::query("DELETE FROM residents WHERE tenant_id = $1").bind(b.0))
        .await
        .expect("delete runs");
    assert_eq!(
        deleted.rows_affected(),
        0,
        "tenant B's rows are invisible to delete"
    );
    tx.rollback().await.expect("rollback");
}
