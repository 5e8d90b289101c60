//! Groups and their members, from HTTP request to database and back.

use herald_tests::{TestApp, User};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// Imports `n` contacts (phones numbered from `first`) and returns their ids, oldest first.
async fn contacts(app: &TestApp, user: &User<'_>, first: usize, n: usize) -> Vec<String> {
    let rows: Vec<Value> = (first..first + n)
        .map(|i| json!({ "name": format!("C{i}"), "phone": format!("+1415{:07}", 2_000_000 + i) }))
        .collect();
    let report = user.post("/api/contacts/import", &Value::Array(rows)).await;
    assert_eq!(report.ok(200)["imported"], n);
    let phones: Vec<String> = (first..first + n)
        .map(|i| format!("+1415{:07}", 2_000_000 + i))
        .collect();
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM contacts WHERE tenant_id = $1 AND phone = ANY($2) ORDER BY id",
    )
    .bind(user.tenant.unwrap())
    .bind(&phones)
    .fetch_all(&app.owner)
    .await
    .unwrap();
    assert_eq!(ids.len(), n);
    ids.iter().map(Uuid::to_string).collect()
}

async fn group(user: &User<'_>, name: &str) -> Value {
    user.post("/api/groups", &json!({ "name": name }))
        .await
        .ok(201)
        .clone()
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

/// Memberships of `group` and its stored `member_count`, as the owner sees them.
async fn membership(app: &TestApp, group: &str) -> (i64, i32) {
    let group: Uuid = group.parse().unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM group_contacts WHERE group_id = $1")
        .bind(group)
        .fetch_one(&app.owner)
        .await
        .unwrap();
    let count: i32 = sqlx::query_scalar("SELECT member_count FROM groups WHERE id = $1")
        .bind(group)
        .fetch_one(&app.owner)
        .await
        .unwrap();
    (rows, count)
}

/// The payload of the newest event of `kind` in `tenant`.
async fn last_event(app: &TestApp, tenant: Uuid, kind: &str) -> Value {
    sqlx::query_scalar(
        "SELECT payload FROM outbox_events WHERE tenant_id = $1 AND type = $2 ORDER BY id DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(kind)
    .fetch_one(&app.owner)
    .await
    .unwrap()
}

async fn table_rows(app: &TestApp) -> (i64, i64, i64) {
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&app.owner)
            .await
            .unwrap()
    };
    (
        count("SELECT count(*) FROM groups").await,
        count("SELECT count(*) FROM group_contacts").await,
        count("SELECT count(*) FROM outbox_events").await,
    )
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn create_get_list_update_and_soft_delete() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);

    let created = alice
        .post(
            "/api/groups",
            &json!({ "name": "  VIPs ", "description": "Best customers\nin London" }),
        )
        .await;
    let vips = created.ok(201).clone();
    assert_eq!(
        created.headers["location"],
        format!("/api/groups/{}", vips["id"].as_str().unwrap()).as_str()
    );
    assert_eq!(vips["name"], "VIPs");
    assert_eq!(vips["description"], "Best customers\nin London");
    assert_eq!(vips["memberCount"], 0);
    assert_eq!(vips["tenantId"], tenant.to_string());
    assert!(vips.get("deletedAt").is_none());
    assert_eq!(app.events(tenant, "group_created").await, 1);
    assert_eq!(last_event(&app, tenant, "group_created").await, vips);
    let path = format!("/api/groups/{}", id(&vips));

    assert_eq!(alice.get(&path).await.ok(200), &vips);

    // Names are unique among live groups, case-insensitively.
    let clash = alice.post("/api/groups", &json!({ "name": "vips" })).await;
    assert!(
        clash.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("name")
    );
    let other = group(&alice, "Newsletter").await;
    let other_path = format!("/api/groups/{}", id(&other));
    alice
        .patch(&other_path, &json!({ "name": "VIPS" }))
        .await
        .problem(409);

    // Lists: newest first, offset with total, cursor without.
    let list = alice.get("/api/groups?offset=0").await;
    let list = list.ok(200);
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["name"], "Newsletter");
    assert_eq!(list["items"][1]["name"], "VIPs");
    let first = alice.get("/api/groups?limit=1").await;
    let first = first.ok(200).clone();
    assert!(first.get("total").is_none());
    assert_eq!(first["items"][0]["name"], "Newsletter");
    let cursor = first["nextCursor"].as_str().unwrap();
    let second = alice
        .get(&format!("/api/groups?limit=1&cursor={cursor}"))
        .await;
    let second = second.ok(200);
    assert_eq!(second["items"][0]["name"], "VIPs");
    assert!(second.get("nextCursor").is_none());

    // PATCH: absent keeps, null clears.
    let updated = alice.patch(&path, &json!({ "description": null })).await;
    let updated = updated.ok(200).clone();
    assert_eq!(updated["name"], "VIPs");
    assert_eq!(updated["description"], Value::Null);
    let renamed = alice.patch(&path, &json!({ "name": "Gold" })).await;
    assert_eq!(renamed.ok(200)["name"], "Gold");
    assert_eq!(app.events(tenant, "group_updated").await, 2);
    assert_eq!(
        last_event(&app, tenant, "group_updated").await["name"],
        "Gold"
    );

    // Soft delete: gone from gets and lists, the row stays, stamped.
    assert_eq!(alice.delete(&path).await.status, 204);
    assert_eq!(app.events(tenant, "group_deleted").await, 1);
    assert!(last_event(&app, tenant, "group_deleted").await["deletedAt"].is_string());
    alice.get(&path).await.problem(404);
    alice.delete(&path).await.problem(404);
    alice
        .patch(&path, &json!({ "name": "Ghost" }))
        .await
        .problem(404);
    let list = alice.get("/api/groups?offset=0").await;
    assert_eq!(list.ok(200)["total"], 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM groups WHERE tenant_id = $1 AND deleted_at IS NOT NULL",
            tenant
        )
        .await,
        1
    );
    // A deleted group's name may be used again.
    group(&alice, "Gold").await;

    // Exactly one event per write, nothing for failed ones.
    assert_eq!(app.events(tenant, "group_created").await, 3);
    assert_eq!(app.events(tenant, "group_updated").await, 2);
    assert_eq!(app.events(tenant, "group_deleted").await, 1);
}

