//! Messages history: direct messages, forward-only delivery status, campaign counters,
//! index-backed filters.

use herald_tests::{TestApp, User};
use serde_json::{Value, json};
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// A transaction as the owner inside `tenant` (RLS is forced, even for the owner).
async fn as_tenant(app: &TestApp, tenant: Uuid) -> Transaction<'static, Postgres> {
    let mut tx = app.owner.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// A running campaign with its template and group written directly (those APIs are not
/// this test's subject), and `contacts` queued messages of it, as the campaign engine
/// will queue them. Returns the campaign id and the message ids.
async fn campaign_with_messages(
    app: &TestApp,
    tenant: Uuid,
    contacts: &[&Value],
) -> (Uuid, Vec<Uuid>) {
    let (template, group, campaign) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut tx = as_tenant(app, tenant).await;
    sqlx::query(
        "INSERT INTO message_templates (tenant_id, id, name, body) VALUES ($1, $2, $3, 'Hi')",
    )
    .bind(tenant)
    .bind(template)
    .bind(format!("T {template}"))
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO groups (tenant_id, id, name) VALUES ($1, $2, $3)")
        .bind(tenant)
        .bind(group)
        .bind(format!("G {group}"))
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO campaigns (tenant_id, id, name, template_id, group_id, status, started_at,
                                recipients_count, queued_count)
         VALUES ($1, $2, 'Launch', $3, $4, 'running', now(), $5, $5)",
    )
    .bind(tenant)
    .bind(campaign)
    .bind(template)
    .bind(group)
    .bind(contacts.len() as i32)
    .execute(&mut *tx)
    .await
    .unwrap();
    let mut ids = Vec::new();
    for contact in contacts {
        let id = Uuid::now_v7();
        let created = herald::messages::store::id_time(id);
        sqlx::query(
            "INSERT INTO messages (tenant_id, id, campaign_id, contact_id, recipient, body,
                                   queued_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'Hi', $6, $6, $6)",
        )
        .bind(tenant)
        .bind(id)
        .bind(campaign)
        .bind(Uuid::parse_str(contact["id"].as_str().unwrap()).unwrap())
        .bind(contact["phone"].as_str().unwrap())
        .bind(created)
        .execute(&mut *tx)
        .await
        .unwrap();
        ids.push(id);
    }
    tx.commit().await.unwrap();
    (campaign, ids)
}

#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct Counters {
    queued_count: i32,
    sent_count: i32,
    delivered_count: i32,
    read_count: i32,
    failed_count: i32,
}

async fn counters(app: &TestApp, campaign: Uuid) -> Counters {
    sqlx::query_as(
        "SELECT queued_count, sent_count, delivered_count, read_count, failed_count
         FROM campaigns WHERE id = $1",
    )
    .bind(campaign)
    .fetch_one(&app.owner)
    .await
    .unwrap()
}

fn counts(queued: i32, sent: i32, delivered: i32, read: i32, failed: i32) -> Counters {
    Counters {
        queued_count: queued,
        sent_count: sent,
        delivered_count: delivered,
        read_count: read,
        failed_count: failed,
    }
}

async fn send(user: &User<'_>, contact: &Value, body: &str) -> Value {
    user.post(
        "/api/messages",
        &json!({ "contactId": contact["id"], "body": body }),
    )
    .await
    .ok(201)
    .clone()
}

