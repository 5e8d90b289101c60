//! The campaign engine end to end: a real sender hands messages to a recording provider on
//! 127.0.0.1; crashes, racing senders and schedulers, cancel and pause mid-send.

mod engine;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use engine::{
    Recorder, app_db, audience, campaign, http_provider, message_counts, messages_of, sender,
    status_of, template, wait_status,
};
use herald::engine::Tuning;
use herald_tests::{TestApp, eventually};
use serde_json::{Value, json};
use uuid::Uuid;

async fn app_with_sender() -> TestApp {
    TestApp::spawn_config(|c| c.run_sender = true).await
}

fn ids_and_contacts(hits: &[engine::Hit]) -> Vec<(String, String)> {
    hits.iter()
        .map(|h| {
            (
                h.key(),
                h.body["contactId"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn ten_thousand_contacts_get_one_message_each_rendered_for_them() {
    let app = app_with_sender().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let recorder = Recorder::start().await;
    let provider = http_provider(&alice, &recorder).await;
    assert!(
        provider["signingSecret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );

    let group = audience(&app, tenant, 10_000, 7, 5).await;
    let template = template(&alice, "Hi {{ contact.name }} #{{ contact.attributes.n }}").await;
    let id = campaign(&alice, &template, group).await;
    alice
        .post(&format!("/api/campaigns/{id}/start"), &json!({}))
        .await
        .ok(200);
    wait_status(&app, &id, "completed", Duration::from_secs(240)).await;

    let hits = recorder.hits();
    assert_eq!(hits.len(), 10_000, "one provider call per recipient");
    let contacts: HashMap<Uuid, (String, Option<i64>)> =
        sqlx::query_as::<
            _,
            (
                Uuid,
                String,
                Option<chrono_free::Ts>,
                Option<chrono_free::Ts>,
            ),
        >("SELECT id, name, opted_out_at, deleted_at FROM contacts WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(&app.owner)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, _, out, deleted)| out.is_none() && deleted.is_none())
        .map(|(id, name, _, _)| (id, (name, None)))
        .collect();
    let mut seen = HashSet::new();
    for hit in &hits {
        let contact = Uuid::parse_str(hit.body["contactId"].as_str().unwrap()).unwrap();
        let (name, _) = contacts
            .get(&contact)
            .expect("only live, not opted-out contacts");
        assert!(seen.insert(contact), "{contact} got two messages");
        let n = name.strip_prefix("Name ").unwrap();
        assert_eq!(hit.body["body"], format!("Hi {name} #{n}"));
        assert_eq!(hit.key(), hit.body["id"].as_str().unwrap());
        assert_eq!(hit.headers["webhook-id"].to_str().unwrap(), hit.key());
    }
    assert_eq!(seen.len(), 10_000);

    let c = alice
        .get(&format!("/api/campaigns/{id}"))
        .await
        .ok(200)
        .clone();
    assert_eq!(c["status"], "completed");
    assert_eq!(c["recipientsCount"], 10_000);
    assert_eq!(c["queuedCount"], 10_000);
    assert_eq!(c["sentCount"], 10_000);
    assert_eq!(c["failedCount"], 0);
    assert_eq!(
        message_counts(&app, &id).await,
        HashMap::from([("sent".to_owned(), 10_000)])
    );
    // draft → running → completed, and progress instead of 10,000 message events.
    assert_eq!(app.events(tenant, "campaign_status_changed").await, 2);
    assert!(app.events(tenant, "campaign_progress").await >= 1);
    assert_eq!(app.events(tenant, "message_status_changed").await, 0);
}

/// Only for `a_killed_sender_loses_and_doubles_nothing`: run as a child process, a sender
/// loop against the database in `HERALD_TEST_SENDER_DB` until killed.
#[tokio::test]
#[ignore = "a child process of the crash test, not a test of its own"]
async fn sender_child() {
    let Ok(url) = std::env::var("HERALD_TEST_SENDER_DB") else {
        return;
    };
    let db = herald::db::Database::connect_lazy(&url, 4, Duration::from_secs(5), "child").unwrap();
    let outbound = herald::providers::Outbound::new(
        herald::net::egress::EgressPolicy::parse("127.0.0.0/8").unwrap(),
        "http://127.0.0.1:9/".parse().unwrap(),
        None,
    );
    let tuning = Tuning {
        lease: Duration::from_secs(1),
        claim_batch: 50,
        concurrency: 8,
        ..Tuning::default()
    };
    let sender = herald::engine::sender::Sender::new(db, outbound, tuning, true);
    loop {
        let _ = sender.run_once(Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn random_below(n: u64) -> u64 {
    (Uuid::new_v4().as_u128() % u128::from(n)) as u64
}

#[tokio::test]
async fn a_killed_sender_loses_and_doubles_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let recorder = Recorder::start().await;
    recorder.set(|b| b.delay = Duration::from_millis(2));
    http_provider(&alice, &recorder).await;
    let group = audience(&app, tenant, 1_500, 0, 0).await;
    let template = template(&alice, "Hello {{ contact.name }}").await;
    let id = campaign(&alice, &template, group).await;
    alice
        .post(&format!("/api/campaigns/{id}/start"), &json!({}))
        .await
        .ok(200);

    let spawn = || {
        tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["sender_child", "--exact", "--ignored", "--nocapture"])
            .env("HERALD_TEST_SENDER_DB", app.app_role_url())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    // Kill the sender (SIGKILL) at random moments while it works, three times.
    for _ in 0..3 {
        let mut child = spawn();
        let before = recorder.count();
        eventually(Duration::from_secs(60), || async {
            recorder.count() > before
        })
        .await;
        tokio::time::sleep(Duration::from_millis(random_below(400))).await;
        child.kill().await.unwrap();
    }
    assert!(
        status_of(&app, &id).await != "completed",
        "killed before the end"
    );
    let mut last = spawn();
    wait_status(&app, &id, "completed", Duration::from_secs(180)).await;
    last.kill().await.unwrap();

    let messages = messages_of(&app, &id).await;
    assert_eq!(messages.len(), 1_500);
    let mut key_of_contact: HashMap<String, String> = HashMap::new();
    let mut contact_of_key: HashMap<String, String> = HashMap::new();
    for (key, contact) in ids_and_contacts(&recorder.hits()) {
        // A repeat after a crash may happen, but only under the recipient's one key.
        if let Some(k) = key_of_contact.insert(contact.clone(), key.clone()) {
            assert_eq!(k, key, "contact {contact} got two keys");
        }
        if let Some(c) = contact_of_key.insert(key.clone(), contact.clone()) {
            assert_eq!(c, contact, "key {key} went to two contacts");
        }
        let message = Uuid::parse_str(&key).unwrap();
        assert_eq!(
            messages[&message].to_string(),
            contact,
            "the key is the recipient's message id"
        );
    }
    assert_eq!(key_of_contact.len(), 1_500, "no recipient skipped");
    assert_eq!(
        message_counts(&app, &id).await,
        HashMap::from([("sent".to_owned(), 1_500)])
    );
}

#[tokio::test]
async fn two_senders_at_once_send_nothing_twice() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let recorder = Recorder::start().await;
    http_provider(&alice, &recorder).await;
    let group = audience(&app, tenant, 3_000, 0, 0).await;
    let template = template(&alice, "Hello {{ contact.name }}").await;
    let id = campaign(&alice, &template, group).await;
    alice
        .post(&format!("/api/campaigns/{id}/start"), &json!({}))
        .await
        .ok(200);

    let tuning = Tuning {
        claim_batch: 40,
        materialize_batch: 500,
        ..Tuning::default()
    };
    let (a, b) = (sender(&app, tuning.clone()), sender(&app, tuning));
    let (ra, rb) = tokio::join!(
        a.run_once(Duration::from_secs(120)),
        b.run_once(Duration::from_secs(120))
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(
        ra.sent > 0 && rb.sent > 0,
        "both shared the work: {ra:?} {rb:?}"
    );
    assert_eq!(ra.sent + rb.sent, 3_000);

    let hits = recorder.hits();
    let keys: HashSet<String> = hits.iter().map(|h| h.key()).collect();
    assert_eq!(hits.len(), 3_000, "no message went out twice");
    assert_eq!(keys.len(), 3_000);
    assert_eq!(status_of(&app, &id).await, "completed");
}

#[tokio::test]
async fn cancel_mid_send_stops_everything_not_in_flight() {
    const BATCH: i64 = 20;
    const PIPELINES: usize = 2;
    let app = TestApp::spawn_config(|c| {
        c.run_sender = true;
        c.tuning.claim_batch = BATCH;
        c.tuning.pipelines = PIPELINES;
        c.tuning.concurrency = 4;
    })
    .await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let recorder = Recorder::start().await;
    recorder.set(|b| b.delay = Duration::from_millis(5));
    http_provider(&alice, &recorder).await;
    let group = audience(&app, tenant, 2_000, 0, 0).await;
    let template = template(&alice, "Hello {{ contact.name }}").await;
    let id = campaign(&alice, &template, group).await;
    alice
        .post(&format!("/api/campaigns/{id}/start"), &json!({}))
        .await
        .ok(200);
    eventually(Duration::from_secs(60), || async {
        recorder.count() >= 100
    })
    .await;

    alice
        .post(&format!("/api/campaigns/{id}/cancel"), &json!({}))
        .await
        .ok(200);
    let at_cancel = std::time::Instant::now();
    // In-flight messages finish (a batch being claimed as the cancel committed is in flight
    // too); then nothing is queued or sending.
    eventually(Duration::from_secs(30), || async {
        let counts = message_counts(&app, &id).await;
        !counts.contains_key("sending") && !counts.contains_key("queued")
    })
    .await;

    let hits = recorder.hits();
    let after: Vec<&engine::Hit> = hits.iter().filter(|h| h.at > at_cancel).collect();
    // Each pipeline may have had one claimed batch in flight when the cancel committed.
    assert!(
        after.len() <= PIPELINES * BATCH as usize,
        "at most the batches claimed before the cancel were in flight: {}",
        after.len()
    );
    let counts = message_counts(&app, &id).await;
    let sent = counts.get("sent").copied().unwrap_or(0);
    assert!(counts["cancelled"] > 1_000, "{counts:?}");
    assert_eq!(sent + counts["cancelled"], 2_000, "{counts:?}");
    assert_eq!(
        hits.len() as i64,
        sent,
        "every call was for a message recorded sent"
    );
    // No cancelled message was ever handed to the provider.
    let cancelled: HashSet<Uuid> = sqlx::query_scalar(
        "SELECT id FROM messages WHERE campaign_id = $1 AND status = 'cancelled'",
    )
    .bind(Uuid::parse_str(&id).unwrap())
    .fetch_all(&app.owner)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert!(
        hits.iter()
            .all(|h| !cancelled.contains(&Uuid::parse_str(&h.key()).unwrap()))
    );
    assert_eq!(status_of(&app, &id).await, "cancelled");
}

#[tokio::test]
async fn pause_and_resume_mid_send() {
    let app = TestApp::spawn_config(|c| {
        c.run_sender = true;
        c.tuning.claim_batch = 20;
        // One batch at a time, so that the pause lands long before all 600 are sent.
        c.tuning.pipelines = 1;
        c.tuning.concurrency = 4;
    })
    .await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let recorder = Recorder::start().await;
    recorder.set(|b| b.delay = Duration::from_millis(5));
    http_provider(&alice, &recorder).await;
    let group = audience(&app, tenant, 600, 0, 0).await;
    let template = template(&alice, "Hello {{ contact.name }}").await;
    let id = campaign(&alice, &template, group).await;
    alice
        .post(&format!("/api/campaigns/{id}/start"), &json!({}))
        .await
        .ok(200);
    eventually(Duration::from_secs(60), || async { recorder.count() >= 50 }).await;
    alice
        .post(&format!("/api/campaigns/{id}/pause"), &json!({}))
        .await
        .ok(200);
    eventually(Duration::from_secs(30), || async {
        !message_counts(&app, &id).await.contains_key("sending")
    })
    .await;
    let paused_at = recorder.count();
    assert!(paused_at < 600);
    assert!(message_counts(&app, &id).await["queued"] > 0);
    // Still paused: the sender passes over the campaign's queued messages.
    let probe = sender(&app, Tuning::default());
    let report = probe.run_once(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.claimed, 0, "nothing of a paused campaign is claimed");
    assert_eq!(status_of(&app, &id).await, "paused");

    alice
        .post(&format!("/api/campaigns/{id}/resume"), &json!({}))
        .await
        .ok(200);
    wait_status(&app, &id, "completed", Duration::from_secs(120)).await;
    let keys: HashSet<String> = recorder.hits().iter().map(|h| h.key()).collect();
    assert_eq!(recorder.count(), 600);
    assert_eq!(keys.len(), 600);
}

#[tokio::test]
async fn racing_schedulers_start_each_due_campaign_once() {
    let app = TestApp::spawn().await;
    let tenants = [app.tenant("alice").await, app.tenant("bob").await];
    let mut all = HashSet::new();
    for (tenant, sub) in tenants.iter().zip(["alice", "bob"]) {
        let user = app.user(sub, *tenant);
        let group = audience(&app, *tenant, 3, 0, 0).await;
        let template = template(&user, "Hi").await;
        for _ in 0..10 {
            let id = campaign(&user, &template, group).await;
            let soon = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
            user.patch(
                &format!("/api/campaigns/{id}"),
                &json!({ "scheduledAt": soon.format(&time::format_description::well_known::Rfc3339).unwrap() }),
            )
            .await
            .ok(200);
            let c = user
                .post(&format!("/api/campaigns/{id}/start"), &json!({}))
                .await;
            assert_eq!(c.ok(200)["status"], "scheduled");
            all.insert(Uuid::parse_str(&id).unwrap());
        }
    }
    // Their time comes.
    sqlx::query("UPDATE campaigns SET scheduled_at = now() - interval '1 second'")
        .execute(&app.owner)
        .await
        .unwrap();

    let (a, b) = (app_db(&app), app_db(&app));
    let (sa, sb) = tokio::join!(
        herald::engine::scheduler::run_once(&a),
        herald::engine::scheduler::run_once(&b)
    );
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    let started: Vec<Uuid> = sa.iter().chain(sb.iter()).copied().collect();
    let distinct: HashSet<Uuid> = started.iter().copied().collect();
    assert_eq!(
        started.len(),
        20,
        "each started once: {} + {}",
        sa.len(),
        sb.len()
    );
    assert_eq!(distinct, all);
    // Another pass finds nothing left.
    assert!(
        herald::engine::scheduler::run_once(&a)
            .await
            .unwrap()
            .is_empty()
    );
    let transitions: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM outbox_events WHERE type = 'campaign_status_changed'",
    )
    .fetch_all(&app.owner)
    .await
    .unwrap();
    let to_running = transitions
        .iter()
        .filter(|p| p["from"] == "scheduled" && p["to"] == "running")
        .count();
    assert_eq!(to_running, 20);
}

#[tokio::test]
async fn failures_retry_then_fail_and_a_run_of_failures_pauses_the_campaign() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let recorder = Recorder::start().await;
    // Phones of Name 1 and Name 2: one opted out at the provider, one refused for good.
    recorder.set(|b| {
        b.answers
            .insert("+15550000001".into(), (409, json!({ "code": "opted_out" })));
        b.answers.insert(
            "+15550000002".into(),
            (400, json!({ "error": "bad number" })),
        );
    });
    alice
        .send(alice.request(reqwest::Method::PUT, "/api/provider").json(&json!({
            "kind": "http", "url": format!("{}/send", recorder.url), "maxConsecutiveFailures": 3
        })))
        .await
        .ok(200);
    let group = audience(&app, tenant, 5, 0, 0).await;
    let template = template(&alice, "Hello {{ contact.name }}").await;
    let id = campaign(&alice, &template, group).await;
    alice
        .post(&format!("/api/campaigns/{id}/start"), &json!({}))
        .await
        .ok(200);
    let fast = Tuning {
        backoff: Duration::from_millis(10),
        max_attempts: 2,
        ..Tuning::default()
    };
    sender(&app, fast.clone())
        .run_once(Duration::from_secs(30))
        .await
        .unwrap();
    wait_status(&app, &id, "completed", Duration::from_secs(30)).await;
    let counts = message_counts(&app, &id).await;
    assert_eq!(counts["sent"], 3);
    assert_eq!(counts["failed"], 2);
    let opted: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM contacts WHERE tenant_id = $1 AND opted_out_at IS NOT NULL",
    )
    .bind(tenant)
    .fetch_all(&app.owner)
    .await
    .unwrap();
    assert_eq!(
        opted,
        ["Name 1"],
        "the provider's opt-out marks the contact"
    );

    // A provider that is down: transient errors retry with backoff, and after three
    // failures in a row the campaign pauses.
    recorder.set(|b| b.all = Some(503));
    let before = recorder.count();
    let group = audience(&app, tenant, 10, 0, 0).await;
    let id = campaign(&alice, &template, group).await;
    alice
        .post(&format!("/api/campaigns/{id}/start"), &json!({}))
        .await
        .ok(200);
    let s = sender(&app, fast);
    s.run_once(Duration::from_secs(10)).await.unwrap();
    wait_status(&app, &id, "paused", Duration::from_secs(30)).await;
    assert!(recorder.count() > before);
    let c = alice
        .get(&format!("/api/campaigns/{id}"))
        .await
        .ok(200)
        .clone();
    assert_eq!(c["sentCount"], 0);

    // Cancelled while its messages wait out a retry's backoff (their leases still running,
    // so the cancel leaves them): once the leases end, the sender cancels them too.
    let slow = Tuning {
        backoff: Duration::from_secs(4),
        max_attempts: 5,
        ..Tuning::default()
    };
    let group = audience(&app, tenant, 4, 0, 0).await;
    let id = campaign(&alice, &template, group).await;
    alice
        .post(&format!("/api/campaigns/{id}/start"), &json!({}))
        .await
        .ok(200);
    let s = sender(&app, slow);
    s.run_once(Duration::from_secs(10)).await.unwrap();
    wait_status(&app, &id, "paused", Duration::from_secs(30)).await;
    alice
        .post(&format!("/api/campaigns/{id}/cancel"), &json!({}))
        .await
        .ok(200);
    let waiting = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM messages WHERE campaign_id = $1 AND status = 'sending'",
        )
        .bind(uuid::Uuid::parse_str(id.as_str()).unwrap())
        .fetch_one(&app.owner)
        .await
        .unwrap()
    };
    assert!(waiting().await > 0, "the cancel left messages in backoff");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while waiting().await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "messages stayed sending"
        );
        s.run_once(Duration::from_secs(5)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts = message_counts(&app, &id).await;
    assert_eq!(counts["cancelled"], 4, "{counts:?}");
}

#[tokio::test]
async fn direct_messages_go_out_through_the_log_provider_by_default() {
    let app = app_with_sender().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let contact = alice.contact("Ada", "+14155552671").await;
    let message = alice
        .post(
            "/api/messages",
            &json!({ "contactId": contact["id"], "body": "Hello Ada" }),
        )
        .await
        .ok(201)
        .clone();
    let path = format!("/api/messages/{}", message["id"].as_str().unwrap());
    eventually(Duration::from_secs(30), || async {
        alice.get(&path).await.json["status"] == "sent"
    })
    .await;
    let sent = alice.get(&path).await.json;
    assert!(
        sent["providerMessageId"]
            .as_str()
            .unwrap()
            .starts_with("log-")
    );
    assert_eq!(app.events(tenant, "message_status_changed").await, 1);
}

mod chrono_free {
    /// A timestamp column read only for NULL-ness.
    pub type Ts = time::OffsetDateTime;
}