#[tokio::test]
async fn adding_and_removing_members_reports_every_id() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let ids = contacts(&app, &alice, 0, 4).await;
    let (a, b, c, gone) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    alice.delete(&format!("/api/contacts/{gone}")).await.ok(204);
    let unknown = Uuid::now_v7().to_string();
    let vips = group(&alice, "VIPs").await;
    let members = format!("/api/groups/{}/contacts", id(&vips));

    // Duplicates in one request count once; unknown and deleted contacts are not added.
    let reply = alice
        .post(
            &members,
            &json!({ "contactIds": [a, b, a, unknown, gone, b.to_uppercase()] }),
        )
        .await;
    let report = reply.ok(200);
    assert_eq!(report["added"], 2);
    assert_eq!(report["alreadyMembers"], json!([]));
    assert_eq!(
        strs(&report["notFound"]),
        vec![unknown.as_str(), gone.as_str()]
    );
    assert_eq!(report["group"]["memberCount"], 2);
    assert_eq!(membership(&app, id(&vips)).await, (2, 2));
    assert_eq!(app.events(tenant, "group_updated").await, 1);
    let event = last_event(&app, tenant, "group_updated").await;
    assert_eq!(event["memberCount"], 2);
    assert_eq!(event["id"], vips["id"]);

    // Re-adding keeps one membership and says so.
    let reply = alice.post(&members, &json!({ "contactIds": [c, a] })).await;
    let report = reply.ok(200);
    assert_eq!(report["added"], 1);
    assert_eq!(strs(&report["alreadyMembers"]), vec![a.as_str()]);
    assert_eq!(report["notFound"], json!([]));
    assert_eq!(membership(&app, id(&vips)).await, (3, 3));
    assert_eq!(app.events(tenant, "group_updated").await, 2);
    assert_eq!(
        last_event(&app, tenant, "group_updated").await["memberCount"],
        3
    );

    // A request that changes nothing writes nothing and announces nothing.
    let updated_at = alice
        .get(&format!("/api/groups/{}", id(&vips)))
        .await
        .ok(200)["updatedAt"]
        .clone();
    let reply = alice
        .post(&members, &json!({ "contactIds": [a, b, unknown] }))
        .await;
    let report = reply.ok(200);
    assert_eq!(report["added"], 0);
    assert_eq!(report["group"]["memberCount"], 3);
    assert_eq!(report["group"]["updatedAt"], updated_at);
    assert_eq!(app.events(tenant, "group_updated").await, 2);

    // The group shows its count.
    let got = alice.get(&format!("/api/groups/{}", id(&vips))).await;
    assert_eq!(got.ok(200)["memberCount"], 3);
    let listed = alice.get("/api/groups").await;
    assert_eq!(listed.ok(200)["items"][0]["memberCount"], 3);

    // Removing.
    let remove = |body: Value| {
        let members = members.clone();
        let alice = &alice;
        async move {
            alice
                .send(alice.request(Method::DELETE, &members).json(&body))
                .await
        }
    };
    let reply = remove(json!({ "contactIds": [a, unknown, a] })).await;
    let report = reply.ok(200);
    assert_eq!(report["removed"], 1);
    assert_eq!(strs(&report["notMembers"]), vec![unknown.as_str()]);
    assert_eq!(report["group"]["memberCount"], 2);
    assert_eq!(membership(&app, id(&vips)).await, (2, 2));
    assert_eq!(app.events(tenant, "group_updated").await, 3);
    assert_eq!(
        last_event(&app, tenant, "group_updated").await["memberCount"],
        2
    );

    let reply = remove(json!({ "contactIds": [a] })).await;
    let report = reply.ok(200);
    assert_eq!(report["removed"], 0);
    assert_eq!(strs(&report["notMembers"]), vec![a.as_str()]);
    assert_eq!(app.events(tenant, "group_updated").await, 3);

    let reply = remove(json!({ "contactIds": [b, c] })).await;
    assert_eq!(reply.ok(200)["removed"], 2);
    assert_eq!(membership(&app, id(&vips)).await, (0, 0));
    assert_eq!(app.events(tenant, "group_updated").await, 4);
}

