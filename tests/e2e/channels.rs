//! A city's channel credentials: validated on save, encrypted at rest (the raw row is read), shown
//! masked, kept when a form leaves the secret empty, and usable to send; the SMS budget.

use chrono::Utc;
use platform::notifications::channels::{self, Budget, SealingKey};
use serde_json::json;
use tenants::TenantId;
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{arrange_sms_budget, spawn_app};

const TOKEN: &str = "tok-very-secret-4821";

async fn city(pool: &sqlx::PgPool) -> TenantId {
    crate::support::bare_tenant(pool, "smscity", "SMS市").await
}

#[tokio::test]
async fn channel_credentials_are_encrypted_at_rest_masked_and_still_usable() {
    let app = spawn_app().await;
    let tenant = city(&app.pool).await;
    let key = SealingKey::new([42; 32]);
    let gateway = MockServer::start().await;
    Mock::given(method("POST"))
        // base64("AC77:tok-very-secret-4821")
        .and(header(
            "authorization",
            "Basic QUM3Nzp0b2stdmVyeS1zZWNyZXQtNDgyMQ==",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "sid": "SM9" })))
        .expect(1)
        .mount(&gateway)
        .await;
    let config = json!({ "base_url": gateway.uri(), "account_sid": "AC77", "auth_token": TOKEN, "from": "+815000000000" });

    let mut tx = tenants::begin(&app.pool, tenant).await.expect("scope");
    channels::save(&mut tx, &key, "sms", "twilio", config)
        .await
        .expect("save");
    tx.commit().await.expect("commit");

    // the raw row, as a database dump would show it
    let (settings, secrets): (serde_json::Value, Vec<u8>) =
        sqlx::query_as("SELECT settings, secrets FROM notification_channels WHERE tenant_id = $1")
            .bind(tenant.0)
            .fetch_one(&app.owner)
            .await
            .expect("raw row");
    assert!(!settings.to_string().contains(TOKEN));
    assert_eq!(settings["account_sid"], "AC77");
    assert!(
        !secrets.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
        "sealed at rest"
    );

    let mut tx = tenants::begin(&app.pool, tenant).await.expect("scope");
    let shown = channels::masked(&mut tx, &key, "sms")
        .await
        .expect("masked")
        .expect("configured");
    assert_eq!(shown.fields["auth_token"], "••••••21");
    assert!(!format!("{shown:?}").contains(TOKEN));

    // an edit that leaves the secret empty keeps it; a bad value is refused and changes nothing
    channels::save(&mut tx, &key, "sms", "twilio", json!({
        "base_url": gateway.uri(), "account_sid": "AC77", "auth_token": "", "from": "+815000000000"
    }))
    .await
    .expect("save without re-entering the token");
    let bad = channels::save(&mut tx, &key, "sms", "twilio", json!({
        "base_url": "ftp://nowhere", "account_sid": "AC77", "auth_token": "x", "from": "+815000000000"
    }))
    .await;
    assert!(
        bad.expect_err("refused")
            .to_string()
            .starts_with("base_url:")
    );
    let wrong_kind = channels::save(&mut tx, &key, "email", "twilio", json!({})).await;
    assert!(wrong_kind.is_err());

    let channel = channels::load(&mut tx, &key, "sms")
        .await
        .expect("load")
        .expect("configured");
    let receipt = channel
        .send(&plugins::Message {
            to: plugins::Recipient::Phone("09012345678".into()),
            subject: None,
            text: "テスト送信".into(),
            html: None,
            idempotency_key: "test-message-1".into(),
        })
        .await
        .expect("sent with the stored token");
    assert_eq!(receipt.provider_message_id, "SM9");

    // the next message of the same configuration goes through the same channel (one HTTP client,
    // its connections kept open); an edit is read with the next message and gives a new one
    let again = channels::load(&mut tx, &key, "sms")
        .await
        .expect("load")
        .expect("configured");
    assert!(std::sync::Arc::ptr_eq(&channel, &again), "built once");
    channels::save(&mut tx, &key, "sms", "twilio", json!({
        "base_url": gateway.uri(), "account_sid": "AC78", "auth_token": "", "from": "+815000000000"
    }))
    .await
    .expect("edit the account");
    let edited = channels::load(&mut tx, &key, "sms")
        .await
        .expect("load")
        .expect("configured");
    assert!(
        !std::sync::Arc::ptr_eq(&channel, &edited),
        "the edit takes effect"
    );

    // a different server key cannot open the stored secrets
    assert!(
        channels::load(&mut tx, &SealingKey::new([1; 32]), "sms")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_sms_budget_alerts_at_80_percent_and_stops_at_the_cap() {
    let app = spawn_app().await;
    let tenant = city(&app.pool).await;
    let mut tx = tenants::begin(&app.pool, tenant).await.expect("scope");
    let now = Utc::now();
    assert_eq!(
        channels::sms_budget(&mut tx, "Asia/Tokyo", now, 5)
            .await
            .expect("check"),
        Budget::Within
    );
    arrange_sms_budget(&mut tx, 100).await;
    let sms = tenants::billing::MeteredKind::SmsSegment;
    tenants::billing::usage::record(&mut tx, "m1", sms, 78, now)
        .await
        .expect("usage");
    assert_eq!(
        channels::sms_budget(&mut tx, "Asia/Tokyo", now, 1)
            .await
            .expect("check"),
        Budget::Within
    );
    assert_eq!(
        channels::sms_budget(&mut tx, "Asia/Tokyo", now, 2)
            .await
            .expect("check"),
        Budget::CrossesAlert {
            used: 80,
            budget: 100
        }
    );
    tenants::billing::usage::record(&mut tx, "m2", sms, 21, now)
        .await
        .expect("usage");
    assert_eq!(
        channels::sms_budget(&mut tx, "Asia/Tokyo", now, 1)
            .await
            .expect("check"),
        Budget::Within
    );
    assert_eq!(
        channels::sms_budget(&mut tx, "Asia/Tokyo", now, 2)
            .await
            .expect("check"),
        Budget::Exhausted {
            used: 99,
            budget: 100
        }
    );
}
