//! Herald as Lambda runs it at scale: several instances on one database through a
//! transaction-mode pooler with two server connections, and an instance killed mid-load.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use herald_tests::local_process::LocalProcess;
use herald_tests::pgbouncer::PgBouncer;
use herald_tests::{TestApp, eventually, load, pooled_url};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_two_server_connections_through_pgbouncer() {
    let bouncer = PgBouncer::start(2, 5432);
    // The in-process server only sets the tenants up; the three processes take the load.
    let app = TestApp::spawn_behind(&bouncer.url(), |_| {}).await;
    let app_url = pooled_url(&bouncer.url(), &app.db_name);
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(LocalProcess::start(&app.owner_url, &app_url, "transaction", &[]).await);
    }
    let tenants = load::two_tenants(&app).await;
    let bases: Vec<String> = instances.iter().map(|p| p.base.clone()).collect();

    // Two requests at a time per instance, within each one's own pool of 4 (a Lambda instance
    // serves one): the queue for the two server connections forms in PgBouncer.
    let report = load::run(&app.http, &bases, tenants.clone(), 600, 6).await;
    eprintln!("{}", report.summary());
    report.assert_all_succeeded();

    // The started campaigns are sent by the instances' senders, through the same pooler.
    let sql = "SELECT count(*) FROM messages WHERE tenant_id = $1 AND status = 'queued'";
    for tenant in &tenants {
        assert!(
            app.count(
                "SELECT count(*) FROM messages WHERE tenant_id = $1",
                tenant.id
            )
            .await
                > 0
        );
        eventually(Duration::from_secs(60), || async {
            app.count(sql, tenant.id).await == 0
        })
        .await;
    }

    let stats = bouncer.show("STATS");
    let ours = stats
        .iter()
        .find(|row| row["database"] == app.db_name)
        .expect("stats of the database");
    let transactions: u64 = ours["total_xact_count"].parse().unwrap();
    let servers = bouncer.show("SERVERS");
    let servers = servers
        .iter()
        .filter(|row| row["database"] == app.db_name)
        .count();
    eprintln!("pgbouncer: {transactions} transactions over {servers} server connections");
    assert!(servers <= 2, "{servers} server connections");
    assert!(transactions > 100 * 2, "{transactions} transactions");
    let log = bouncer.log();
    for refused in ["unsupported startup parameter", "prepared statement"] {
        assert!(
            !log.contains(refused),
            "PgBouncer logged {refused:?}:\n{log}"
        );
    }
}

/// What one key's client saw in the end.
#[derive(Debug)]
struct Outcome {
    status: u16,
    id: String,
    body: serde_json::Value,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_requests_of_a_killed_instance_are_answered_once_and_done_once() {
    const CLIENTS: usize = 32;
    const KEYS_EACH: usize = 40;
    let app = TestApp::spawn().await;
    let tenant = app.tenant("crash-owner").await;
    let token = herald_tests::token("crash-owner", None, 3600);
    // A short lease, so that requests that died before committing run again soon.
    let env = [("HERALD_IDEMPOTENCY_LEASE_SECS", "2")];
    let first = LocalProcess::start(&app.owner_url, &app.app_role_url(), "none", &env).await;
    let base = Arc::new(RwLock::new(first.base.clone()));
    let outcomes: Arc<Mutex<BTreeMap<String, Outcome>>> = Arc::default();
    let dropped = Arc::new(AtomicUsize::new(0));

    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (base, outcomes, token) = (Arc::clone(&base), Arc::clone(&outcomes), token.clone());
        let (http, dropped) = (app.http.clone(), Arc::clone(&dropped));
        clients.push(tokio::spawn(async move {
            for k in 0..KEYS_EACH {
                let key = format!("crash-{c}-{k}");
                let phone = format!("+14152{:06}", c * KEYS_EACH + k);
                let body = json!({ "name": key, "phone": phone });
                let outcome =
                    post_until_answered(&http, &base, &token, tenant, &key, &body, &dropped).await;
                outcomes.lock().unwrap().insert(key, outcome);
            }
        }));
    }
    // Killed once a quarter of the keys are answered, with the rest in flight or to come.
    let quarter = CLIENTS * KEYS_EACH / 4;
    eventually(Duration::from_secs(60), || async {
        outcomes.lock().unwrap().len() >= quarter
    })
    .await;
    first.kill().await;
    let second = LocalProcess::start(&app.owner_url, &app.app_role_url(), "none", &env).await;
    *base.write().unwrap() = second.base.clone();
    for client in clients {
        client.await.expect("client");
    }

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    assert!(
        dropped.load(Ordering::Relaxed) > 0,
        "the kill cut requests off"
    );
    assert_eq!(outcomes.len(), CLIENTS * KEYS_EACH);
    let bad: Vec<_> = outcomes.iter().filter(|(_, o)| o.status != 201).collect();
    assert!(
        bad.is_empty(),
        "{} keys not answered 201, first {:?}",
        bad.len(),
        bad.first()
    );
    let live = app.live_contacts(tenant).await as usize;
    assert_eq!(live, CLIENTS * KEYS_EACH, "one contact per key");
    assert_eq!(
        app.events(tenant, "contact_created").await as usize,
        live,
        "one event each"
    );
    // Each key's answer names the contact made under it, and says so again on a retry.
    let http = app.http.clone();
    for (key, outcome) in &outcomes {
        let name: String = sqlx::query_scalar("SELECT name FROM contacts WHERE id = $1::uuid")
            .bind(&outcome.id)
            .fetch_one(&app.owner)
            .await
            .unwrap_or_else(|e| panic!("{key}: no contact {}: {e}", outcome.id));
        assert_eq!(name, *key);
    }
    let (key, outcome) = outcomes.iter().next().unwrap();
    let body = json!({ "name": key, "phone": outcome.body["phone"] });
    let again = send(&http, &second.base, &token, tenant, key, &body)
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let replayed: serde_json::Value = again.json().await.unwrap();
    assert_eq!(replayed, outcome.body);
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    tenant: uuid::Uuid,
    key: &str,
    body: &serde_json::Value,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{base}/api/contacts"))
        .bearer_auth(token)
        .header("X-Tenant-ID", tenant.to_string())
        .header("Idempotency-Key", key)
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
}

/// Sends the keyed create until it is answered with anything but a dropped connection or
/// a 409 `idempotency-key-in-use` (the key's lease still held), as a careful client does.
async fn post_until_answered(
    http: &reqwest::Client,
    base: &RwLock<String>,
    token: &str,
    tenant: uuid::Uuid,
    key: &str,
    body: &serde_json::Value,
    dropped: &AtomicUsize,
) -> Outcome {
    for _ in 0..600 {
        let at = base.read().unwrap().clone();
        match send(http, &at, token, tenant, key, body).await {
            Ok(response) if response.status() == 409 => {}
            Ok(response) => {
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let id = body["id"].as_str().unwrap_or_default().to_owned();
                return Outcome { status, id, body };
            }
            Err(_) => {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{key} never answered");
}