#[tokio::test]
async fn members_page_by_cursor() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let ids = contacts(&app, &alice, 0, 7).await;
    let outsider = contacts(&app, &alice, 100, 1).await;
    let vips = group(&alice, "VIPs").await;
    let members = format!("/api/groups/{}/contacts", id(&vips));
    alice
        .post(&members, &json!({ "contactIds": ids }))
        .await
        .ok(200);

    let mut seen = Vec::new();
    let mut path = format!("{members}?limit=3");
    loop {
        let page = alice.get(&path).await;
        let page = page.ok(200);
        assert!(page.get("total").is_none());
        for item in page["items"].as_array().unwrap() {
            assert!(item["addedAt"].is_string());
            assert!(item["name"].is_string(), "members are contacts");
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("{members}?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, expected, "every member once, newest first");
    assert!(!seen.contains(&outsider[0]));

    // Bad paging, unknown and deleted groups.
    for query in ["limit=0", "limit=201", "cursor=%%%", "offset=0"] {
        alice.get(&format!("{members}?{query}")).await.problem(422);
    }
    alice
        .get(&format!("/api/groups/{}/contacts", Uuid::now_v7()))
        .await
        .problem(404);
    alice
        .delete(&format!("/api/groups/{}", id(&vips)))
        .await
        .ok(204);
    alice.get(&members).await.problem(404);
    alice
        .post(&members, &json!({ "contactIds": [ids[0]] }))
        .await
        .problem(404);
    let remove = alice
        .send(
            alice
                .request(Method::DELETE, &members)
                .json(&json!({ "contactIds": [ids[0]] })),
        )
        .await;
    remove.problem(404);
}

#[tokio::test]
async fn contacts_filter_by_group() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let ids = contacts(&app, &alice, 0, 12).await;
    let vips = group(&alice, "VIPs").await;
    let empty = group(&alice, "Empty").await;
    let members: Vec<&String> = ids.iter().step_by(2).collect(); // 6 of 12
    alice
        .post(
            &format!("/api/groups/{}/contacts", id(&vips)),
            &json!({ "contactIds": members }),
        )
        .await
        .ok(200);
    let filter = format!("/api/contacts?groupId={}", id(&vips));

    let all = alice.get(&format!("{filter}&offset=0")).await;
    let all = all.ok(200);
    assert_eq!(all["total"], 6);
    let got: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = members.iter().rev().map(|s| s.as_str()).collect();
    assert_eq!(got, expected, "members only, newest first");

    // Cursor pages walk the group exactly once.
    let mut seen = Vec::new();
    let mut path = format!("{filter}&limit=4");
    loop {
        let page = alice.get(&path).await;
        let page = page.ok(200);
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("{filter}&limit=4&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);

    // Offset pages and search combine with the filter.
    let second = alice.get(&format!("{filter}&limit=4&offset=4")).await;
    let second = second.ok(200);
    assert_eq!(second["total"], 6);
    assert_eq!(second["items"].as_array().unwrap().len(), 2);
    let search = alice.get(&format!("{filter}&search=C10&offset=0")).await;
    let search = search.ok(200);
    assert_eq!(search["total"], 1);
    assert_eq!(search["items"][0]["name"], "C10");
    let not_member = alice.get(&format!("{filter}&search=C11&offset=0")).await;
    assert_eq!(not_member.ok(200)["total"], 0);

    let none = alice
        .get(&format!("/api/contacts?groupId={}&offset=0", id(&empty)))
        .await;
    assert_eq!(none.ok(200)["total"], 0);

    // A malformed, unknown or deleted group is a problem, not an empty page.
    alice
        .get("/api/contacts?groupId=not-a-uuid")
        .await
        .problem(422);
    alice
        .get(&format!("/api/contacts?groupId={}", Uuid::now_v7()))
        .await
        .problem(404);
    alice
        .delete(&format!("/api/groups/{}", id(&vips)))
        .await
        .ok(204);
    alice.get(&filter).await.problem(404);
}

#[tokio::test]
async fn a_deleted_contact_leaves_its_groups() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let ids = contacts(&app, &alice, 0, 3).await;
    let vips = group(&alice, "VIPs").await;
    let news = group(&alice, "Newsletter").await;
    let old = group(&alice, "Old").await;
    for g in [&vips, &news, &old] {
        alice
            .post(
                &format!("/api/groups/{}/contacts", id(g)),
                &json!({ "contactIds": ids }),
            )
            .await
            .ok(200);
    }
    alice
        .delete(&format!("/api/groups/{}", id(&old)))
        .await
        .ok(204);
    let lonely = group(&alice, "Lonely").await;
    let updated_before = app.events(tenant, "group_updated").await;

    alice
        .delete(&format!("/api/contacts/{}", ids[0]))
        .await
        .ok(204);

    // Every group it was in, the deleted one included, counts one member less.
    for g in [&vips, &news, &old] {
        assert_eq!(membership(&app, id(g)).await, (2, 2), "{}", g["name"]);
    }
    assert_eq!(membership(&app, id(&lonely)).await, (0, 0));
    let got = alice.get(&format!("/api/groups/{}", id(&vips))).await;
    assert_eq!(got.ok(200)["memberCount"], 2);
    let members = alice
        .get(&format!("/api/groups/{}/contacts", id(&vips)))
        .await;
    assert_eq!(members.ok(200)["items"].as_array().unwrap().len(), 2);
    let filtered = alice
        .get(&format!("/api/contacts?groupId={}&offset=0", id(&news)))
        .await;
    assert_eq!(filtered.ok(200)["total"], 2);

    // One contact_deleted, and one group_updated per live group it left, with the new count.
    assert_eq!(app.events(tenant, "contact_deleted").await, 1);
    assert_eq!(
        app.events(tenant, "group_updated").await,
        updated_before + 2
    );
    let payloads: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM outbox_events WHERE tenant_id = $1 AND type = 'group_updated'
         ORDER BY id DESC LIMIT 2",
    )
    .bind(tenant)
    .fetch_all(&app.owner)
    .await
    .unwrap();
    let mut names: Vec<&str> = payloads
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["Newsletter", "VIPs"]);
    assert!(payloads.iter().all(|p| p["memberCount"] == 2));

    // A contact in no group deletes as before.
    let solo = contacts(&app, &alice, 50, 1).await;
    alice
        .delete(&format!("/api/contacts/{}", solo[0]))
        .await
        .ok(204);
    assert_eq!(
        app.events(tenant, "group_updated").await,
        updated_before + 2
    );
}

