//! Delivery providers: the per-tenant setting with masked credentials, the 409 for a start
//! without one, Twilio's Messages API as a fake on 127.0.0.1, and its signed callbacks.

mod engine;

use std::time::Duration;

use base64::Engine;
use engine::{Recorder, audience, campaign, message_counts, status_of, template, wait_status};
use herald::providers::twilio;
use herald_tests::{TestApp, eventually};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn provider_settings_mask_credentials_and_refuse_bad_input() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let put = |body: serde_json::Value| {
        let alice = &alice;
        async move {
            alice
                .send(alice.request(Method::PUT, "/api/provider").json(&body))
                .await
        }
    };
    // herald-local's default until the tenant chooses.
    let default = alice.get("/api/provider").await.ok(200).clone();
    assert_eq!(default["kind"], "log");
    assert_eq!(default["configured"], false);

    let set = put(
        json!({ "kind": "http", "url": "https://sms.example.com/send", "messagesPerSecond": 50 }),
    )
    .await;
    let secret = set.ok(200)["signingSecret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() > 40);
    let read = alice.get("/api/provider").await.ok(200).clone();
    assert_eq!(read["kind"], "http");
    assert_eq!(read["messagesPerSecond"], 50);
    let masked = read["signingSecret"].as_str().unwrap();
    assert!(masked.starts_with("whsec_…") && !read.to_string().contains(&secret[6..20]));

    let token = "f00dfeedf00dfeedf00dfeedf00dfeed";
    put(json!({ "kind": "twilio", "accountSid": "AC0123", "authToken": token, "from": "+14155550000" }))
        .await
        .ok(200);
    let read = alice.get("/api/provider").await.ok(200).clone();
    assert_eq!(read["kind"], "twilio");
    assert_eq!(read["authToken"], "…feed");
    assert!(!read.to_string().contains(token));

    // Bad input: 422 naming the fields, and the setting stays as it was.
    let bad = put(json!({ "kind": "http" })).await;
    assert_eq!(bad.problem(422)["errors"][0]["pointer"], "/url");
    let bad = put(json!({ "kind": "twilio", "accountSid": "AC1", "authToken": "x", "from": "nope", "url": "https://x.example" })).await;
    let pointers: Vec<_> = bad.problem(422)["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pointers, ["/url", "/from"]);
    put(json!({ "kind": "pigeon" })).await.problem(422);
    put(json!({ "kind": "log", "extra": 1 })).await.problem(422);
    assert_eq!(alice.get("/api/provider").await.ok(200)["kind"], "twilio");

    // Members may not see or change it.
    app.add_member(tenant, "bob", "member").await;
    let bob = app.user("bob", tenant);
    bob.get("/api/provider").await.problem(403);
}

#[tokio::test]
async fn without_a_provider_a_campaign_cannot_start() {
    let app = TestApp::spawn_config(|c| c.default_log_provider = false).await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    alice.get("/api/provider").await.problem(404);
    let group = audience(&app, tenant, 2, 0, 0).await;
    let template = template(&alice, "Hi").await;
    let id = campaign(&alice, &template, group).await;

    let refused = alice
        .post(&format!("/api/campaigns/{id}/start"), &json!({}))
        .await;
    let detail = refused.problem(409)["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("delivery provider"), "{detail}");
    assert_eq!(status_of(&app, &id).await, "draft");
    assert_eq!(app.events(tenant, "campaign_status_changed").await, 0);

    alice
        .send(
            alice
                .request(Method::PUT, "/api/provider")
                .json(&json!({ "kind": "log" })),
        )
        .await
        .ok(200);
    alice
        .post(&format!("/api/campaigns/{id}/start"), &json!({}))
        .await
        .ok(200);
}

#[tokio::test]
async fn twilio_sends_and_its_signed_callbacks_update_the_message() {
    let twilio_fake = Recorder::start().await;
    let base = format!("{}/", twilio_fake.url);
    let app = TestApp::spawn_config(|c| {
        c.run_sender = true;
        c.twilio_base_url = base.parse().unwrap();
    })
    .await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let token = "0123456789abcdef0123456789abcdef";
    alice
        .send(alice.request(Method::PUT, "/api/provider").json(&json!({
            "kind": "twilio", "accountSid": "AC42", "authToken": token, "from": "+14155550000"
        })))
        .await
        .ok(200);
    // Name 2 replied STOP some time ago: Twilio refuses with 21610.
    twilio_fake.set(|b| {
        b.answers.insert(
            "+15550000002".into(),
            (400, json!({ "code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400 })),
        );
    });
    let group = audience(&app, tenant, 3, 0, 0).await;
    let template = template(&alice, "Hi {{ contact.name }}").await;
    let id = campaign(&alice, &template, group).await;
    alice
        .post(&format!("/api/campaigns/{id}/start"), &json!({}))
        .await
        .ok(200);
    wait_status(&app, &id, "completed", Duration::from_secs(60)).await;

    let hits = twilio_fake.hits();
    assert_eq!(hits.len(), 3);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("AC42:{token}"))
    );
    for hit in &hits {
        assert_eq!(hit.path, "/2010-04-01/Accounts/AC42/Messages.json");
        assert_eq!(hit.headers["authorization"].to_str().unwrap(), basic);
        assert_eq!(hit.body["From"], "+14155550000");
        let to = hit.body["To"].as_str().unwrap();
        let n: u32 = to[5..].parse().unwrap();
        assert_eq!(hit.body["Body"], format!("Hi Name {n}"));
        assert!(
            hit.body["StatusCallback"]
                .as_str()
                .unwrap()
                .contains(&hit.key())
        );
    }
    let counts = message_counts(&app, &id).await;
    assert_eq!((counts["sent"], counts["failed"]), (2, 1));
    let opted: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM contacts WHERE tenant_id = $1 AND opted_out_at IS NOT NULL",
    )
    .bind(tenant)
    .fetch_all(&app.owner)
    .await
    .unwrap();
    assert_eq!(opted, ["Name 2"], "21610 marks the contact opted out");

    // A status callback, as Twilio would post it to the StatusCallback URL.
    let delivered = hits
        .iter()
        .find(|h| h.body["To"] == "+15550000001")
        .unwrap();
    let callback = delivered.body["StatusCallback"]
        .as_str()
        .unwrap()
        .to_owned();
    let params = vec![
        ("MessageSid".to_owned(), "SM0001".to_owned()),
        ("MessageStatus".to_owned(), "delivered".to_owned()),
        ("AccountSid".to_owned(), "AC42".to_owned()),
    ];
    let form = form(&params);
    let post = |signature: String| {
        app.http
            .post(&callback)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(form.clone())
            .send()
    };
    let message = Uuid::parse_str(&delivered.key()).unwrap();
    let status = || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM messages WHERE id = $1")
            .bind(message)
            .fetch_one(&app.owner)
            .await
            .unwrap()
    };

    // Refused: a signature under another token, a tampered body, none at all.
    let forged = twilio::signature("not-the-token", &callback, &params);
    for signature in [forged, twilio::signature(token, &callback, &params[..2])] {
        let reply = herald_tests::read(post(signature).await.unwrap()).await;
        reply.problem(403);
    }
    let unsigned = app
        .http
        .post(&callback)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.clone())
        .send()
        .await
        .unwrap();
    herald_tests::read(unsigned).await.problem(403);
    assert_eq!(status().await, "sent", "a refused callback changes nothing");
    assert_eq!(app.events(tenant, "message_status_changed").await, 2 + 1);

    let good = post(twilio::signature(token, &callback, &params))
        .await
        .unwrap();
    assert_eq!(good.status(), 204);
    eventually(Duration::from_secs(5), || async {
        status().await == "delivered"
    })
    .await;
    let c = alice
        .get(&format!("/api/campaigns/{id}"))
        .await
        .ok(200)
        .clone();
    assert_eq!(c["deliveredCount"], 1);
    assert_eq!(c["sentCount"], 2);
}

fn form(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
