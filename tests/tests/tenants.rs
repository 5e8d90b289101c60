//! Tenants and members: self-service tenant creation, the caller's tenants, members
//! administration with its owner rules, safe under concurrency.

use herald_tests::{Reply, TestApp, User};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// A client with a valid token and no tenant named.
fn anywhere<'a>(app: &'a TestApp, sub: &str) -> User<'a> {
    User {
        tenant: None,
        ..app.user(sub, Uuid::nil())
    }
}

async fn put(user: &User<'_>, sub: &str, role: &str) -> Reply {
    put_body(user, sub, &json!({ "role": role })).await
}

async fn put_body(user: &User<'_>, sub: &str, body: &Value) -> Reply {
    let path = format!("/api/tenant/members/{sub}");
    user.send(user.request(Method::PUT, &path).json(body)).await
}

async fn remove(user: &User<'_>, sub: &str) -> Reply {
    user.delete(&format!("/api/tenant/members/{sub}")).await
}

/// The tenant's members as the owner sees them in the database: (sub, role), by sub.
async fn members(app: &TestApp, tenant: Uuid) -> Vec<(String, String)> {
    sqlx::query_as("SELECT sub, role FROM tenant_members WHERE tenant_id = $1 ORDER BY sub")
        .bind(tenant)
        .fetch_all(&app.owner)
        .await
        .unwrap()
}

async fn owners(app: &TestApp, tenant: Uuid) -> i64 {
    app.count(
        "SELECT count(*) FROM tenant_members WHERE tenant_id = $1 AND role = 'owner'",
        tenant,
    )
    .await
}

async fn tenant_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&app.owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_tenant_created_through_the_api_is_usable_at_once() {
    let app = TestApp::spawn().await;
    let zoe = anywhere(&app, "zoe");
    assert_eq!(zoe.get("/api/tenants").await.ok(200)["items"], json!([]));

    let created = zoe
        .post("/api/tenants", &json!({ "name": "  Zoe's Shop " }))
        .await;
    let created = created.ok(201).clone();
    assert_eq!(created["name"], "Zoe's Shop");
    assert_eq!(created["role"], "owner");
    assert!(created["createdAt"].is_string());
    let tenant = Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    assert_eq!(
        members(&app, tenant).await,
        [("zoe".into(), "owner".into())]
    );

    // The creator works in it straight away.
    let in_tenant = app.user("zoe", tenant);
    in_tenant.contact("Ada", "+14155552671").await;
    assert_eq!(app.live_contacts(tenant).await, 1);
    let listed = in_tenant.get("/api/tenant/members").await;
    let listed = listed.ok(200)["items"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (&listed[0]["sub"], &listed[0]["role"]),
        (&json!("zoe"), &json!("owner"))
    );
    assert_eq!(
        zoe.get("/api/tenants").await.ok(200)["items"],
        json!([created])
    );

    // Nobody else is in it.
    app.user("eve", tenant)
        .get("/api/contacts")
        .await
        .problem(403);

    // Bad input creates nothing.
    let before = tenant_count(&app).await;
    for body in [
        json!({}),
        json!({ "name": "" }),
        json!({ "name": "   " }),
        json!({ "name": "x".repeat(201) }),
        json!({ "name": 42 }),
        json!({ "name": "Ok", "owner": "mallory" }),
    ] {
        zoe.post("/api/tenants", &body).await.problem(422);
    }
    let reply = zoe.post("/api/tenants", &json!({ "name": "" })).await;
    assert_eq!(reply.problem(422)["errors"][0]["pointer"], "/name");
    let not_json = zoe.request(Method::POST, "/api/tenants");
    zoe.send(
        not_json
            .header("content-type", "application/json")
            .body("{"),
    )
    .await
    .problem(400);
    // Without a valid token: 401.
    let no_token = app
        .request(Method::POST, "/api/tenants")
        .json(&json!({ "name": "X" }));
    herald_tests::read(no_token.send().await.unwrap())
        .await
        .problem(401);
    let no_token = app.request(Method::GET, "/api/tenants");
    herald_tests::read(no_token.send().await.unwrap())
        .await
        .problem(401);
    assert_eq!(tenant_count(&app).await, before);
    // Creating tenants writes no events (there is no tenant event type).
    assert_eq!(
        app.events(tenant, "contact_created").await,
        1,
        "only the contact's"
    );
    assert_eq!(app.all_events().await, 1);
}

