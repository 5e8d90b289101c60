//! Campaigns: CRUD, the status machine through the API, and its races.

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

/// A message template, written directly (the templates API is not this test's subject).
async fn template(app: &TestApp, tenant: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    let mut tx = as_tenant(app, tenant).await;
    sqlx::query(
        "INSERT INTO message_templates (tenant_id, id, name, body)
         VALUES ($1, $2, $3, 'Hello {{ contact.name }}')",
    )
    .bind(tenant)
    .bind(id)
    .bind(format!("Template {id}"))
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// A group, written directly.
async fn group(app: &TestApp, tenant: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    let mut tx = as_tenant(app, tenant).await;
    sqlx::query("INSERT INTO groups (tenant_id, id, name) VALUES ($1, $2, $3)")
        .bind(tenant)
        .bind(id)
        .bind(format!("Group {id}"))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn exec(app: &TestApp, tenant: Uuid, sql: &'static str, id: &str) {
    let mut tx = as_tenant(app, tenant).await;
    sqlx::query(sql)
        .bind(tenant)
        .bind(Uuid::parse_str(id).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn future() -> String {
    rfc3339(OffsetDateTime::now_utc() + time::Duration::days(1))
}

struct Fixture {
    app: TestApp,
    tenant: Uuid,
    template: Uuid,
    group: Uuid,
}

impl Fixture {
    async fn new() -> Fixture {
        let app = TestApp::spawn().await;
        let tenant = app.tenant("alice").await;
        let template = template(&app, tenant).await;
        let group = group(&app, tenant).await;
        Fixture {
            app,
            tenant,
            template,
            group,
        }
    }

    fn alice(&self) -> User<'_> {
        self.app.user("alice", self.tenant)
    }

    async fn create(&self, extra: Value) -> Value {
        let mut body = json!({
            "name": "Spring sale",
            "templateId": self.template,
            "groupId": self.group,
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.alice()
            .post("/api/campaigns", &body)
            .await
            .ok(201)
            .clone()
    }

    /// A campaign brought to `status` through the API (completion belongs to the campaign
    /// engine, so `completed` is set directly).
    async fn campaign_in(&self, status: &str) -> String {
        let alice = self.alice();
        let scheduled = if status == "scheduled" {
            json!({ "scheduledAt": future() })
        } else {
            json!({})
        };
        let id = self.create(scheduled).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/api/campaigns/{id}");
        let act = async |verb: &str| {
            alice
                .post(&format!("{path}/{verb}"), &json!({}))
                .await
                .ok(200)
                .clone()
        };
        match status {
            "draft" => {}
            "scheduled" => assert_eq!(act("start").await["status"], "scheduled"),
            "running" => assert_eq!(act("start").await["status"], "running"),
            "paused" => {
                act("start").await;
                assert_eq!(act("pause").await["status"], "paused");
            }
            "cancelled" => assert_eq!(act("cancel").await["status"], "cancelled"),
            "completed" => {
                act("start").await;
                exec(
                    &self.app,
                    self.tenant,
                    "UPDATE campaigns SET status = 'completed', completed_at = now()
                     WHERE tenant_id = $1 AND id = $2",
                    &id,
                )
                .await;
            }
            other => panic!("no such status {other}"),
        }
        assert_eq!(alice.get(&path).await.ok(200)["status"], status);
        id
    }

    async fn events(&self, kind: &str) -> i64 {
        self.app.events(self.tenant, kind).await
    }
}

const STATUSES: [&str; 6] = [
    "draft",
    "scheduled",
    "running",
    "paused",
    "completed",
    "cancelled",
];

#[tokio::test]
async fn create_get_list_update_and_soft_delete() {
    let f = Fixture::new().await;
    let alice = f.alice();
    let at = "2030-01-02T03:04:05+01:00";

    let campaign = f
        .create(json!({ "name": "  Spring sale ", "scheduledAt": at }))
        .await;
    assert_eq!(campaign["name"], "Spring sale");
    assert_eq!(campaign["status"], "draft");
    assert_eq!(campaign["tenantId"], f.tenant.to_string());
    assert_eq!(campaign["templateId"], f.template.to_string());
    assert_eq!(campaign["groupId"], f.group.to_string());
    assert_eq!(campaign["scheduledAt"], "2030-01-02T02:04:05Z");
    for counter in [
        "recipientsCount",
        "queuedCount",
        "sentCount",
        "deliveredCount",
        "readCount",
        "failedCount",
    ] {
        assert_eq!(campaign[counter], 0, "{counter}");
    }
    for unset in ["startedAt", "completedAt", "cancelledAt"] {
        assert_eq!(campaign[unset], Value::Null, "{unset}");
    }
    assert!(campaign.get("deletedAt").is_none());
    let id = campaign["id"].as_str().unwrap();
    let path = format!("/api/campaigns/{id}");

    assert_eq!(alice.get(&path).await.ok(200), &campaign);
    let list = alice.get("/api/campaigns").await;
    assert_eq!(list.ok(200)["items"], json!([campaign]));

    // Change everything there is to change.
    let other_template = template(&f.app, f.tenant).await;
    let other_group = group(&f.app, f.tenant).await;
    let updated = alice
        .patch(
            &path,
            &json!({ "name": "Summer sale", "templateId": other_template,
                     "groupId": other_group, "scheduledAt": null }),
        )
        .await;
    let updated = updated.ok(200).clone();
    assert_eq!(updated["name"], "Summer sale");
    assert_eq!(updated["templateId"], other_template.to_string());
    assert_eq!(updated["groupId"], other_group.to_string());
    assert_eq!(updated["scheduledAt"], Value::Null, "null clears");
    let renamed = alice.patch(&path, &json!({ "name": "Autumn" })).await;
    assert_eq!(
        renamed.ok(200)["groupId"],
        other_group.to_string(),
        "absent keeps"
    );

    assert_eq!(alice.delete(&path).await.status, 204);
    alice.get(&path).await.problem(404);
    alice.delete(&path).await.problem(404);
    alice
        .patch(&path, &json!({ "name": "Ghost" }))
        .await
        .problem(404);
    alice
        .post(&format!("{path}/start"), &json!({}))
        .await
        .problem(404);
    assert_eq!(
        alice.get("/api/campaigns").await.ok(200)["items"],
        json!([])
    );
    let soft = f
        .app
        .count(
            "SELECT count(*) FROM campaigns WHERE tenant_id = $1 AND deleted_at IS NOT NULL",
            f.tenant,
        )
        .await;
    assert_eq!(soft, 1, "the row stays, stamped");

    // One event per write, each carrying the campaign as the API showed it.
    let events: Vec<(String, Value)> =
        sqlx::query_as("SELECT type, payload FROM outbox_events WHERE tenant_id = $1 ORDER BY seq")
            .bind(f.tenant)
            .fetch_all(&f.app.owner)
            .await
            .unwrap();
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "campaign_created",
            "campaign_updated",
            "campaign_updated",
            "campaign_deleted"
        ]
    );
    assert_eq!(events[0].1, campaign);
    assert_eq!(events[1].1, updated);
    assert!(events[3].1["deletedAt"].is_string());
}

#[tokio::test]
async fn template_and_group_must_be_live_and_the_tenants_own() {
    let f = Fixture::new().await;
    let alice = f.alice();
    let bob_tenant = f.app.tenant("bob").await;
    let bobs_template = template(&f.app, bob_tenant).await;
    let bobs_group = group(&f.app, bob_tenant).await;
    let deleted_template = template(&f.app, f.tenant).await;
    exec(
        &f.app,
        f.tenant,
        "UPDATE message_templates SET deleted_at = now() WHERE tenant_id = $1 AND id = $2",
        &deleted_template.to_string(),
    )
    .await;
    let deleted_group = group(&f.app, f.tenant).await;
    exec(
        &f.app,
        f.tenant,
        "UPDATE groups SET deleted_at = now() WHERE tenant_id = $1 AND id = $2",
        &deleted_group.to_string(),
    )
    .await;

    let cases = [
        (bobs_template, f.group, vec!["/templateId"]),
        (f.template, bobs_group, vec!["/groupId"]),
        (bobs_template, bobs_group, vec!["/templateId", "/groupId"]),
        (deleted_template, f.group, vec!["/templateId"]),
        (f.template, deleted_group, vec!["/groupId"]),
        (
            Uuid::now_v7(),
            Uuid::now_v7(),
            vec!["/templateId", "/groupId"],
        ),
    ];
    let mut details = Vec::new();
    for (template, group, pointers) in cases {
        let reply = alice
            .post(
                "/api/campaigns",
                &json!({ "name": "X", "templateId": template, "groupId": group }),
            )
            .await;
        let problem = reply.problem(422);
        let got: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert_eq!(got, pointers);
        details.push(problem["errors"].clone());
    }
    // Another tenant's template reads exactly as one that never existed.
    assert_eq!(details[2], details[5]);

    // The same holds for a patch.
    let campaign = f.create(json!({})).await;
    let path = format!("/api/campaigns/{}", campaign["id"].as_str().unwrap());
    let reply = alice
        .patch(&path, &json!({ "templateId": bobs_template }))
        .await;
    assert_eq!(reply.problem(422)["errors"][0]["pointer"], "/templateId");
    let reply = alice
        .patch(&path, &json!({ "groupId": deleted_group }))
        .await;
    assert_eq!(reply.problem(422)["errors"][0]["pointer"], "/groupId");
    assert_eq!(alice.get(&path).await.ok(200), &campaign);

    // A template deleted after the campaign was written keeps it from starting.
    exec(
        &f.app,
        f.tenant,
        "UPDATE message_templates SET deleted_at = now() WHERE tenant_id = $1 AND id = $2",
        &f.template.to_string(),
    )
    .await;
    let start = alice.post(&format!("{path}/start"), &json!({})).await;
    assert!(
        start.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("template")
    );
    assert_eq!(alice.get(&path).await.ok(200)["status"], "draft");

    assert_eq!(
        f.app
            .count(
                "SELECT count(*) FROM campaigns WHERE tenant_id = $1",
                f.tenant
            )
            .await,
        1
    );
    assert_eq!(f.events("campaign_created").await, 1);
    assert_eq!(f.events("campaign_updated").await, 0);
    assert_eq!(f.events("campaign_status_changed").await, 0);
}

/// Every (status, action) pair through the API: the legal ones move the campaign and emit
/// one `campaign_status_changed`; the others are 409s naming the current status and change
/// nothing.
#[tokio::test]
async fn the_whole_transition_table() {
    let f = Fixture::new().await;
    let alice = f.alice();
    let expected = |from: &str, verb: &str| -> Option<&'static str> {
        match (from, verb) {
            ("draft", "start") => Some("running"),
            ("draft" | "scheduled" | "running" | "paused", "cancel") => Some("cancelled"),
            ("running", "pause") => Some("paused"),
            ("paused", "resume") => Some("running"),
            _ => None,
        }
    };
    for from in STATUSES {
        for verb in ["start", "cancel", "pause", "resume"] {
            let id = f.campaign_in(from).await;
            let path = format!("/api/campaigns/{id}");
            let before = alice.get(&path).await.ok(200).clone();
            let events_before = f.events("campaign_status_changed").await;
            let all_before = f.app.all_events().await;

            let reply = alice.post(&format!("{path}/{verb}"), &json!({})).await;
            match expected(from, verb) {
                Some(to) => {
                    let campaign = reply.ok(200);
                    assert_eq!(campaign["status"], to, "{from} + {verb}");
                    assert_eq!(alice.get(&path).await.ok(200), campaign);
                    assert_eq!(f.events("campaign_status_changed").await, events_before + 1);
                    assert_eq!(f.app.all_events().await, all_before + 1, "only that event");
                    let (payload,): (Value,) = sqlx::query_as(
                        "SELECT payload FROM outbox_events WHERE tenant_id = $1
                         ORDER BY seq DESC LIMIT 1",
                    )
                    .bind(f.tenant)
                    .fetch_one(&f.app.owner)
                    .await
                    .unwrap();
                    assert_eq!(
                        payload,
                        json!({ "campaign": campaign, "from": from, "to": to })
                    );
                    match to {
                        "running" => assert!(campaign["startedAt"].is_string()),
                        "cancelled" => assert!(campaign["cancelledAt"].is_string()),
                        _ => {}
                    }
                }
                None => {
                    let problem = reply.problem(409);
                    assert_eq!(problem["currentStatus"], from, "{from} + {verb}");
                    let detail = problem["detail"].as_str().unwrap();
                    assert!(
                        detail.contains(&format!("current status is {from}")),
                        "{from} + {verb}: {detail}"
                    );
                    assert_eq!(alice.get(&path).await.ok(200), &before, "{from} + {verb}");
                    assert_eq!(f.app.all_events().await, all_before, "{from} + {verb}");
                }
            }
        }
    }
}

#[tokio::test]
async fn start_schedules_a_future_campaign_and_runs_a_due_one() {
    let f = Fixture::new().await;
    let alice = f.alice();

    // A past scheduledAt runs now.
    let past = rfc3339(OffsetDateTime::now_utc() - time::Duration::hours(1));
    let campaign = f.create(json!({ "scheduledAt": past })).await;
    let path = format!("/api/campaigns/{}", campaign["id"].as_str().unwrap());
    let started = alice.post(&format!("{path}/start"), &json!({})).await;
    assert_eq!(started.ok(200)["status"], "running");

    // A future one schedules; starting again before its time is refused.
    let id = f.campaign_in("scheduled").await;
    let path = format!("/api/campaigns/{id}");
    let scheduled = alice.get(&path).await.ok(200).clone();
    assert_eq!(scheduled["startedAt"], Value::Null);
    let early = alice.post(&format!("{path}/start"), &json!({})).await;
    let detail = early.problem(409)["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("scheduled") && detail.contains("scheduledAt"),
        "{detail}"
    );

    // Once its time has come, start runs it (as the scheduler will).
    exec(
        &f.app,
        f.tenant,
        "UPDATE campaigns SET scheduled_at = now() - interval '1 minute'
         WHERE tenant_id = $1 AND id = $2",
        &id,
    )
    .await;
    let due = alice.post(&format!("{path}/start"), &json!({})).await;
    let running = due.ok(200).clone();
    assert_eq!(running["status"], "running");
    let started_at = running["startedAt"].clone();
    assert!(started_at.is_string());

    // Pausing and resuming keeps the first start time.
    alice
        .post(&format!("{path}/pause"), &json!({}))
        .await
        .ok(200);
    let resumed = alice.post(&format!("{path}/resume"), &json!({})).await;
    assert_eq!(resumed.ok(200)["startedAt"], started_at);
    assert_eq!(f.events("campaign_status_changed").await, 5);
}

#[tokio::test]
async fn edits_only_in_draft_or_scheduled_and_no_delete_while_running() {
    let f = Fixture::new().await;
    let alice = f.alice();
    for status in STATUSES {
        let id = f.campaign_in(status).await;
        let path = format!("/api/campaigns/{id}");
        let before = alice.get(&path).await.ok(200).clone();
        let events = f.app.all_events().await;

        let reply = alice.patch(&path, &json!({ "name": "Renamed" })).await;
        if matches!(status, "draft" | "scheduled") {
            assert_eq!(reply.ok(200)["name"], "Renamed");
            assert_eq!(reply.json["status"], status);
            assert_eq!(f.app.all_events().await, events + 1);
        } else {
            assert_eq!(reply.problem(409)["currentStatus"], status);
            let detail = reply.json["detail"].as_str().unwrap().to_owned();
            assert!(
                detail.contains(&format!("current status is {status}")),
                "{detail}"
            );
            assert_eq!(alice.get(&path).await.ok(200), &before);
            assert_eq!(f.app.all_events().await, events);
        }
    }

    // A scheduled campaign keeps a schedule; it may move.
    let id = f.campaign_in("scheduled").await;
    let path = format!("/api/campaigns/{id}");
    let clear = alice.patch(&path, &json!({ "scheduledAt": null })).await;
    assert_eq!(clear.problem(422)["errors"][0]["pointer"], "/scheduledAt");
    let later = "2031-06-01T12:00:00Z";
    let moved = alice.patch(&path, &json!({ "scheduledAt": later })).await;
    assert_eq!(moved.ok(200)["scheduledAt"], later);

    // Delete: anything but a running campaign.
    for status in STATUSES {
        let id = f.campaign_in(status).await;
        let path = format!("/api/campaigns/{id}");
        let events = f.events("campaign_deleted").await;
        let reply = alice.delete(&path).await;
        if status == "running" {
            assert_eq!(reply.problem(409)["currentStatus"], "running");
            let detail = reply.json["detail"].as_str().unwrap().to_owned();
            assert!(detail.contains("current status is running"), "{detail}");
            assert_eq!(alice.get(&path).await.ok(200)["status"], "running");
            assert_eq!(f.events("campaign_deleted").await, events);
        } else {
            assert_eq!(reply.status, 204, "{status}: {}", reply.json);
            alice.get(&path).await.problem(404);
            assert_eq!(f.events("campaign_deleted").await, events + 1);
        }
    }
}

#[tokio::test]
async fn two_simultaneous_starts_one_wins() {
    let f = Fixture::new().await;
    let alice = f.alice();
    let again = f.app.user("alice", f.tenant);
    let empty = json!({});
    for round in 0..10 {
        let id = f.campaign_in("draft").await;
        let start = format!("/api/campaigns/{id}/start");
        let events = f.events("campaign_status_changed").await;
        let (a, b) = tokio::join!(alice.post(&start, &empty), again.post(&start, &empty));
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 409],
            "round {round}: {} / {}",
            a.json,
            b.json
        );
        let loser = if a.status == 409 { &a } else { &b };
        assert!(
            loser.json["detail"]
                .as_str()
                .unwrap()
                .contains("current status is running")
        );
        assert_eq!(
            f.events("campaign_status_changed").await,
            events + 1,
            "round {round}"
        );
        assert_eq!(
            alice.get(&format!("/api/campaigns/{id}")).await.ok(200)["status"],
            "running"
        );
    }

    // Pause racing cancel on a running campaign: both may win, one after the other, but
    // the campaign ends cancelled and every success left exactly one event.
    for _ in 0..5 {
        let id = f.campaign_in("running").await;
        let path = format!("/api/campaigns/{id}");
        let events = f.events("campaign_status_changed").await;
        let (pause_path, cancel_path) = (format!("{path}/pause"), format!("{path}/cancel"));
        let (pause, cancel) = tokio::join!(
            alice.post(&pause_path, &empty),
            again.post(&cancel_path, &empty)
        );
        assert_eq!(cancel.ok(200)["status"], "cancelled");
        let wins = 1 + i64::from(pause.status == 200);
        if pause.status != 200 {
            pause.problem(409);
        }
        assert_eq!(f.events("campaign_status_changed").await, events + wins);
        assert_eq!(alice.get(&path).await.ok(200)["status"], "cancelled");
    }

    // Start racing delete: never a deleted running campaign.
    for _ in 0..5 {
        let id = f.campaign_in("draft").await;
        let path = format!("/api/campaigns/{id}");
        let start_path = format!("{path}/start");
        let (start, delete) = tokio::join!(alice.post(&start_path, &empty), again.delete(&path));
        match (start.status.as_u16(), delete.status.as_u16()) {
            (200, 409) => assert_eq!(alice.get(&path).await.ok(200)["status"], "running"),
            (404, 204) => {
                alice.get(&path).await.problem(404);
            }
            other => panic!("start/delete gave {other:?}"),
        }
    }
}