#[tokio::test]
async fn two_simultaneous_adds_of_the_same_contacts_give_one_membership_each() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let ids = contacts(&app, &alice, 0, 200).await;
    let vips = group(&alice, "VIPs").await;
    let members = format!("/api/groups/{}/contacts", id(&vips));
    let mut reversed = ids.clone();
    reversed.reverse();

    let body_a = json!({ "contactIds": ids });
    let body_b = json!({ "contactIds": reversed });
    let (a, b) = tokio::join!(alice.post(&members, &body_a), alice.post(&members, &body_b));
    let (a, b) = (a.ok(200), b.ok(200));
    let added = a["added"].as_u64().unwrap() + b["added"].as_u64().unwrap();
    assert_eq!(added, 200, "a: {}, b: {}", a["added"], b["added"]);
    let already = a["alreadyMembers"].as_array().unwrap().len()
        + b["alreadyMembers"].as_array().unwrap().len();
    assert_eq!(already, 200);
    assert_eq!(membership(&app, id(&vips)).await, (200, 200));
    let got = alice.get(&format!("/api/groups/{}", id(&vips))).await;
    assert_eq!(got.ok(200)["memberCount"], 200);
    // Only the request that changed something announced it.
    assert_eq!(app.events(tenant, "group_updated").await, 1);
    assert_eq!(
        last_event(&app, tenant, "group_updated").await["memberCount"],
        200
    );
}