async fn set_status(user: &User<'_>, id: &str, body: Value) -> Value {
    user.post(&format!("/api/messages/{id}/status"), &body)
        .await
        .ok(200)
        .clone()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_direct_message_is_queued_to_the_contacts_address() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let ada = alice
        .post(
            "/api/contacts",
            &json!({ "name": "Ada", "phone": "+14155552671", "email": "ada@example.com" }),
        )
        .await
        .ok(201)
        .clone();
    let grace = alice
        .post(
            "/api/contacts",
            &json!({ "name": "Grace", "email": "grace@example.com" }),
        )
        .await
        .ok(201)
        .clone();

    let sms = send(&alice, &ada, "Hello Ada").await;
    assert_eq!(sms["channel"], "sms", "phone first");
    assert_eq!(sms["recipient"], "+14155552671");
    assert_eq!(sms["status"], "queued");
    assert_eq!(sms["contactId"], ada["id"]);
    assert_eq!(sms["campaignId"], Value::Null);
    assert_eq!(sms["tenantId"], tenant.to_string());
    assert_eq!(sms["body"], "Hello Ada");
    assert!(sms["queuedAt"].is_string() && sms["createdAt"].is_string());
    for unset in [
        "sendingAt",
        "sentAt",
        "deliveredAt",
        "readAt",
        "failedAt",
        "error",
        "providerMessageId",
    ] {
        assert_eq!(sms[unset], Value::Null, "{unset}");
    }
    let email = alice
        .post(
            "/api/messages",
            &json!({ "contactId": ada["id"], "body": "Hi", "channel": "email" }),
        )
        .await;
    assert_eq!(email.ok(201)["recipient"], "ada@example.com");
    let only_email = send(&alice, &grace, "Hello Grace").await;
    assert_eq!(only_email["channel"], "email");
    assert_eq!(only_email["recipient"], "grace@example.com");

    let path = format!("/api/messages/{}", sms["id"].as_str().unwrap());
    assert_eq!(alice.get(&path).await.ok(200), &sms);
    let list = alice.get("/api/messages").await;
    assert_eq!(list.ok(200)["items"].as_array().unwrap().len(), 3);

    // message_created carries the message, once per message.
    let events: Vec<(String, Value)> =
        sqlx::query_as("SELECT type, payload FROM outbox_events WHERE tenant_id = $1 AND type LIKE 'message%' ORDER BY seq")
            .bind(tenant)
            .fetch_all(&app.owner)
            .await
            .unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|(t, _)| t == "message_created"));
    assert_eq!(events[0].1, sms);
}

#[tokio::test]
async fn only_live_reachable_contacts_who_did_not_opt_out() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let bob_tenant = app.tenant("bob").await;
    let bob = app.user("bob", bob_tenant);
    let bobs_contact = bob.contact("Bob's", "+14155550000").await;

    let opted_out = alice
        .post(
            "/api/contacts",
            &json!({ "name": "Quiet", "phone": "+14155552672", "optedOut": true }),
        )
        .await
        .ok(201)
        .clone();
    let deleted = alice.contact("Gone", "+14155552673").await;
    let deleted_path = format!("/api/contacts/{}", deleted["id"].as_str().unwrap());
    assert_eq!(alice.delete(&deleted_path).await.status, 204);
    let phone_only = alice.contact("Phone", "+14155552674").await;
    let events = app.all_events().await;

    let reply = alice
        .post(
            "/api/messages",
            &json!({ "contactId": opted_out["id"], "body": "Hi" }),
        )
        .await;
    assert!(
        reply.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("opted out")
    );
    let unknown = alice
        .post(
            "/api/messages",
            &json!({ "contactId": Uuid::now_v7(), "body": "Hi" }),
        )
        .await;
    let unknown = unknown.problem(422).clone();
    assert_eq!(unknown["errors"][0]["pointer"], "/contactId");
    for contact in [&deleted, &bobs_contact] {
        let reply = alice
            .post(
                "/api/messages",
                &json!({ "contactId": contact["id"], "body": "Hi" }),
            )
            .await;
        assert_eq!(
            reply.problem(422)["errors"],
            unknown["errors"],
            "reads as unknown"
        );
    }
    let no_email = alice
        .post(
            "/api/messages",
            &json!({ "contactId": phone_only["id"], "body": "Hi", "channel": "email" }),
        )
        .await;
    assert_eq!(no_email.problem(422)["errors"][0]["pointer"], "/channel");

    assert_eq!(
        app.count("SELECT count(*) FROM messages WHERE tenant_id = $1", tenant)
            .await,
        0
    );
    assert_eq!(app.all_events().await, events);
}

