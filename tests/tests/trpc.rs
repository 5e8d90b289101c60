//! The seed's clients, unchanged: `tests/trpc-client/seed-client.mjs` runs the real
//! `@trpc/client` 11 (installed by `npm ci --prefix tests/trpc-client`: `.ci/run`, else the
//! test itself) against a
//! herald-local on 127.0.0.1, through httpBatchLink, httpLink and httpBatchStreamLink, calling
//! every procedure and comparing each answer with its REST route's. The script asserts as it
//! goes; this test checks its report and what the database holds afterwards.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;

use herald_tests::ws::WsClient;
use herald_tests::{TestApp, token};
use serde_json::{Value, json};

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/trpc-client");

/// `npm ci` in `tests/trpc-client` unless done (`.ci/run` does it first), so that the
/// README's test command works on a fresh clone. Under a lock: nextest runs tests in
/// processes of their own.
fn install_client() {
    use std::os::fd::AsRawFd;
    let installed = || Path::new(CLIENT).join("node_modules/@trpc/client").is_dir();
    if installed() {
        return;
    }
    let lock = std::fs::File::create(std::env::temp_dir().join("herald-trpc-client.lock"))
        .expect("the lock file");
    // SAFETY: flock on a descriptor this function owns; released when `lock` is dropped.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    if !installed() {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix", CLIENT])
            .stdout(Stdio::null())
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci --prefix tests/trpc-client failed");
    }
}

/// Runs the script against `app` and returns its report.
async fn run_client(app: &TestApp, env: &[(&str, String)]) -> Value {
    install_client();
    let output = tokio::process::Command::new("node")
        .arg("seed-client.mjs")
        .current_dir(CLIENT)
        .env("HERALD_URL", &app.base)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("node runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the seed's client failed:\n{stderr}"
    );
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

#[tokio::test]
async fn the_seeds_trpc_client_calls_every_procedure_through_every_link() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let other = app.tenant("bob").await;
    let theirs = app.user("bob", other).contact("Eve", "+14155550199").await;
    let report = run_client(
        &app,
        &[
            ("TOKEN", token("alice", None, 3600)),
            ("TENANT", tenant.to_string()),
            ("OTHER_TENANT", other.to_string()),
            ("OTHER_CONTACT", theirs["id"].as_str().unwrap().to_owned()),
        ],
    )
    .await;

    let seed: BTreeSet<&str> = [
        "contacts.list contacts.getById contacts.create contacts.update contacts.delete",
        "contacts.import groups.list groups.getById groups.create groups.update groups.delete",
        "groups.addContacts groups.removeContacts groups.members",
        "messageTemplates.list messageTemplates.getById messageTemplates.create",
        "messageTemplates.update messageTemplates.delete messageTemplates.preview",
        "campaigns.list campaigns.getById campaigns.create campaigns.update campaigns.delete",
        "campaigns.start campaigns.cancel campaigns.pause campaigns.resume",
        "webhooks.list webhooks.getById webhooks.create webhooks.update webhooks.delete",
        "webhooks.regenerateSecret webhooks.getLogs webhooks.test webhooks.retry",
        "messagesHistory.list messagesHistory.getById messagesHistory.create",
        "messagesHistory.updateStatus",
    ]
    .iter()
    .flat_map(|line| line.split(' '))
    .collect();
    for link in ["httpBatchLink", "httpLink", "httpBatchStreamLink"] {
        let called: BTreeSet<&str> = report[link]["called"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(called, seed, "{link}");
        let failures = &report[link]["failures"];
        assert_eq!(failures["notFound"]["data"]["code"], "NOT_FOUND", "{link}");
        assert_eq!(failures["forbidden"]["code"], -32003, "{link}");
        assert_eq!(failures["unauthorized"]["code"], -32001, "{link}");
        assert_eq!(failures["invalid"]["code"], -32022, "{link}");
        assert_eq!(failures["badTenant"]["code"], -32600, "{link}");
    }
    // Five queries in one request for the batching links, five for httpLink.
    for link in ["httpBatchLink", "httpBatchStreamLink"] {
        assert_eq!(report[link]["batchRequests"].as_array().unwrap().len(), 1);
    }
    assert_eq!(
        report["httpLink"]["batchRequests"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(report["wire"]["methodNotSupported"]["code"], -32005);

    // Each link imported one contact, and the keyed create made one: the others were deleted,
    // and no failed mutation wrote one.
    assert_eq!(app.live_contacts(tenant).await, 4);
    // Bob's tenant holds only Eve: nothing crossed over.
    assert_eq!(app.live_contacts(other).await, 1);
}

/// The seed's WebSocket contract as its client code uses it (`ws://…/ws?token=JWT&language=en`,
/// the tenant from the token, frames of `{type, payload}`), fed by a tRPC mutation.
#[tokio::test]
async fn the_seeds_websocket_client_hears_a_trpc_mutation() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let jwt = token("alice", Some(tenant), 3600);
    let url = format!(
        "{}/ws?token={jwt}&language=en",
        app.base.replacen("http", "ws", 1)
    );
    let mut ws = WsClient::connect(&url).await.expect("accepted");

    let input = json!({ "name": "Ada", "phone": "+14155552671" });
    let reply = app
        .request(reqwest::Method::POST, "/api/trpc/contacts.create")
        .bearer_auth(&jwt)
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let created: Value = reply.json().await.unwrap();
    let contact = &created["result"]["data"];
    assert_eq!(contact["name"], "Ada");

    let msg = ws.next().await;
    assert_eq!(msg["type"], "contact_created");
    assert_eq!(msg["payload"]["id"], contact["id"]);
    assert_eq!(msg["payload"]["name"], "Ada");
}