#[tokio::test]
async fn counts_stay_exact_when_adds_removes_and_contact_deletes_race() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let ids = contacts(&app, &alice, 0, 60).await;
    let one = group(&alice, "One").await;
    let two = group(&alice, "Two").await;
    let path = |g: &Value| format!("/api/groups/{}/contacts", id(g));
    alice
        .post(&path(&two), &json!({ "contactIds": ids[..30] }))
        .await
        .ok(200);

    // Overlapping adds to both groups, removals from one, and deletions of contacts in
    // both, all at once.
    let mut requests = Vec::new();
    for round in 0..3 {
        let chunk: Vec<&String> = ids.iter().skip(round * 20).take(40).collect();
        for g in [&one, &two] {
            let body = json!({ "contactIds": chunk });
            requests.push(alice.request(Method::POST, &path(g)).json(&body));
        }
    }
    for round in 0..2 {
        let chunk: Vec<&String> = ids.iter().skip(10 + round * 25).take(15).collect();
        let body = json!({ "contactIds": chunk });
        requests.push(alice.request(Method::DELETE, &path(&two)).json(&body));
    }
    let deleted: Vec<&String> = ids.iter().step_by(6).collect();
    for c in &deleted {
        requests.push(alice.request(Method::DELETE, &format!("/api/contacts/{c}")));
    }
    let replies = join_all(requests.into_iter().map(|r| alice.send(r)).collect()).await;
    let (memberships, deletions) = replies.split_at(replies.len() - deleted.len());
    for reply in memberships {
        reply.ok(200);
    }
    for reply in deletions {
        assert_eq!(reply.status, 204, "{}", reply.json);
    }

    for g in [&one, &two] {
        let (rows, count) = membership(&app, id(g)).await;
        assert_eq!(rows, i64::from(count), "{}", g["name"]);
    }
    let orphans = app
        .count(
            "SELECT count(*) FROM group_contacts m JOIN contacts c
               ON c.tenant_id = m.tenant_id AND c.id = m.contact_id
             WHERE m.tenant_id = $1 AND c.deleted_at IS NOT NULL",
            tenant,
        )
        .await;
    assert_eq!(orphans, 0, "a deleted contact is a member");
}