#[tokio::test]
async fn status_moves_forward_only_and_late_updates_are_reported() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let ada = alice.contact("Ada", "+14155552671").await;
    let message = send(&alice, &ada, "Hi").await;
    let id = message["id"].as_str().unwrap();
    let changes = async || app.events(tenant, "message_status_changed").await;

    let sending = set_status(&alice, id, json!({ "status": "sending" })).await;
    assert_eq!(sending["applied"], true);
    assert_eq!(sending["from"], "queued");
    assert_eq!(sending["message"]["status"], "sending");
    assert!(sending["message"]["sendingAt"].is_string());

    let sent = set_status(
        &alice,
        id,
        json!({ "status": "sent", "providerMessageId": "SM123" }),
    )
    .await;
    assert_eq!(sent["applied"], true);
    assert_eq!(sent["message"]["providerMessageId"], "SM123");
    assert!(sent["message"]["sentAt"].is_string());

    // Delivered, then a late "sending" and a repeated "delivered": ignored, reported.
    let delivered = set_status(&alice, id, json!({ "status": "delivered" })).await;
    assert_eq!(delivered["applied"], true);
    assert_eq!(delivered["from"], "sent");
    let delivered = delivered["message"].clone();
    assert!(delivered["deliveredAt"].is_string());
    assert_eq!(changes().await, 3);

    let late = set_status(&alice, id, json!({ "status": "sending" })).await;
    assert_eq!(late["applied"], false);
    assert_eq!(
        late["reason"],
        "the message is already delivered, which is past sending"
    );
    assert_eq!(late["message"], delivered, "unchanged");
    assert!(late.get("from").is_none());
    let again = set_status(&alice, id, json!({ "status": "delivered" })).await;
    assert_eq!(again["applied"], false);
    assert_eq!(again["reason"], "the message is already delivered");
    let too_late = set_status(
        &alice,
        id,
        json!({ "status": "failed", "error": "carrier said no" }),
    )
    .await;
    assert_eq!(too_late["applied"], false);
    assert!(
        too_late["reason"]
            .as_str()
            .unwrap()
            .contains("not yet delivered")
    );
    assert_eq!(changes().await, 3, "ignored updates announce nothing");

    let read = set_status(&alice, id, json!({ "status": "read" })).await;
    assert_eq!(read["applied"], true);
    let read = read["message"].clone();
    assert!(read["readAt"].is_string());
    // Earlier timestamps are kept.
    for kept in ["sendingAt", "sentAt", "deliveredAt", "queuedAt"] {
        assert_eq!(read[kept], delivered[kept], "{kept}");
    }
    assert_eq!(
        alice.get(&format!("/api/messages/{id}")).await.ok(200),
        &read
    );

    // Failure, with its error, is final.
    let other = send(&alice, &ada, "Again").await;
    let other_id = other["id"].as_str().unwrap();
    let failed = set_status(
        &alice,
        other_id,
        json!({ "status": "failed", "error": "unreachable" }),
    )
    .await;
    assert_eq!(failed["applied"], true);
    assert_eq!(failed["message"]["error"], "unreachable");
    assert!(failed["message"]["failedAt"].is_string());
    for status in ["sending", "sent", "delivered", "read"] {
        let after = set_status(&alice, other_id, json!({ "status": status })).await;
        assert_eq!(after["applied"], false, "{status}");
        assert_eq!(after["message"]["status"], "failed");
    }

    // The event says where from and where to.
    let (payload,): (Value,) = sqlx::query_as(
        "SELECT payload FROM outbox_events WHERE tenant_id = $1 AND type = 'message_status_changed'
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(tenant)
    .fetch_one(&app.owner)
    .await
    .unwrap();
    assert_eq!(
        payload,
        json!({ "message": failed["message"], "from": "queued", "to": "failed" })
    );
    assert_eq!(changes().await, 5);
}

#[tokio::test]
async fn campaign_counters_follow_their_messages() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let mut contacts = Vec::new();
    for i in 0..4 {
        contacts.push(
            alice
                .contact(&format!("C{i}"), &format!("+1415555{:04}", 2700 + i))
                .await,
        );
    }
    let refs: Vec<&Value> = contacts.iter().collect();
    let (campaign, messages) = campaign_with_messages(&app, tenant, &refs).await;
    let ids: Vec<String> = messages.iter().map(|m| m.to_string()).collect();
    assert_eq!(counters(&app, campaign).await, counts(4, 0, 0, 0, 0));

    set_status(&alice, &ids[0], json!({ "status": "sending" })).await;
    assert_eq!(counters(&app, campaign).await, counts(4, 0, 0, 0, 0));
    set_status(&alice, &ids[0], json!({ "status": "sent" })).await;
    assert_eq!(counters(&app, campaign).await, counts(4, 1, 0, 0, 0));
    // Skipping ahead counts every stage passed.
    set_status(&alice, &ids[1], json!({ "status": "read" })).await;
    assert_eq!(counters(&app, campaign).await, counts(4, 2, 1, 1, 0));
    set_status(&alice, &ids[0], json!({ "status": "delivered" })).await;
    assert_eq!(counters(&app, campaign).await, counts(4, 2, 2, 1, 0));
    set_status(&alice, &ids[2], json!({ "status": "failed", "error": "x" })).await;
    assert_eq!(counters(&app, campaign).await, counts(4, 2, 2, 1, 1));
    // Ignored updates count nothing.
    set_status(&alice, &ids[1], json!({ "status": "delivered" })).await;
    set_status(&alice, &ids[2], json!({ "status": "sent" })).await;
    assert_eq!(counters(&app, campaign).await, counts(4, 2, 2, 1, 1));

    // The campaign shows them.
    let shown = alice.get(&format!("/api/campaigns/{campaign}")).await;
    let shown = shown.ok(200);
    assert_eq!(shown["sentCount"], 2);
    assert_eq!(shown["deliveredCount"], 2);
    assert_eq!(shown["readCount"], 1);
    assert_eq!(shown["failedCount"], 1);
    assert_eq!(shown["recipientsCount"], 4);

    // Still exactly one event per applied update, and none of them a campaign event.
    assert_eq!(app.events(tenant, "message_status_changed").await, 5);
    assert_eq!(app.events(tenant, "campaign_updated").await, 0);
}