#[tokio::test]
async fn the_tenant_list_shows_only_the_callers_tenants_with_their_role() {
    let app = TestApp::spawn().await;
    let alices = app.tenant("alice").await;
    let bobs = app.tenant("bob").await;
    let shared = app.tenant("carol").await;
    app.add_member(shared, "alice", "viewer").await;
    app.add_member(bobs, "dave", "admin").await;

    let list = anywhere(&app, "alice").get("/api/tenants").await;
    let items = list.ok(200)["items"].as_array().unwrap().clone();
    let got: Vec<(String, String)> = items
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_owned(),
                t["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (alices.to_string(), "owner".to_owned()),
            (shared.to_string(), "viewer".to_owned())
        ]
    );
    assert!(items.iter().all(|t| t["name"] == "Tenant"));

    // A tenant named in the request changes nothing: the list is the caller's.
    let named = app.user("alice", bobs).get("/api/tenants").await;
    assert_eq!(named.ok(200)["items"].as_array().unwrap().len(), 2);

    let bob = anywhere(&app, "bob").get("/api/tenants").await;
    assert_eq!(bob.ok(200)["items"][0]["id"], bobs.to_string());
    assert_eq!(bob.ok(200)["items"].as_array().unwrap().len(), 1);
    let nobody = anywhere(&app, "nobody").get("/api/tenants").await;
    assert_eq!(nobody.ok(200)["items"], json!([]));
}

#[tokio::test]
async fn owners_add_change_list_and_remove_members() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);

    // Added: 201; changed: 200; the same again: 200.
    let added = put(&alice, "bob", "admin").await;
    let added = added.ok(201).clone();
    assert_eq!(added["sub"], "bob");
    assert_eq!(added["role"], "admin");
    assert!(added["createdAt"].is_string());
    assert_eq!(put(&alice, "bob", "member").await.ok(200)["role"], "member");
    assert_eq!(put(&alice, "bob", "member").await.ok(200)["role"], "member");

    // The new member is in: bob reads and writes the tenant.
    let bob = app.user("bob", tenant);
    bob.contact("Ada", "+14155552671").await;

    // Free-form subs, percent-encoded in the path.
    put(&alice, "google-oauth2%7C1234%2Fx%20y", "viewer")
        .await
        .ok(201);
    app.user("google-oauth2|1234/x y", tenant)
        .get("/api/contacts")
        .await
        .ok(200);
    let long = "s".repeat(255);
    put(&alice, &long, "viewer").await.ok(201);

    let list = alice.get("/api/tenant/members").await;
    let subs: Vec<&str> = list.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["sub"].as_str().unwrap())
        .collect();
    assert_eq!(
        subs,
        ["alice", "bob", "google-oauth2|1234/x y", long.as_str()]
    );

    assert_eq!(remove(&alice, "bob").await.status, 204);
    remove(&alice, "bob").await.problem(404);
    bob.get("/api/contacts").await.problem(403);
    assert_eq!(
        members(&app, tenant).await,
        [
            ("alice".into(), "owner".into()),
            ("google-oauth2|1234/x y".into(), "viewer".into()),
            (long.clone(), "viewer".into())
        ]
    );

    // Bad input: 4xx, nothing written.
    let before = members(&app, tenant).await;
    for body in [
        json!({ "role": "superuser" }),
        json!({ "role": "Owner" }),
        json!({}),
        json!({ "role": "member", "extra": 1 }),
        json!({ "role": null }),
    ] {
        put_body(&alice, "carol", &body).await.problem(422);
    }
    let reply = put(&alice, "carol", "superuser").await;
    assert_eq!(reply.problem(422)["errors"][0]["pointer"], "/role");
    let not_json = alice.request(Method::PUT, "/api/tenant/members/carol");
    alice
        .send(
            not_json
                .header("content-type", "application/json")
                .body("{"),
        )
        .await
        .problem(400);
    put(&alice, &"s".repeat(256), "member").await.problem(400);
    remove(&alice, &"s".repeat(256)).await.problem(400);
    alice.get("/api/tenant/members?limit=0").await.problem(422);
    alice
        .get("/api/tenant/members?cursor=%%%")
        .await
        .problem(422);
    assert_eq!(members(&app, tenant).await, before);

    // Member changes emit no events: DESIGN.md has no member event type.
    assert_eq!(app.all_events().await, 1, "only bob's contact_created");
}