#[tokio::test]
async fn lists_filter_by_status_and_page() {
    let f = Fixture::new().await;
    let alice = f.alice();
    let mut drafts = Vec::new();
    for _ in 0..7 {
        drafts.push(f.campaign_in("draft").await);
    }
    let mut running = Vec::new();
    for _ in 0..3 {
        running.push(f.campaign_in("running").await);
    }
    let deleted = f.campaign_in("draft").await;
    assert_eq!(
        alice
            .delete(&format!("/api/campaigns/{deleted}"))
            .await
            .status,
        204
    );

    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let newest_first = |mut v: Vec<String>| {
        v.reverse();
        v
    };

    let run = alice.get("/api/campaigns?status=running").await;
    assert_eq!(ids(run.ok(200)), newest_first(running.clone()));
    let none = alice.get("/api/campaigns?status=completed&offset=0").await;
    assert_eq!(none.ok(200)["total"], 0);

    // Cursor pages over drafts walk each exactly once; offset pages carry the total.
    let mut seen = Vec::new();
    let mut path = "/api/campaigns?status=draft&limit=3".to_owned();
    loop {
        let page = alice.get(&path).await;
        let page = page.ok(200);
        seen.extend(ids(page));
        match page["nextCursor"].as_str() {
            Some(c) => path = format!("/api/campaigns?status=draft&limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, newest_first(drafts.clone()));
    let second = alice.get("/api/campaigns?limit=4&offset=4").await;
    let second = second.ok(200);
    assert_eq!(second["total"], 10, "the deleted one is not counted");
    let mut everything = drafts.clone();
    everything.extend(running.clone());
    assert_eq!(ids(second), newest_first(everything)[4..8].to_vec());

    for query in [
        "status=bogus",
        "status=Draft",
        "limit=0",
        "limit=201",
        "offset=-1",
        "cursor=%%%",
        "offset=0&cursor=AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let reply = alice.get(&format!("/api/campaigns?{query}")).await;
        assert!(reply.status.is_client_error(), "{query}: {}", reply.status);
        reply.problem(reply.status.as_u16());
    }
}

#[tokio::test]
async fn bad_input_is_a_problem_and_writes_nothing() {
    let f = Fixture::new().await;
    let alice = f.alice();
    let campaign = f.create(json!({})).await;
    let path = format!("/api/campaigns/{}", campaign["id"].as_str().unwrap());
    let events = f.app.all_events().await;
    let (t, g) = (f.template.to_string(), f.group.to_string());

    let bodies = [
        (
            json!({ "name": " ", "templateId": t, "groupId": g }),
            Some("/name"),
        ),
        (
            json!({ "name": "x".repeat(201), "templateId": t, "groupId": g }),
            Some("/name"),
        ),
        (
            json!({ "name": "X", "templateId": "nope", "groupId": g }),
            Some("/templateId"),
        ),
        (
            json!({ "name": "X", "templateId": t, "groupId": g, "scheduledAt": "tomorrow" }),
            Some("/scheduledAt"),
        ),
        (
            json!({ "name": "X", "templateId": t, "groupId": g, "scheduledAt": "2030-01-01 10:00" }),
            Some("/scheduledAt"),
        ),
        (json!({ "name": "X", "templateId": t }), None),
        (
            json!({ "name": "X", "templateId": t, "groupId": g, "status": "running" }),
            None,
        ),
        (json!({ "name": 1, "templateId": t, "groupId": g }), None),
        (json!([]), None),
    ];
    for (body, pointer) in bodies {
        let reply = alice.post("/api/campaigns", &body).await;
        let problem = reply.problem(422);
        if let Some(pointer) = pointer {
            assert_eq!(problem["errors"][0]["pointer"], pointer, "{body}");
        }
    }
    for patch in [
        json!({}),
        json!({ "name": "" }),
        json!({ "status": "running" }),
        json!({ "scheduledAt": "soon" }),
        json!({ "groupId": 7 }),
    ] {
        alice.patch(&path, &patch).await.problem(422);
    }
    let syntax = alice
        .send(
            alice
                .request(reqwest::Method::POST, "/api/campaigns")
                .header("content-type", "application/json")
                .body("{\"name\":"),
        )
        .await;
    syntax.problem(400);
    let form = alice
        .send(
            alice
                .request(reqwest::Method::POST, "/api/campaigns")
                .header("content-type", "text/plain")
                .body("name=x"),
        )
        .await;
    form.problem(415);

    // Malformed ids on every route that takes one.
    for verb in ["start", "cancel", "pause", "resume"] {
        alice
            .post(&format!("/api/campaigns/not-a-uuid/{verb}"), &json!({}))
            .await
            .problem(400);
    }
    alice.get("/api/campaigns/123").await.problem(400);
    alice
        .patch("/api/campaigns/123", &json!({ "name": "X" }))
        .await
        .problem(400);
    alice.delete("/api/campaigns/123").await.problem(400);

    assert_eq!(
        f.app
            .count(
                "SELECT count(*) FROM campaigns WHERE tenant_id = $1",
                f.tenant
            )
            .await,
        1
    );
    assert_eq!(f.app.all_events().await, events);
    assert_eq!(alice.get(&path).await.ok(200), &campaign);
}

#[tokio::test]
async fn another_tenants_campaigns_are_not_found() {
    let f = Fixture::new().await;
    let bob_tenant = f.app.tenant("bob").await;
    let bob = f.app.user("bob", bob_tenant);
    let id = f.campaign_in("running").await;
    let path = format!("/api/campaigns/{id}");

    assert_eq!(bob.get("/api/campaigns").await.ok(200)["items"], json!([]));
    let unknown = bob
        .get(&format!("/api/campaigns/{}", Uuid::now_v7()))
        .await
        .problem(404)
        .clone();
    let mut replies = vec![
        bob.get(&path).await,
        bob.patch(&path, &json!({ "name": "Mallory" })).await,
        bob.delete(&path).await,
    ];
    for verb in ["start", "cancel", "pause", "resume"] {
        replies.push(bob.post(&format!("{path}/{verb}"), &json!({})).await);
    }
    for reply in replies {
        let problem = reply.problem(404);
        assert_eq!(problem["detail"], unknown["detail"]);
    }
    assert_eq!(f.alice().get(&path).await.ok(200)["status"], "running");
    assert_eq!(f.app.events(bob_tenant, "campaign_status_changed").await, 0);
    assert_eq!(f.app.events(f.tenant, "campaign_status_changed").await, 1);
}

#[tokio::test]
async fn viewers_read_only() {
    let f = Fixture::new().await;
    f.app.add_member(f.tenant, "victor", "viewer").await;
    let victor = f.app.user("victor", f.tenant);
    let id = f.campaign_in("draft").await;
    let path = format!("/api/campaigns/{id}");
    let events = f.app.all_events().await;

    victor.get(&path).await.ok(200);
    victor.get("/api/campaigns").await.ok(200);
    let body = json!({ "name": "X", "templateId": f.template, "groupId": f.group });
    victor.post("/api/campaigns", &body).await.problem(403);
    victor
        .patch(&path, &json!({ "name": "X" }))
        .await
        .problem(403);
    victor.delete(&path).await.problem(403);
    for verb in ["start", "cancel", "pause", "resume"] {
        victor
            .post(&format!("{path}/{verb}"), &json!({}))
            .await
            .problem(403);
    }
    assert_eq!(f.app.all_events().await, events);
    assert_eq!(f.alice().get(&path).await.ok(200)["status"], "draft");
}

#[tokio::test]
async fn the_openapi_document_describes_campaigns() {
    let app = TestApp::spawn().await;
    let doc = app.openapi().await;
    let schemas = &doc["components"]["schemas"];
    for name in [
        "Campaign",
        "CampaignPage",
        "CreateCampaign",
        "UpdateCampaign",
        "CampaignStatus",
    ] {
        assert!(schemas[name].is_object(), "{name} is not described");
    }
    assert_eq!(
        schemas["Campaign"]["properties"]["status"]["$ref"],
        "#/components/schemas/CampaignStatus"
    );
    for counter in ["recipientsCount", "sentCount", "failedCount"] {
        assert!(schemas["Campaign"]["properties"][counter].is_object());
    }
    // Every reference the campaign operations make resolves.
    let mut refs = Vec::new();
    collect_refs(&doc["paths"]["/api/campaigns"], &mut refs);
    collect_refs(&doc["paths"]["/api/campaigns/{id}/start"], &mut refs);
    collect_refs(&schemas["CampaignPage"], &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(schemas[name].is_object(), "{r} does not resolve");
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}