#[tokio::test]
async fn simultaneous_status_updates_never_move_backwards() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let provider = app.user("alice", tenant);
    let mut contacts = Vec::new();
    for i in 0..20 {
        contacts.push(
            alice
                .contact(&format!("C{i}"), &format!("+1415555{:04}", 2800 + i))
                .await,
        );
    }
    let refs: Vec<&Value> = contacts.iter().collect();
    let (campaign, messages) = campaign_with_messages(&app, tenant, &refs).await;

    // delivered and sent at once: the message ends delivered whichever lands first.
    let delivered = json!({ "status": "delivered" });
    let sent = json!({ "status": "sent" });
    let mut applied = 0;
    for id in &messages[..10] {
        let path = format!("/api/messages/{id}/status");
        let (d, s) = tokio::join!(alice.post(&path, &delivered), provider.post(&path, &sent));
        let (d, s) = (d.ok(200).clone(), s.ok(200).clone());
        assert_eq!(d["applied"], true, "delivered always applies: {d}");
        applied += 1 + i32::from(s["applied"] == true);
        if s["applied"] == false {
            assert!(s["reason"].as_str().unwrap().contains("past sent"), "{s}");
        }
        let now = alice.get(&format!("/api/messages/{id}")).await;
        assert_eq!(now.ok(200)["status"], "delivered");
    }
    assert_eq!(
        app.events(tenant, "message_status_changed").await,
        i64::from(applied)
    );
    // Each message counted once as sent and once as delivered, whatever the order.
    assert_eq!(counters(&app, campaign).await, counts(20, 10, 10, 0, 0));

    // A burst of every status at once on each remaining message: it ends at the furthest
    // status it could reach, and the counters never count a stage twice.
    let bodies = [
        json!({ "status": "sending" }),
        json!({ "status": "sent" }),
        json!({ "status": "delivered" }),
        json!({ "status": "read" }),
        json!({ "status": "failed", "error": "boom" }),
    ];
    for id in &messages[10..] {
        let path = format!("/api/messages/{id}/status");
        let replies = futures_join(&alice, &path, &bodies).await;
        let applied: Vec<&Value> = replies.iter().filter(|r| r["applied"] == true).collect();
        assert!(!applied.is_empty());
        let status = alice.get(&format!("/api/messages/{id}")).await.ok(200)["status"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            status == "read" || status == "failed",
            "ended {status}, which a later report could still advance"
        );
        // Every applied change moved it forward from where the previous one left it.
        let mut moves: Vec<(String, String)> = applied
            .iter()
            .map(|r| {
                (
                    r["from"].as_str().unwrap().to_owned(),
                    r["message"]["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let rank = |s: &str| {
            ["queued", "sending", "sent", "delivered", "read", "failed"]
                .iter()
                .position(|x| *x == s)
                .unwrap()
        };
        moves.sort_by_key(|(from, _)| rank(from));
        let mut at = "queued".to_owned();
        for (from, to) in moves {
            assert_eq!(
                from, at,
                "a move started from a status the message had left"
            );
            at = to;
        }
        assert_eq!(at, status);
    }
    let c = counters(&app, campaign).await;
    assert!(c.sent_count <= 20 && c.delivered_count <= 20 && c.read_count <= 10);
    assert_eq!(c.read_count + c.failed_count, 10, "{c:?}");
}

/// Sends every body to `path` at once.
async fn futures_join(user: &User<'_>, path: &str, bodies: &[Value]) -> Vec<Value> {
    let mut tasks = tokio::task::JoinSet::new();
    for body in bodies {
        let request = user.request(reqwest::Method::POST, path).json(body);
        tasks.spawn(async move { herald_tests::read(request.send().await.unwrap()).await });
    }
    let mut out = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        out.push(reply.unwrap().ok(200).clone());
    }
    out
}

#[tokio::test]
async fn lists_filter_by_campaign_contact_status_and_time() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let ada = alice.contact("Ada", "+14155552671").await;
    let grace = alice.contact("Grace", "+14155552672").await;
    // A campaign has one message per contact (messages_campaign_contact).
    let ada2 = alice.contact("Ada II", "+14155552673").await;
    let grace2 = alice.contact("Grace II", "+14155552674").await;
    let ada3 = alice.contact("Ada III", "+14155552675").await;
    let (campaign, campaign_messages) =
        campaign_with_messages(&app, tenant, &[&ada, &grace, &ada2, &grace2, &ada3]).await;
    let c: Vec<String> = campaign_messages.iter().map(|m| m.to_string()).collect();
    set_status(&alice, &c[0], json!({ "status": "sent" })).await;
    set_status(&alice, &c[2], json!({ "status": "delivered" })).await;
    set_status(&alice, &c[3], json!({ "status": "failed", "error": "x" })).await;

    let mut direct = Vec::new();
    for i in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let to = if i == 1 { &grace } else { &ada };
        direct.push(send(&alice, to, &format!("Direct {i}")).await);
    }
    let d: Vec<String> = direct
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let rev = |v: &[&String]| v.iter().rev().map(|s| s.to_string()).collect::<Vec<_>>();
    let get = async |query: &str| {
        alice
            .get(&format!("/api/messages?{query}"))
            .await
            .ok(200)
            .clone()
    };

    // By campaign (all statuses merged, newest first), and by campaign and status.
    let by_campaign = get(&format!("campaignId={campaign}")).await;
    assert_eq!(ids(&by_campaign), rev(&c.iter().collect::<Vec<_>>()));
    let queued = get(&format!("campaignId={campaign}&status=queued")).await;
    assert_eq!(ids(&queued), rev(&[&c[1], &c[4]]));
    let delivered = get(&format!("campaignId={campaign}&status=delivered&offset=0")).await;
    assert_eq!(ids(&delivered), vec![c[2].clone()]);
    assert_eq!(delivered["total"], 1);
    // Cursor pages over a campaign walk each message once.
    let mut seen = Vec::new();
    let mut query = format!("campaignId={campaign}&limit=2");
    loop {
        let page = get(&query).await;
        seen.extend(ids(&page));
        match page["nextCursor"].as_str() {
            Some(cursor) => query = format!("campaignId={campaign}&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids(&by_campaign));
    let offset = get(&format!("campaignId={campaign}&limit=2&offset=2")).await;
    assert_eq!(ids(&offset), ids(&by_campaign)[2..4].to_vec());
    assert_eq!(offset["total"], 5);

    // By contact, by status, everything.
    let graces = get(&format!("contactId={}", grace["id"].as_str().unwrap())).await;
    assert_eq!(ids(&graces), rev(&[&c[1], &d[1]]));
    let graces_queued = get(&format!(
        "contactId={}&status=queued",
        grace["id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(ids(&graces_queued), rev(&[&c[1], &d[1]]));
    let failed = get("status=failed").await;
    assert_eq!(ids(&failed), vec![c[3].clone()]);
    let all = get("limit=200&offset=0").await;
    assert_eq!(all["total"], 8);
    assert_eq!(ids(&all)[..3], rev(&d.iter().collect::<Vec<_>>())[..]);

    // By creation time: from is inclusive, to exclusive.
    let middle = direct[1]["createdAt"].as_str().unwrap();
    let enc = |s: &str| s.replace('+', "%2B").replace(':', "%3A");
    let since = get(&format!("from={}", enc(middle))).await;
    assert_eq!(ids(&since), rev(&[&d[1], &d[2]]));
    let before = get(&format!("to={}&status=queued", enc(middle))).await;
    assert_eq!(ids(&before), rev(&[&c[1], &c[4], &d[0]]));
    let window = get(&format!(
        "from={}&to={}",
        enc(direct[0]["createdAt"].as_str().unwrap()),
        enc(direct[2]["createdAt"].as_str().unwrap())
    ))
    .await;
    assert_eq!(ids(&window), rev(&[&d[0], &d[1]]));
    let in_the_future = rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(1));
    assert_eq!(
        get(&format!("from={}", enc(&in_the_future))).await["items"],
        json!([])
    );

    for query in [
        "campaignId=nope",
        "contactId=123",
        "status=lost",
        "from=yesterday",
        "to=2026-13-01T00:00:00Z",
        "from=2030-01-01T00:00:00Z&to=2029-01-01T00:00:00Z",
        "limit=0",
        "limit=201",
        "cursor=%%%",
        "offset=1&cursor=AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let reply = alice.get(&format!("/api/messages?{query}")).await;
        assert!(reply.status.is_client_error(), "{query}: {}", reply.status);
        reply.problem(reply.status.as_u16());
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

#[tokio::test]
async fn messages_of_a_deleted_contact_stay_listed() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let ada = alice.contact("Ada", "+14155552671").await;
    let first = send(&alice, &ada, "One").await;
    let id = first["id"].as_str().unwrap();
    let second = send(&alice, &ada, "Two").await;

    let contact_path = format!("/api/contacts/{}", ada["id"].as_str().unwrap());
    assert_eq!(alice.delete(&contact_path).await.status, 204);
    alice.get(&contact_path).await.problem(404);

    let by_contact = alice
        .get(&format!(
            "/api/messages?contactId={}",
            ada["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        ids(by_contact.ok(200)),
        vec![second["id"].as_str().unwrap().to_owned(), id.to_owned()]
    );
    assert_eq!(
        alice.get("/api/messages").await.ok(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        alice.get(&format!("/api/messages/{id}")).await.ok(200),
        &first
    );
    // Its history still moves (a late delivery report), but nothing new is sent to it.
    let late = set_status(&alice, id, json!({ "status": "delivered" })).await;
    assert_eq!(late["applied"], true);
    let reply = alice
        .post(
            "/api/messages",
            &json!({ "contactId": ada["id"], "body": "Three" }),
        )
        .await;
    reply.problem(422);
}

#[tokio::test]
async fn bad_input_is_a_problem_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let ada = alice.contact("Ada", "+14155552671").await;
    let message = send(&alice, &ada, "Hi").await;
    let id = message["id"].as_str().unwrap();
    let status_path = format!("/api/messages/{id}/status");
    let events = app.all_events().await;
    let contact = ada["id"].clone();

    let bodies = [
        (json!({ "contactId": contact, "body": "" }), Some("/body")),
        (
            json!({ "contactId": contact, "body": "  \n " }),
            Some("/body"),
        ),
        (
            json!({ "contactId": contact, "body": "x".repeat(20_001) }),
            Some("/body"),
        ),
        (
            json!({ "contactId": contact, "body": "a\u{0}b" }),
            Some("/body"),
        ),
        (
            json!({ "contactId": "nope", "body": "Hi" }),
            Some("/contactId"),
        ),
        (
            json!({ "contactId": contact, "body": "Hi", "channel": "fax" }),
            Some("/channel"),
        ),
        (json!({ "contactId": contact }), None),
        (
            json!({ "contactId": contact, "body": "Hi", "campaignId": Uuid::now_v7() }),
            None,
        ),
        (json!({ "contactId": contact, "body": 5 }), None),
    ];
    for (body, pointer) in bodies {
        let reply = alice.post("/api/messages", &body).await;
        let problem = reply.problem(422);
        if let Some(pointer) = pointer {
            assert_eq!(problem["errors"][0]["pointer"], pointer, "{body}");
        }
    }
    let statuses = [
        (json!({ "status": "lost" }), Some("/status")),
        (json!({ "status": "failed" }), Some("/error")),
        (json!({ "status": "failed", "error": "" }), Some("/error")),
        (
            json!({ "status": "failed", "error": "x".repeat(2001) }),
            Some("/error"),
        ),
        (json!({ "status": "sent", "error": "why" }), Some("/error")),
        (
            json!({ "status": "sent", "providerMessageId": "x".repeat(256) }),
            Some("/providerMessageId"),
        ),
        (
            json!({ "status": "sent", "providerMessageId": "a\nb" }),
            Some("/providerMessageId"),
        ),
        (json!({ "state": "sent" }), None),
        (json!({}), None),
    ];
    for (body, pointer) in statuses {
        let reply = alice.post(&status_path, &body).await;
        let problem = reply.problem(422);
        if let Some(pointer) = pointer {
            assert_eq!(problem["errors"][0]["pointer"], pointer, "{body}");
        }
    }
    let syntax = alice
        .send(
            alice
                .request(reqwest::Method::POST, &status_path)
                .header("content-type", "application/json")
                .body("{\"status\":"),
        )
        .await;
    syntax.problem(400);
    let form = alice
        .send(
            alice
                .request(reqwest::Method::POST, "/api/messages")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("body=x"),
        )
        .await;
    form.problem(415);
    alice.get("/api/messages/not-a-uuid").await.problem(400);
    alice
        .post("/api/messages/123/status", &json!({ "status": "sent" }))
        .await
        .problem(400);

    assert_eq!(
        app.count("SELECT count(*) FROM messages WHERE tenant_id = $1", tenant)
            .await,
        1
    );
    assert_eq!(app.all_events().await, events);
    assert_eq!(
        alice.get(&format!("/api/messages/{id}")).await.ok(200),
        &message
    );
}

#[tokio::test]
async fn another_tenants_messages_are_not_found() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let bob_tenant = app.tenant("bob").await;
    let bob = app.user("bob", bob_tenant);
    let ada = alice.contact("Ada", "+14155552671").await;
    let (campaign, _) = campaign_with_messages(&app, tenant, &[&ada]).await;
    let message = send(&alice, &ada, "Hi").await;
    let id = message["id"].as_str().unwrap();

    let unknown = bob
        .get(&format!("/api/messages/{}", Uuid::now_v7()))
        .await
        .problem(404)
        .clone();
    let get = bob.get(&format!("/api/messages/{id}")).await;
    assert_eq!(get.problem(404)["detail"], unknown["detail"]);
    let status = bob
        .post(
            &format!("/api/messages/{id}/status"),
            &json!({ "status": "delivered" }),
        )
        .await;
    assert_eq!(status.problem(404)["detail"], unknown["detail"]);
    assert_eq!(bob.get("/api/messages").await.ok(200)["items"], json!([]));
    for query in [
        format!("campaignId={campaign}"),
        format!("contactId={}", ada["id"].as_str().unwrap()),
        "status=queued&offset=0".to_owned(),
    ] {
        let list = bob.get(&format!("/api/messages?{query}")).await;
        assert_eq!(list.ok(200)["items"], json!([]), "{query}");
    }

    assert_eq!(
        alice.get(&format!("/api/messages/{id}")).await.ok(200),
        &message
    );
    assert_eq!(app.events(tenant, "message_status_changed").await, 0);
    assert_eq!(app.events(bob_tenant, "message_status_changed").await, 0);
}

#[tokio::test]
async fn viewers_read_only() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    app.add_member(tenant, "victor", "viewer").await;
    let alice = app.user("alice", tenant);
    let victor = app.user("victor", tenant);
    let ada = alice.contact("Ada", "+14155552671").await;
    let message = send(&alice, &ada, "Hi").await;
    let id = message["id"].as_str().unwrap();
    let events = app.all_events().await;

    assert_eq!(
        victor.get(&format!("/api/messages/{id}")).await.ok(200),
        &message
    );
    victor.get("/api/messages").await.ok(200);
    victor
        .post(
            "/api/messages",
            &json!({ "contactId": ada["id"], "body": "Hi" }),
        )
        .await
        .problem(403);
    victor
        .post(
            &format!("/api/messages/{id}/status"),
            &json!({ "status": "sent" }),
        )
        .await
        .problem(403);
    assert_eq!(app.all_events().await, events);
    assert_eq!(
        alice.get(&format!("/api/messages/{id}")).await.ok(200)["status"],
        "queued"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_messages() {
    let app = TestApp::spawn().await;
    let doc = app.openapi().await;
    let schemas = &doc["components"]["schemas"];
    for name in [
        "Message",
        "MessagePage",
        "CreateMessage",
        "MessageStatusUpdate",
        "MessageStatusUpdateResult",
        "MessageStatus",
        "MessageChannel",
    ] {
        assert!(schemas[name].is_object(), "{name} is not described");
    }
    let params: Vec<&str> = doc["paths"]["/api/messages"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["campaignId", "contactId", "status", "from", "to", "cursor"] {
        assert!(
            params.contains(&name),
            "{name} is not a documented parameter"
        );
    }
}