/// Awaits every future concurrently; the outputs in the futures' order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut pending: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot
                && let Poll::Ready(value) = future.as_mut().poll(cx)
            {
                *output = Some(value);
                *slot = None;
            }
        }
        if pending.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn ten_thousand_ids_a_request_and_no_more() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let ids = contacts(&app, &alice, 0, 10_000).await;
    let vips = group(&alice, "VIPs").await;
    let members = format!("/api/groups/{}/contacts", id(&vips));

    let mut too_many: Vec<String> = ids.clone();
    too_many.push(Uuid::now_v7().to_string());
    let reply = alice
        .post(&members, &json!({ "contactIds": too_many }))
        .await;
    assert_eq!(reply.problem(422)["errors"][0]["pointer"], "/contactIds");
    assert_eq!(membership(&app, id(&vips)).await, (0, 0));

    let reply = alice.post(&members, &json!({ "contactIds": ids })).await;
    assert_eq!(reply.ok(200)["added"], 10_000);
    assert_eq!(membership(&app, id(&vips)).await, (10_000, 10_000));
    assert_eq!(app.events(tenant, "group_updated").await, 1);

    let reply = alice
        .send(
            alice
                .request(Method::DELETE, &members)
                .json(&json!({ "contactIds": ids })),
        )
        .await;
    assert_eq!(reply.ok(200)["removed"], 10_000);
    assert_eq!(membership(&app, id(&vips)).await, (0, 0));
    assert_eq!(app.events(tenant, "group_updated").await, 2);
}

