//! The demo municipality that `yoyaku serve` creates on an empty database outside production, so a
//! new developer (or a salesperson) has something to click through at once. The data is
//! deterministic: the README and the start-up banner name its residents.

use chrono::{Datelike, Duration, NaiveDate, Utc, Weekday};
use tenants::{
    LocalGovernmentCode, Locale, NewTenant, Slug, Tenant, TenantName, TenantStatus, TenantTx,
    TimeZone,
};
use uuid::Uuid;

/// The slug of the demo municipality.
pub const DEMO_SLUG: &str = "demo";

/// One eligible demo resident a person can log in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoResident {
    pub ticket_no: String,
    pub birth_date: NaiveDate,
    pub kana_name: String,
}

const FAMILY: [&str; 10] = [
    "ヤマダ",
    "スズキ",
    "タナカ",
    "サトウ",
    "タカハシ",
    "ワタナベ",
    "イトウ",
    "ナカムラ",
    "コバヤシ",
    "カトウ",
];
const GIVEN: [&str; 10] = [
    "タロウ",
    "ハナコ",
    "イチロウ",
    "ユミ",
    "ケンジ",
    "サクラ",
    "ヒロシ",
    "アキコ",
    "マコト",
    "ミドリ",
];

/// How many eligible residents the demo imports.
pub const DEMO_RESIDENTS: u32 = 200;

/// The n-th demo resident (1-based): ticket numbers 1000000001…, birth dates spread over 1935–2005.
pub fn demo_resident(n: u32) -> DemoResident {
    let year = 1935 + (n * 7) % 71;
    let month = 1 + n % 12;
    let day = 1 + n % 28;
    DemoResident {
        ticket_no: format!("{:010}", 1_000_000_000 + u64::from(n)),
        birth_date: NaiveDate::from_ymd_opt(year as i32, month, day).unwrap_or_default(),
        kana_name: full_kana_name(n),
    }
}

fn full_kana_name(n: u32) -> String {
    format!(
        "{} {}",
        FAMILY[(n % 10) as usize],
        GIVEN[((n / 10) % 10) as usize]
    )
}

/// The tenant record of the demo city. 999997 is not a real municipality (prefecture 99 does not
/// exist) but carries a valid check digit.
pub fn demo_tenant() -> NewTenant {
    NewTenant {
        slug: Slug::parse(DEMO_SLUG).expect("valid demo slug"),
        name: TenantName::parse("デモ市").expect("valid demo name"),
        code: LocalGovernmentCode::parse("999997").expect("valid demo code"),
        time_zone: TimeZone::default(),
        default_locale: Locale::default(),
        locales: ["ja", "en", "zh-Hans", "pt"]
            .iter()
            .map(|l| Locale::parse(l).expect("supported locale"))
            .collect(),
    }
}

/// Creates the demo municipality unless a tenant with its slug exists. Returns the tenant when it was
/// created now.
pub async fn create_if_missing(pool: &sqlx::PgPool) -> Result<Option<Tenant>, DemoError> {
    if tenants::find_by_slug(pool, DEMO_SLUG).await?.is_some() {
        return Ok(None);
    }
    let tenant = tenants::create_tenant(pool, &demo_tenant()).await?;
    tenants::set_status(pool, tenant.id, TenantStatus::Active).await?;
    let mut tx = tenants::begin(pool, tenant.id).await?;
    seed_city(&mut tx, tenant.time_zone, Utc::now().date_naive()).await?;
    tx.commit().await?;
    Ok(Some(tenant))
}

/// The demo's staff logins (development only; printed in the start-up banner).
pub const DEMO_STAFF: [(&str, &str); 2] = [
    ("operator@demo.example", "platform_operator"),
    ("admin@demo.example", "city_admin"),
];
/// The password of every demo staff login.
pub const DEMO_STAFF_PASSWORD: &str = "demo-password-1234";