#[tokio::test]
async fn members_page_by_cursor_and_offset() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    for sub in ["m1", "m2", "m3", "m4", "m5"] {
        app.add_member(tenant, sub, "member").await;
    }
    let alice = app.user("alice", tenant);

    let mut seen = Vec::new();
    let mut path = "/api/tenant/members?limit=2".to_owned();
    loop {
        let page = alice.get(&path).await;
        let page = page.ok(200);
        for item in page["items"].as_array().unwrap() {
            seen.push(item["sub"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/tenant/members?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["alice", "m1", "m2", "m3", "m4", "m5"]);

    let page = alice.get("/api/tenant/members?limit=2&offset=4").await;
    let page = page.ok(200);
    assert_eq!(page["total"], 6);
    assert_eq!(page["items"][0]["sub"], "m4");
}

#[tokio::test]
async fn only_owners_and_admins_manage_members_and_only_in_their_tenant() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let other = app.tenant("olga").await;
    app.add_member(tenant, "mo", "member").await;
    app.add_member(tenant, "vera", "viewer").await;
    app.add_member(other, "bob", "member").await;

    let before = members(&app, tenant).await;
    for sub in ["mo", "vera"] {
        let user = app.user(sub, tenant);
        user.get("/api/tenant/members").await.problem(403);
        put(&user, "x", "viewer").await.problem(403);
        put(&user, sub, "admin").await.problem(403);
        remove(&user, "alice").await.problem(403);
        remove(&user, sub).await.problem(403);
    }
    // Not a member: 403.
    let eve = app.user("eve", tenant);
    eve.get("/api/tenant/members").await.problem(403);
    put(&eve, "eve", "owner").await.problem(403);
    assert_eq!(members(&app, tenant).await, before);

    // Members of another tenant are not found from this one and stay as they are.
    let alice = app.user("alice", tenant);
    remove(&alice, "bob").await.problem(404);
    remove(&alice, "olga").await.problem(404);
    let listed = alice.get("/api/tenant/members").await;
    assert!(
        listed.ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["sub"] != "bob" && m["sub"] != "olga")
    );
    assert_eq!(
        members(&app, other).await,
        [
            ("bob".into(), "member".into()),
            ("olga".into(), "owner".into())
        ]
    );
    // Naming the other tenant does not help: alice is not a member there.
    let elsewhere = app.user("alice", other);
    put(&elsewhere, "alice", "owner").await.problem(403);
    remove(&elsewhere, "olga").await.problem(403);
    assert_eq!(owners(&app, other).await, 1);
    // A members route needs a tenant.
    anywhere(&app, "alice")
        .get("/api/tenant/members")
        .await
        .problem(400);
}

#[tokio::test]
async fn admins_manage_members_but_never_owners() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    app.add_member(tenant, "dave", "admin").await;
    app.add_member(tenant, "frank", "member").await;
    let dave = app.user("dave", tenant);

    // What an admin may do.
    dave.get("/api/tenant/members").await.ok(200);
    put(&dave, "erin", "member").await.ok(201);
    put(&dave, "erin", "viewer").await.ok(200);
    put(&dave, "frank", "admin").await.ok(200);
    put(&dave, "frank", "member").await.ok(200);
    assert_eq!(remove(&dave, "erin").await.status, 204);

    // What it may not: create an owner, promote to owner, demote or remove an owner.
    let before = members(&app, tenant).await;
    put(&dave, "erin", "owner").await.problem(403);
    put(&dave, "frank", "owner").await.problem(403);
    put(&dave, "dave", "owner").await.problem(403);
    put(&dave, "alice", "admin").await.problem(403);
    put(&dave, "alice", "owner").await.problem(403);
    remove(&dave, "alice").await.problem(403);
    assert_eq!(members(&app, tenant).await, before);

    // An owner may do all of it.
    let alice = app.user("alice", tenant);
    put(&alice, "frank", "owner").await.ok(200);
    put(&alice, "frank", "admin").await.ok(200);
    put(&alice, "erin", "owner").await.ok(201);
    assert_eq!(remove(&alice, "erin").await.status, 204);
}

#[tokio::test]
async fn the_last_owner_can_be_neither_demoted_nor_removed() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);

    for role in ["admin", "member", "viewer"] {
        put(&alice, "alice", role).await.problem(409);
    }
    remove(&alice, "alice").await.problem(409);
    assert_eq!(
        members(&app, tenant).await,
        [("alice".into(), "owner".into())]
    );

    // With a second owner, either may step down, leaving the other.
    put(&alice, "carol", "owner").await.ok(201);
    put(&alice, "alice", "admin").await.ok(200);
    let carol = app.user("carol", tenant);
    remove(&carol, "carol").await.problem(409);
    assert_eq!(remove(&carol, "alice").await.status, 204);
    assert_eq!(
        members(&app, tenant).await,
        [("carol".into(), "owner".into())]
    );
}

#[tokio::test]
async fn two_owners_demoting_each_other_at_once_leave_an_owner() {
    let app = TestApp::spawn().await;
    for round in 0..10 {
        let tenant = app.tenant("ann").await;
        app.add_member(tenant, "ben", "owner").await;
        let ann = app.user("ann", tenant);
        let ben = app.user("ben", tenant);

        // Odd rounds remove, even rounds demote.
        let (a, b) = if round % 2 == 0 {
            tokio::join!(put(&ann, "ben", "admin"), put(&ben, "ann", "admin"))
        } else {
            tokio::join!(remove(&ann, "ben"), remove(&ben, "ann"))
        };
        let succeeded = [&a, &b].iter().filter(|r| r.status.is_success()).count();
        assert!(succeeded <= 1, "round {round}: both succeeded: {a:?} {b:?}");
        for reply in [&a, &b] {
            if !reply.status.is_success() {
                // 409 (last owner) or 403 (no longer an owner when it began).
                assert!(
                    matches!(reply.status.as_u16(), 403 | 409),
                    "round {round}: {reply:?}"
                );
            }
        }
        assert_eq!(owners(&app, tenant).await, 1, "round {round}");
    }
}