#[tokio::test]
async fn bad_input_is_a_problem_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let ids = contacts(&app, &alice, 0, 2).await;
    let vips = group(&alice, "VIPs").await;
    let path = format!("/api/groups/{}", id(&vips));
    let members = format!("{path}/contacts");
    alice
        .post(&members, &json!({ "contactIds": [ids[0]] }))
        .await
        .ok(200);
    let before = table_rows(&app).await;

    let creates = [
        ("missing name", json!({}), None),
        ("empty name", json!({ "name": "  " }), Some("/name")),
        (
            "long name",
            json!({ "name": "x".repeat(201) }),
            Some("/name"),
        ),
        (
            "control character",
            json!({ "name": "a\u{1}b" }),
            Some("/name"),
        ),
        (
            "long description",
            json!({ "name": "X", "description": "d".repeat(2001) }),
            Some("/description"),
        ),
        (
            "unknown field",
            json!({ "name": "X", "memberCount": 5 }),
            None,
        ),
        ("wrong type", json!({ "name": 7 }), None),
        ("not an object", json!(["X"]), None),
    ];
    for (what, body, pointer) in creates {
        let reply = alice.post("/api/groups", &body).await;
        assert_eq!(reply.status, 422, "{what}: {}", reply.json);
        let problem = reply.problem(422);
        if let Some(pointer) = pointer {
            assert_eq!(problem["errors"][0]["pointer"], pointer, "{what}");
        }
    }
    for body in [
        json!({}),
        json!({ "name": "" }),
        json!({ "description": "d".repeat(2001) }),
        json!({ "name": "X", "colour": "red" }),
    ] {
        alice.patch(&path, &body).await.problem(422);
    }

    let membership_bodies = [
        (
            "empty list",
            json!({ "contactIds": [] }),
            Some("/contactIds"),
        ),
        ("missing list", json!({}), None),
        ("not a list", json!({ "contactIds": ids[1] }), None),
        (
            "malformed id",
            json!({ "contactIds": [ids[1], "nope"] }),
            Some("/contactIds/1"),
        ),
        ("number", json!({ "contactIds": [ids[1], 5] }), None),
        (
            "unknown field",
            json!({ "contactIds": [ids[1]], "force": true }),
            None,
        ),
    ];
    for (what, body, pointer) in membership_bodies {
        for method in [Method::POST, Method::DELETE] {
            let reply = alice
                .send(alice.request(method.clone(), &members).json(&body))
                .await;
            let problem = reply.problem(422);
            if let Some(pointer) = pointer {
                assert_eq!(problem["errors"][0]["pointer"], pointer, "{what} {method}");
            }
        }
    }

    // Not JSON, the wrong media type, no body.
    for (method, target) in [
        (Method::POST, "/api/groups".to_owned()),
        (Method::PATCH, path.clone()),
        (Method::POST, members.clone()),
        (Method::DELETE, members.clone()),
    ] {
        let syntax = alice
            .send(
                alice
                    .request(method.clone(), &target)
                    .header("content-type", "application/json")
                    .body("{\"name\":"),
            )
            .await;
        syntax.problem(400);
        let form = alice
            .send(
                alice
                    .request(method.clone(), &target)
                    .header("content-type", "text/plain")
                    .body("name=x"),
            )
            .await;
        form.problem(415);
        alice
            .send(alice.request(method.clone(), &target))
            .await
            .problem(400);
    }

    // Malformed ids in paths.
    alice.get("/api/groups/not-a-uuid").await.problem(400);
    alice
        .patch("/api/groups/123", &json!({ "name": "X" }))
        .await
        .problem(400);
    alice.delete("/api/groups/zzz").await.problem(400);
    alice.get("/api/groups/zzz/contacts").await.problem(400);
    alice
        .post(
            "/api/groups/zzz/contacts",
            &json!({ "contactIds": [ids[1]] }),
        )
        .await
        .problem(400);
    alice.delete("/api/groups/zzz/contacts").await.problem(400);

    // Paging parameters.
    for query in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "offset=-1",
        "offset=100001",
        "cursor=%%%",
        "offset=0&cursor=AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        alice
            .get(&format!("/api/groups?{query}"))
            .await
            .problem(422);
    }

    assert_eq!(table_rows(&app).await, before, "bad input wrote something");
    assert_eq!(membership(&app, id(&vips)).await, (1, 1));
    assert_eq!(alice.get(&path).await.ok(200)["name"], "VIPs");
}