/// Creates the demo staff logins (an operator and the demo city's admin) unless they exist.
pub async fn create_demo_staff(
    pool: &sqlx::PgPool,
    authz: &crate::staff::authz::Authz,
    policy: &crate::staff::identity::AuthPolicy,
) -> Result<(), DemoError> {
    let Some(city) = tenants::find_by_slug(pool, DEMO_SLUG).await? else {
        return Ok(());
    };
    for (email, role) in DEMO_STAFF {
        if crate::staff::identity::find_by_email(pool, email)
            .await?
            .is_some()
        {
            continue;
        }
        let account =
            crate::staff::identity::create_with_password(pool, policy, email, DEMO_STAFF_PASSWORD)
                .await
                .map_err(|e| DemoError::Staff(e.to_string()))?;
        let subject = crate::staff::authz::staff_subject(account.id);
        let granted = match crate::staff::authz::Role::parse(role) {
            Some(crate::staff::authz::Role::PlatformOperator) => {
                authz.grant_platform_operator(&subject).await
            }
            Some(r) => authz.grant(&subject, city.id, r, &[]).await,
            None => Ok(()),
        };
        granted.map_err(|e| DemoError::Staff(e.to_string()))?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo staff: {0}")]
    Staff(String),
    #[error(transparent)]
    Registry(#[from] tenants::RegistryError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Fills one tenant with vaccines, venues, three weeks of weekday slots from `today` and the demo
/// residents. Used for the demo city and by tests that need a populated tenant.
pub async fn seed_city(
    tx: &mut TenantTx,
    tz: TimeZone,
    today: NaiveDate,
) -> Result<(), sqlx::Error> {
    let tenant = tx.tenant_id().0;
    let pfizer = Uuid::now_v7();
    let moderna = Uuid::now_v7();
    for (id, name, maker, interval, effective) in [
        (pfizer, "コミナティ", "ファイザー", 21, 7),
        (moderna, "スパイクバックス", "モデルナ", 28, 14),
    ] {
        sqlx::query(
            "INSERT INTO vaccines (tenant_id, id, name, maker, doses, min_interval_days, \
             booster_interval_months, days_until_effective, validity_days) \
             VALUES ($1, $2, $3, $4, 2, $5, 8, $6, 240)",
        )
        .bind(tenant)
        .bind(id)
        .bind(name)
        .bind(maker)
        .bind(interval)
        .bind(effective)
        .execute(&mut **tx)
        .await?;
    }

    let venues = [
        (
            Uuid::now_v7(),
            "市民ホール集団接種会場",
            "本町1-1",
            "mass",
            pfizer,
            10,
        ),
        (
            Uuid::now_v7(),
            "市立中央病院",
            "中央2-3-4",
            "hospital",
            moderna,
            4,
        ),
        (
            Uuid::now_v7(),
            "北部コミュニティセンター",
            "北町5-6",
            "mass",
            pfizer,
            6,
        ),
    ];
    for (id, name, address, kind, vaccine, _) in &venues {
        sqlx::query(
            "INSERT INTO venues (tenant_id, id, name, address, kind, vaccine_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant)
        .bind(id)
        .bind(name)
        .bind(address)
        .bind(kind)
        .bind(vaccine)
        .execute(&mut **tx)
        .await?;
    }

    // Weekdays for three weeks from tomorrow, 09:00–12:00 and 13:00–17:00 local time, 30-minute slots.
    let days: Vec<NaiveDate> = (1..=21)
        .map(|d| today + Duration::days(d))
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .collect();
    for (venue, _, _, _, _, capacity) in &venues {
        sqlx::query(
            "INSERT INTO slots (tenant_id, id, venue_id, starts_at, ends_at, capacity) \
             SELECT $1, gen_random_uuid(), $2, (d + t) AT TIME ZONE $5, \
                    (d + t + interval '30 minutes') AT TIME ZONE $5, $4 \
             FROM unnest($3::date[]) AS d, generate_series(0, 15) AS i, \
                  LATERAL (SELECT time '09:00' + i * interval '30 minutes' AS t) AS start \
             WHERE t < time '12:00' OR t >= time '13:00'",
        )
        .bind(tenant)
        .bind(venue)
        .bind(&days)
        .bind(capacity)
        .bind(tz.name())
        .execute(&mut **tx)
        .await?;
    }

    // The schedules the slots above follow, so the admin UI shows where they came from.
    let (first, last) = (
        days.first().copied().unwrap_or(today),
        days.last().copied().unwrap_or(today),
    );
    for (venue, _, _, _, _, capacity) in &venues {
        for (start, end) in [("09:00", "12:00"), ("13:00", "17:00")] {
            sqlx::query(
                "INSERT INTO schedules (tenant_id, id, venue_id, weekdays, start_time, end_time, \
                 slot_minutes, capacity, valid_from, valid_until) \
                 VALUES ($1, $2, $3, ARRAY[1,2,3,4,5], $4::time, $5::time, 30, $6, $7, $8)",
            )
            .bind(tenant)
            .bind(Uuid::now_v7())
            .bind(venue)
            .bind(start)
            .bind(end)
            .bind(capacity)
            .bind(first)
            .bind(last)
            .execute(&mut **tx)
            .await?;
        }
    }
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, id, actor, action, object) \
         VALUES ($1, $2, 'system', 'demo.seed', 'tenant')",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .execute(&mut **tx)
    .await?;

    for n in 1..=DEMO_RESIDENTS {
        let r = demo_resident(n);
        sqlx::query(
            "INSERT INTO residents (tenant_id, id, ticket_no, birth_date, kana_name, sex, phone, preferred_locale) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'ja')",
        )
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(&r.ticket_no)
        .bind(r.birth_date)
        .bind(&r.kana_name)
        .bind(if n % 2 == 0 { "female" } else { "male" })
        .bind((n % 3 == 0).then(|| format!("090{:08}", n)))
        .execute(&mut **tx)
        .await?;
    }
    seed_bookings(tx).await
}

/// The city's booking policy (pairing dose 2 with dose 1 is on in the demo) and two sample bookings
/// (residents 199 and 200, a family group) with their notification jobs, so the resident pages and
/// the isolation tests have rows to show. Keeps `slots.booked` equal to the booking rows.
async fn seed_bookings(tx: &mut TenantTx) -> Result<(), sqlx::Error> {
    let tenant = tx.tenant_id().0;
    sqlx::query(
        "INSERT INTO booking_settings (tenant_id, book_dose2_with_dose1) VALUES ($1, true)",
    )
    .bind(tenant)
    .execute(&mut **tx)
    .await?;
    // The last slot of the first mass venue: far from the deadline, out of the way of demo users.
    let slot: Option<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT s.id, v.vaccine_id FROM slots s JOIN venues v ON v.tenant_id = s.tenant_id AND v.id = s.venue_id \
         WHERE s.tenant_id = $1 AND v.name = '市民ホール集団接種会場' ORDER BY s.starts_at DESC LIMIT 1",
    )
    .bind(tenant)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((slot, vaccine)) = slot else {
        return Ok(());
    };
    let residents: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM residents WHERE tenant_id = $1 AND ticket_no = ANY($2) ORDER BY ticket_no DESC",
    )
    .bind(tenant)
    .bind(vec![demo_resident(199).ticket_no, demo_resident(200).ticket_no])
    .fetch_all(&mut **tx)
    .await?;
    let Some(organiser) = residents.first().copied() else {
        return Ok(());
    };
    let group = Uuid::now_v7();
    let mut ids = Vec::new();
    for resident in &residents {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO bookings (tenant_id, id, resident_id, slot_id, vaccine_id, dose, booked_by, group_id) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7)",
        )
        .bind(tenant)
        .bind(id)
        .bind(resident)
        .bind(slot)
        .bind(vaccine)
        .bind(organiser)
        .bind(group)
        .execute(&mut **tx)
        .await?;
        crate::notifications::push(
            tx,
            tenant,
            &format!("booking-confirmed:{id}"),
            &crate::notifications::Notification::BookingConfirmed { booking_id: id },
        )
        .await?;
        ids.push(id);
    }
    sqlx::query("UPDATE slots SET booked = booked + $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(slot)
        .bind(residents.len() as i32)
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO idempotency_keys (tenant_id, key, resident_id, result) VALUES ($1, $2, $3, $4)")
        .bind(tenant)
        .bind(format!("demo-seed-{group}"))
        .bind(organiser)
        .bind(serde_json::json!(ids))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_residents_have_ten_digit_tickets_and_real_birth_dates() {
        for n in 1..=DEMO_RESIDENTS {
            let r = demo_resident(n);
            assert_eq!(r.ticket_no.len(), 10);
            assert_ne!(r.birth_date, NaiveDate::default(), "resident {n}");
        }
        assert_eq!(demo_resident(1).ticket_no, "1000000001");
    }

    #[test]
    fn the_demo_tenant_is_valid() {
        let t = demo_tenant();
        assert_eq!(t.slug.as_str(), DEMO_SLUG);
        assert!(t.locales.contains(&t.default_locale));
    }
}