#[tokio::test]
async fn another_tenants_groups_and_contacts_are_not_found() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alice").await;
    let b = app.tenant("bob").await;
    let alice = app.user("alice", a);
    let bob = app.user("bob", b);
    let alice_ids = contacts(&app, &alice, 0, 2).await;
    let bob_ids = contacts(&app, &bob, 10, 2).await;
    let vips = group(&alice, "VIPs").await;
    let path = format!("/api/groups/{}", id(&vips));
    let members = format!("{path}/contacts");
    alice
        .post(&members, &json!({ "contactIds": [alice_ids[0]] }))
        .await
        .ok(200);
    let before = table_rows(&app).await;

    // A's group is invisible to B: the same 404 as an id that never existed.
    let unknown = bob.get(&format!("/api/groups/{}", Uuid::now_v7())).await;
    let unknown = unknown.problem(404).clone();
    let replies = [
        bob.get(&path).await,
        bob.patch(&path, &json!({ "name": "Mallory" })).await,
        bob.delete(&path).await,
        bob.get(&members).await,
        bob.post(&members, &json!({ "contactIds": bob_ids })).await,
        bob.send(
            bob.request(Method::DELETE, &members)
                .json(&json!({ "contactIds": [alice_ids[0]] })),
        )
        .await,
        bob.get(&format!("/api/contacts?groupId={}", id(&vips)))
            .await,
    ];
    for reply in replies {
        let problem = reply.problem(404);
        assert_eq!(problem["type"], unknown["type"]);
        assert_eq!(problem["detail"], unknown["detail"]);
    }
    assert_eq!(bob.get("/api/groups").await.ok(200)["items"], json!([]));
    assert_eq!(table_rows(&app).await, before);

    // B's contact ids in A's group are reported as not found, never added.
    let reply = alice
        .post(
            &members,
            &json!({ "contactIds": [bob_ids[0], alice_ids[1], bob_ids[1]] }),
        )
        .await;
    let report = reply.ok(200);
    assert_eq!(report["added"], 1);
    assert_eq!(
        strs(&report["notFound"]),
        vec![bob_ids[0].as_str(), bob_ids[1].as_str()]
    );
    assert_eq!(membership(&app, id(&vips)).await, (2, 2));
    let foreign = app
        .count(
            "SELECT count(*) FROM group_contacts m JOIN contacts c ON c.id = m.contact_id
             WHERE m.tenant_id = $1 AND c.tenant_id <> m.tenant_id",
            a,
        )
        .await;
    assert_eq!(foreign, 0);
    // Nor can B's ids be removed from A's group, or B's groups named by A.
    let bob_group = group(&bob, "Bob's").await;
    alice
        .get(&format!("/api/groups/{}", id(&bob_group)))
        .await
        .problem(404);
    alice
        .post(
            &format!("/api/groups/{}/contacts", id(&bob_group)),
            &json!({ "contactIds": alice_ids }),
        )
        .await
        .problem(404);
    assert_eq!(membership(&app, id(&bob_group)).await, (0, 0));
    assert_eq!(app.events(a, "group_updated").await, 2);
    assert_eq!(app.events(b, "group_updated").await, 0);
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_write() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    app.add_member(tenant, "vera", "viewer").await;
    let alice = app.user("alice", tenant);
    let vera = app.user("vera", tenant);
    let ids = contacts(&app, &alice, 0, 2).await;
    let vips = group(&alice, "VIPs").await;
    let path = format!("/api/groups/{}", id(&vips));
    let members = format!("{path}/contacts");
    alice
        .post(&members, &json!({ "contactIds": [ids[0]] }))
        .await
        .ok(200);
    let before = table_rows(&app).await;

    assert_eq!(vera.get(&path).await.ok(200)["memberCount"], 1);
    assert_eq!(
        vera.get("/api/groups").await.ok(200)["items"][0]["id"],
        vips["id"]
    );
    assert_eq!(
        vera.get(&members).await.ok(200)["items"][0]["id"],
        ids[0].as_str()
    );
    vera.get(&format!("/api/contacts?groupId={}", id(&vips)))
        .await
        .ok(200);

    let writes = [
        vera.post("/api/groups", &json!({ "name": "Mine" })).await,
        vera.patch(&path, &json!({ "name": "Mine" })).await,
        vera.delete(&path).await,
        vera.post(&members, &json!({ "contactIds": [ids[1]] }))
            .await,
        vera.send(
            vera.request(Method::DELETE, &members)
                .json(&json!({ "contactIds": [ids[0]] })),
        )
        .await,
    ];
    for reply in writes {
        reply.problem(403);
    }
    assert_eq!(table_rows(&app).await, before);
}

#[tokio::test]
async fn the_openapi_document_describes_every_group_route() {
    let app = TestApp::spawn().await;
    let doc = &app.openapi().await;
    for (path, methods) in [
        ("/api/groups", &["get", "post"][..]),
        ("/api/groups/{id}", &["get", "patch", "delete"][..]),
        ("/api/groups/{id}/contacts", &["get", "post", "delete"][..]),
    ] {
        for method in methods {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} is not documented"
            );
        }
    }
    assert!(
        doc["paths"]["/api/contacts"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "groupId")
    );
}
