//! Message templates from HTTP request to database and back, and their rendering.

use herald_tests::{TestApp, User};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

async fn live_templates(app: &TestApp, tenant: Uuid) -> i64 {
    app.count(
        "SELECT count(*) FROM message_templates WHERE tenant_id = $1 AND deleted_at IS NULL",
        tenant,
    )
    .await
}

async fn template_events(app: &TestApp, tenant: Uuid) -> [i64; 3] {
    [
        app.events(tenant, "template_created").await,
        app.events(tenant, "template_updated").await,
        app.events(tenant, "template_deleted").await,
    ]
}

/// Creates a template and returns it.
async fn template(user: &User<'_>, body: Value) -> Value {
    user.post("/api/templates", &body).await.ok(201).clone()
}

fn path(template: &Value) -> String {
    format!("/api/templates/{}", template["id"].as_str().unwrap())
}

#[tokio::test]
async fn create_get_update_and_soft_delete() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);

    let created = template(
        &alice,
        json!({ "name": "  Welcome ", "body": "Hi {{ contact.name }}, welcome to {{ contact.attributes.city | default(\"town\") }}!" }),
    )
    .await;
    assert_eq!(created["name"], "Welcome");
    assert_eq!(created["channel"], "sms", "sms by default");
    assert_eq!(created["subject"], Value::Null);
    assert_eq!(
        created["variables"],
        json!(["contact.attributes.city", "contact.name"])
    );
    assert_eq!(created["tenantId"], tenant.to_string());
    assert!(created["createdAt"].is_string());
    assert!(created.get("deletedAt").is_none());
    let path = path(&created);
    assert_eq!(alice.get(&path).await.ok(200), &created);
    assert_eq!(template_events(&app, tenant).await, [1, 0, 0]);

    // A new body is checked again and its variables extracted again.
    let updated = alice
        .patch(
            &path,
            &json!({ "name": "Welcome v2", "body": "{{ campaign.name }}: hello {{ contact.attributes['first name'] }}" }),
        )
        .await;
    let updated = updated.ok(200).clone();
    assert_eq!(updated["name"], "Welcome v2");
    assert_eq!(
        updated["variables"],
        json!(["campaign.name", "contact.attributes[\"first name\"]"])
    );
    assert_eq!(updated["createdAt"], created["createdAt"]);
    assert_eq!(template_events(&app, tenant).await, [1, 1, 0]);

    // Renaming only keeps the variables.
    let renamed = alice.patch(&path, &json!({ "name": "Hello" })).await;
    assert_eq!(renamed.ok(200)["variables"], updated["variables"]);

    // Switching channels: email needs a subject, SMS refuses one.
    alice
        .patch(&path, &json!({ "channel": "email" }))
        .await
        .problem(422);
    let email = alice
        .patch(
            &path,
            &json!({ "channel": "email", "subject": "News for {{ contact.name }}" }),
        )
        .await;
    let email = email.ok(200).clone();
    assert_eq!(email["channel"], "email");
    assert_eq!(email["subject"], "News for {{ contact.name }}");
    assert_eq!(
        email["variables"],
        json!([
            "campaign.name",
            "contact.attributes[\"first name\"]",
            "contact.name"
        ])
    );
    let keep_subject = alice.patch(&path, &json!({ "channel": "sms" })).await;
    assert_eq!(
        keep_subject.problem(422)["errors"][0]["pointer"],
        "/subject"
    );
    let sms = alice
        .patch(&path, &json!({ "channel": "sms", "subject": null }))
        .await;
    assert_eq!(sms.ok(200)["subject"], Value::Null);
    assert_eq!(template_events(&app, tenant).await, [1, 4, 0]);

    assert_eq!(alice.delete(&path).await.status, 204);
    assert_eq!(template_events(&app, tenant).await, [1, 4, 1]);
    alice.get(&path).await.problem(404);
    alice.delete(&path).await.problem(404);
    alice
        .patch(&path, &json!({ "name": "Ghost" }))
        .await
        .problem(404);
    alice
        .post(
            &format!("{path}/preview"),
            &json!({ "variables": { "contact": {} } }),
        )
        .await
        .problem(404);
    assert_eq!(
        alice.get("/api/templates").await.ok(200)["items"],
        json!([])
    );
    assert_eq!(template_events(&app, tenant).await, [1, 4, 1]);

    // Soft: the row is still there, stamped; the deletion event carries it.
    let deleted = app
        .count(
            "SELECT count(*) FROM message_templates WHERE tenant_id = $1 AND deleted_at IS NOT NULL",
            tenant,
        )
        .await;
    assert_eq!(deleted, 1);
    let payload: Value = sqlx::query_scalar(
        "SELECT payload FROM outbox_events WHERE tenant_id = $1 AND type = 'template_deleted'",
    )
    .bind(tenant)
    .fetch_one(&app.owner)
    .await
    .unwrap();
    assert_eq!(payload["id"], created["id"]);
    assert!(payload["deletedAt"].is_string());

    // A deleted template's name may be used again.
    template(&alice, json!({ "name": "hello", "body": "x" })).await;
}

#[tokio::test]
async fn every_write_emits_exactly_one_event_in_its_transaction() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);

    let created = template(&alice, json!({ "name": "A", "body": "a" })).await;
    let payload: Value = sqlx::query_scalar(
        "SELECT payload FROM outbox_events WHERE tenant_id = $1 AND type = 'template_created'",
    )
    .bind(tenant)
    .fetch_one(&app.owner)
    .await
    .unwrap();
    assert_eq!(payload, created, "the event carries the template as shown");

    // A write that fails after the template row changed (here: the name conflicts) leaves
    // neither row nor event.
    template(&alice, json!({ "name": "B", "body": "b" })).await;
    alice
        .patch(&path(&created), &json!({ "name": "b" }))
        .await
        .problem(409);
    assert_eq!(template_events(&app, tenant).await, [2, 0, 0]);
    assert_eq!(
        alice.get(&path(&created)).await.ok(200)["name"],
        "A",
        "nothing changed"
    );
    assert_eq!(app.all_events().await, 2);
}

#[tokio::test]
async fn names_are_unique_among_live_templates_of_a_tenant() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alice").await;
    let b = app.tenant("bob").await;
    let alice = app.user("alice", a);
    let bob = app.user("bob", b);

    template(&alice, json!({ "name": "Promo", "body": "x" })).await;
    let clash = alice
        .post("/api/templates", &json!({ "name": " PROMO ", "body": "y" }))
        .await;
    assert!(
        clash.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("name")
    );
    let other = template(&alice, json!({ "name": "Other", "body": "x" })).await;
    alice
        .patch(&path(&other), &json!({ "name": "promo" }))
        .await
        .problem(409);
    assert_eq!(live_templates(&app, a).await, 2);

    // Another tenant has its own names.
    template(&bob, json!({ "name": "Promo", "body": "x" })).await;
}

#[tokio::test]
async fn lists_page_by_offset_and_cursor_and_filter_by_channel() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    for i in 0..12 {
        let body = match i % 3 {
            0 => {
                json!({ "name": format!("T{i:02}"), "channel": "email", "subject": "S", "body": "b" })
            }
            _ => json!({ "name": format!("T{i:02}"), "body": "b" }),
        };
        template(&alice, body).await;
    }

    let first = alice.get("/api/templates?limit=5&offset=0").await;
    let first = first.ok(200);
    assert_eq!(first["total"], 12);
    assert_eq!(first["items"].as_array().unwrap().len(), 5);
    assert_eq!(first["items"][0]["name"], "T11", "newest first");
    let last = alice.get("/api/templates?limit=5&offset=10").await;
    assert_eq!(last.ok(200)["items"].as_array().unwrap().len(), 2);

    let mut seen = Vec::new();
    let mut next = "/api/templates?limit=5".to_owned();
    loop {
        let page = alice.get(&next).await;
        let page = page.ok(200);
        assert!(page.get("total").is_none());
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => next = format!("/api/templates?limit=5&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..12).rev().map(|i| format!("T{i:02}")).collect();
    assert_eq!(seen, expected);

    let emails = alice.get("/api/templates?channel=email&offset=0").await;
    let emails = emails.ok(200);
    assert_eq!(emails["total"], 4);
    assert!(
        emails["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["channel"] == "email")
    );
}

#[tokio::test]
async fn template_errors_name_line_and_column_and_write_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let existing = template(&alice, json!({ "name": "Ok", "body": "fine" })).await;
    let events_before = app.all_events().await;

    let cases = [
        (
            "unclosed expression",
            json!({ "name": "X", "body": "Hello\n  {{ contact.name " }),
            "/body",
            "line 2, column ",
        ),
        (
            "unclosed block",
            json!({ "name": "X", "body": "{% if contact.name %}\nHi" }),
            "/body",
            "line 1, column 22",
        ),
        (
            "include",
            json!({ "name": "X", "body": "Hi\n\n{% include \"x\" %}" }),
            "/body",
            "line 3, column 4",
        ),
        (
            "unknown variable",
            json!({ "name": "X", "body": "Hi {{ user.name }}" }),
            "/body",
            "line 1, column 7",
        ),
        (
            "unknown contact field",
            json!({ "name": "X", "body": "Hi {{ contact.city }}" }),
            "/body",
            "contact.attributes",
        ),
        (
            "unknown filter",
            json!({ "name": "X", "body": "{{ contact.name | tojson }}" }),
            "/body",
            "unknown filter",
        ),
        (
            "set",
            json!({ "name": "X", "body": "{% set x = contact.name %}{{ x }}" }),
            "/body",
            "not available",
        ),
        (
            "string repetition",
            json!({ "name": "X", "body": "{{ 'x' * 100000000 }}" }),
            "/body",
            "numbers only",
        ),
        (
            "subject",
            json!({ "name": "X", "channel": "email", "subject": "Hi {{ contact.name", "body": "b" }),
            "/subject",
            "line 1, column ",
        ),
    ];
    for (what, body, pointer, detail) in cases {
        let reply = alice.post("/api/templates", &body).await;
        let problem = reply.problem(422);
        assert_eq!(
            problem["errors"][0]["pointer"], pointer,
            "{what}: {problem}"
        );
        let error = problem["errors"][0]["detail"].as_str().unwrap();
        assert!(error.contains(detail), "{what}: {error}");
        let top = problem["detail"].as_str().unwrap();
        assert!(
            top.contains("line "),
            "{what}: the detail names the line: {top}"
        );
        // The same source in a patch is refused the same way.
        let mut patch = body.clone();
        patch.as_object_mut().unwrap().remove("name");
        let reply = alice.patch(&path(&existing), &patch).await;
        assert_eq!(
            reply.problem(422)["errors"][0]["pointer"],
            pointer,
            "{what} (patch)"
        );
    }

    assert_eq!(live_templates(&app, tenant).await, 1);
    assert_eq!(app.all_events().await, events_before);
    assert_eq!(alice.get(&path(&existing)).await.ok(200), &existing);
}

#[tokio::test]
async fn bad_input_is_a_problem_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let existing = template(&alice, json!({ "name": "Ok", "body": "fine" })).await;
    let path = path(&existing);
    let events_before = app.all_events().await;

    let bodies = [
        ("no name", json!({ "body": "x" }), None),
        ("no body", json!({ "name": "X" }), None),
        (
            "empty name",
            json!({ "name": " ", "body": "x" }),
            Some("/name"),
        ),
        (
            "long name",
            json!({ "name": "n".repeat(201), "body": "x" }),
            Some("/name"),
        ),
        (
            "blank body",
            json!({ "name": "X", "body": " \n " }),
            Some("/body"),
        ),
        (
            "long body",
            json!({ "name": "X", "body": "b".repeat(20_001) }),
            Some("/body"),
        ),
        (
            "NUL in body",
            json!({ "name": "X", "body": "a\u{0}b" }),
            Some("/body"),
        ),
        (
            "unknown channel",
            json!({ "name": "X", "channel": "fax", "body": "x" }),
            Some("/channel"),
        ),
        (
            "subject on sms",
            json!({ "name": "X", "subject": "S", "body": "x" }),
            Some("/subject"),
        ),
        (
            "email without subject",
            json!({ "name": "X", "channel": "email", "body": "x" }),
            Some("/subject"),
        ),
        (
            "subject with a line break",
            json!({ "name": "X", "channel": "email", "subject": "a\r\nBcc: x@example.com", "body": "x" }),
            Some("/subject"),
        ),
        (
            "long subject",
            json!({ "name": "X", "channel": "email", "subject": "s".repeat(999), "body": "x" }),
            Some("/subject"),
        ),
        (
            "unknown field",
            json!({ "name": "X", "body": "x", "variables": ["a"] }),
            None,
        ),
        ("wrong type", json!({ "name": "X", "body": 42 }), None),
        ("not an object", json!(["x"]), None),
    ];
    for (what, body, pointer) in bodies {
        let reply = alice.post("/api/templates", &body).await;
        let problem = reply.problem(422);
        if let Some(pointer) = pointer {
            assert_eq!(
                problem["errors"][0]["pointer"], pointer,
                "{what}: {problem}"
            );
        }
    }

    // Patches too.
    for patch in [
        json!({}),
        json!({ "name": "" }),
        json!({ "body": "" }),
        json!({ "channel": "pigeon" }),
        json!({ "subject": "only for email" }),
        json!({ "colour": "red" }),
        json!({ "body": null }),
    ] {
        let reply = alice.patch(&path, &patch).await;
        reply.problem(422);
    }

    // Not JSON, the wrong media type, an oversized body.
    let syntax = alice
        .send(
            alice
                .request(Method::POST, "/api/templates")
                .header("content-type", "application/json")
                .body("{\"name\":"),
        )
        .await;
    syntax.problem(400);
    let form = alice
        .send(
            alice
                .request(Method::POST, "/api/templates")
                .header("content-type", "text/plain")
                .body("name=x"),
        )
        .await;
    form.problem(415);
    let huge = json!({ "name": "X", "body": "x".repeat(1024 * 1024) });
    alice.post("/api/templates", &huge).await.problem(413);

    // Malformed ids, and bad paging parameters.
    alice.get("/api/templates/not-a-uuid").await.problem(400);
    alice
        .patch("/api/templates/123", &json!({ "name": "X" }))
        .await
        .problem(400);
    alice.delete("/api/templates/zzz").await.problem(400);
    alice
        .post(
            "/api/templates/zzz/preview",
            &json!({ "variables": { "contact": {} } }),
        )
        .await
        .problem(400);
    for query in [
        "limit=0",
        "limit=201",
        "offset=-1",
        "cursor=%%%",
        "offset=0&cursor=AAAAAAAAAAAAAAAAAAAAAA",
        "channel=fax",
    ] {
        let reply = alice.get(&format!("/api/templates?{query}")).await;
        assert!(reply.status.is_client_error(), "{query}: {}", reply.status);
        reply.problem(reply.status.as_u16());
    }

    // Previews of bad requests.
    let preview = format!("{path}/preview");
    for (what, body) in [
        ("nothing to render for", json!({})),
        (
            "both a contact and sample contact",
            json!({ "contactId": Uuid::now_v7(), "variables": { "contact": {} } }),
        ),
        ("contactId not a UUID", json!({ "contactId": "ada" })),
        ("unknown field", json!({ "contact": {} })),
        (
            "unknown contact field",
            json!({ "variables": { "contact": { "nickname": "A" } } }),
        ),
        (
            "attributes not an object",
            json!({ "variables": { "contact": { "attributes": [1] } } }),
        ),
        (
            "too many attributes",
            json!({ "variables": { "contact": { "attributes": (0..101).map(|i| (format!("k{i}"), json!(i))).collect::<serde_json::Map<_, _>>() } } }),
        ),
    ] {
        let reply = alice.post(&preview, &body).await;
        assert_eq!(reply.status.as_u16(), 422, "{what}: {}", reply.json);
        reply.problem(422);
    }

    assert_eq!(live_templates(&app, tenant).await, 1);
    assert_eq!(
        app.all_events().await,
        events_before,
        "bad input wrote an event"
    );
    assert_eq!(alice.get(&path).await.ok(200), &existing);
}

#[tokio::test]
async fn another_tenants_ids_are_404() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alice").await;
    let b = app.tenant("bob").await;
    let alice = app.user("alice", a);
    let bob = app.user("bob", b);
    let theirs = template(
        &alice,
        json!({ "name": "A's", "body": "Hi {{ contact.name }}" }),
    )
    .await;
    let path = path(&theirs);
    let bobs_contact = bob.contact("Bob", "+14155552672").await;
    let mine = template(
        &bob,
        json!({ "name": "B's", "body": "Hi {{ contact.name }}" }),
    )
    .await;

    assert_eq!(
        bob.get("/api/templates").await.ok(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let unknown = bob.get(&format!("/api/templates/{}", Uuid::now_v7())).await;
    let unknown = unknown.problem(404).clone();
    for reply in [
        bob.get(&path).await,
        bob.patch(&path, &json!({ "name": "Mallory" })).await,
        bob.delete(&path).await,
        bob.post(
            &format!("{path}/preview"),
            &json!({ "contactId": bobs_contact["id"] }),
        )
        .await,
    ] {
        let problem = reply.problem(404);
        assert_eq!(problem["detail"], unknown["detail"]);
    }

    // Bob cannot render his template for Alice's contact either.
    let alices_contact = alice.contact("Ada", "+14155552671").await;
    let reply = bob
        .post(
            &format!("/api/templates/{}/preview", mine["id"].as_str().unwrap()),
            &json!({ "contactId": alices_contact["id"] }),
        )
        .await;
    assert_eq!(reply.problem(404)["detail"], "no such contact");

    assert_eq!(alice.get(&path).await.ok(200), &theirs);
    assert_eq!(template_events(&app, a).await, [1, 0, 0]);
}

#[tokio::test]
async fn viewers_read_and_preview_but_do_not_write() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    app.add_member(tenant, "vera", "viewer").await;
    let alice = app.user("alice", tenant);
    let created = template(
        &alice,
        json!({ "name": "T", "body": "Hi {{ contact.name }}" }),
    )
    .await;
    let path = path(&created);

    let viewer = app.user("vera", tenant);
    viewer.get("/api/templates").await.ok(200);
    viewer.get(&path).await.ok(200);
    let preview = viewer
        .post(
            &format!("{path}/preview"),
            &json!({ "variables": { "contact": { "name": "Vera" } } }),
        )
        .await;
    assert_eq!(preview.ok(200)["body"], "Hi Vera");
    viewer
        .post("/api/templates", &json!({ "name": "V", "body": "x" }))
        .await
        .problem(403);
    viewer
        .patch(&path, &json!({ "name": "V" }))
        .await
        .problem(403);
    viewer.delete(&path).await.problem(403);
    assert_eq!(alice.get(&path).await.ok(200), &created);
    assert_eq!(template_events(&app, tenant).await, [1, 0, 0]);
}

#[tokio::test]
async fn preview_renders_for_a_contact_or_for_sample_values() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let londoner = alice
        .post(
            "/api/contacts",
            &json!({ "name": "Ada", "phone": "+14155552671", "attributes": { "city": "London", "points": 1200 } }),
        )
        .await
        .ok(201)
        .clone();
    let nowhere = alice.contact("Grace", "+14155552672").await;
    let sms = template(
        &alice,
        json!({ "name": "Hi", "body": "Hi {{ contact.name }}, hello from {{ contact.attributes.city | default(\"there\") }}! \
                                       {{ contact.attributes.points | int + 100 }} points{% if campaign.name %} ({{ campaign.name }}){% endif %}" }),
    )
    .await;
    let preview = format!("{}/preview", path(&sms));
    let events_before = app.all_events().await;

    let reply = alice
        .post(&preview, &json!({ "contactId": londoner["id"] }))
        .await;
    let rendered = reply.ok(200);
    assert_eq!(rendered["body"], "Hi Ada, hello from London! 1300 points");
    assert_eq!(rendered["length"], 38);
    assert!(rendered.get("subject").is_none());

    // The default filter fills what a contact lacks.
    let reply = alice
        .post(
            &preview,
            &json!({ "contactId": nowhere["id"], "variables": { "campaign": { "name": "Spring" } } }),
        )
        .await;
    assert_eq!(
        reply.ok(200)["body"],
        "Hi Grace, hello from there! 100 points (Spring)"
    );

    // Sample values, nested attributes included.
    let reply = alice
        .post(
            &preview,
            &json!({ "variables": { "contact": { "name": "Sam", "attributes": { "city": "Paris", "points": "7" } } } }),
        )
        .await;
    assert_eq!(
        reply.ok(200)["body"],
        "Hi Sam, hello from Paris! 107 points"
    );

    // An email renders its subject too, and escapes HTML in its body only.
    let email = template(
        &alice,
        json!({ "name": "Mail", "channel": "email", "subject": "For {{ contact.name }}",
                "body": "<p>Hello {{ contact.name }} from {{ contact.attributes.address.city | default('?') }}</p>" }),
    )
    .await;
    assert_eq!(
        email["variables"],
        json!(["contact.attributes.address.city", "contact.name"])
    );
    let reply = alice
        .post(
            &format!("{}/preview", path(&email)),
            &json!({ "variables": { "contact": { "name": "<b>Bo</b>", "attributes": { "address": { "city": "Oslo" } } } } }),
        )
        .await;
    let rendered = reply.ok(200);
    assert_eq!(rendered["subject"], "For <b>Bo</b>");
    assert_eq!(
        rendered["body"],
        "<p>Hello &lt;b&gt;Bo&lt;&#x2f;b&gt; from Oslo</p>"
    );

    // Unknown and deleted contacts are 404.
    let reply = alice
        .post(&preview, &json!({ "contactId": Uuid::now_v7() }))
        .await;
    assert_eq!(reply.problem(404)["detail"], "no such contact");
    let contact_path = format!("/api/contacts/{}", nowhere["id"].as_str().unwrap());
    assert_eq!(alice.delete(&contact_path).await.status, 204);
    // The writes here: the email template's creation and the contact's deletion.
    let events_before = events_before + 2;
    alice
        .post(&preview, &json!({ "contactId": nowhere["id"] }))
        .await
        .problem(404);

    // Previews write nothing.
    assert_eq!(app.all_events().await, events_before);
}

#[tokio::test]
async fn rendering_is_capped_and_sandboxed() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let sample = json!({ "variables": { "contact": { "name": "Ada", "attributes": { "blob": "x".repeat(1000) } } } });
    let preview = async |body: Value| {
        let created = template(&alice, body).await;
        alice
            .post(&format!("{}/preview", path(&created)), &sample)
            .await
    };

    // Ten SMS segments at most; an email body may be longer.
    let long_sms = preview(
        json!({ "name": "Long", "body": "{% for i in range(161) %}0123456789{% endfor %}" }),
    )
    .await;
    let problem = long_sms.problem(422);
    assert_eq!(problem["errors"][0]["pointer"], "/body");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("longer than 1600 characters"),
        "{problem}"
    );
    let just_fits = preview(
        json!({ "name": "Fits", "body": "{% for i in range(160) %}0123456789{% endfor %}" }),
    )
    .await;
    assert_eq!(just_fits.ok(200)["length"], 1600);
    let long_email = preview(json!({ "name": "Mail", "channel": "email", "subject": "S",
                                     "body": "{% for i in range(161) %}0123456789{% endfor %}" }))
    .await;
    assert_eq!(long_email.ok(200)["length"], 1610);
    // Attribute values count too.
    let blobs = preview(json!({ "name": "Blobs", "body": "{{ contact.attributes.blob }}{{ contact.attributes.blob }}" })).await;
    blobs.problem(422);

    // Loops that would run away are stopped by the engine's fuel or by range's bound,
    // promptly, and answered as render errors.
    let runaway = preview(json!({ "name": "Runaway", "body": "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}done" })).await;
    let problem = runaway.problem(422);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("too much work"),
        "{problem}"
    );
    let huge_range =
        preview(json!({ "name": "Range", "body": "{% for i in range(100000000) %}x{% endfor %}" }))
            .await;
    assert!(
        huge_range.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("range has too many elements")
    );
    let amplified = preview(json!({ "name": "Amplified", "body": "{{ contact.attributes.blob | replace('x', contact.attributes.blob) | length }}" })).await;
    assert!(
        amplified.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("longer than")
    );

    // A body that renders to nothing cannot be sent.
    let empty =
        preview(json!({ "name": "Empty", "body": "{{ contact.attributes.missing }}" })).await;
    assert!(
        empty.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("empty")
    );

    // Nothing reaches outside the template: other templates, globals, Python-style methods.
    for body in [
        "{% include 'Long' %}",
        "{% extends 'Long' %}",
        "{% import 'Long' as l %}",
        "{{ debug() }}",
        "{{ namespace(a=1) }}",
        "{{ contact.name.upper() }}",
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    ] {
        alice
            .post("/api/templates", &json!({ "name": "Escape", "body": body }))
            .await
            .problem(422);
    }
}

#[tokio::test]
async fn a_template_an_unfinished_campaign_sends_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let created = template(&alice, json!({ "name": "T", "body": "Hi" })).await;
    let id = Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();

    // A campaign, written directly: this test is about templates.
    let group = Uuid::now_v7();
    let campaign = Uuid::now_v7();
    sqlx::query("INSERT INTO groups (tenant_id, id, name) VALUES ($1, $2, 'G')")
        .bind(tenant)
        .bind(group)
        .execute(&app.owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO campaigns (tenant_id, id, name, template_id, group_id, status)
         VALUES ($1, $2, 'C', $3, $4, 'scheduled')",
    )
    .bind(tenant)
    .bind(campaign)
    .bind(id)
    .bind(group)
    .execute(&app.owner)
    .await
    .unwrap();

    let reply = alice.delete(&path(&created)).await;
    assert!(
        reply.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("1 unfinished campaign")
    );
    assert_eq!(live_templates(&app, tenant).await, 1);
    assert_eq!(template_events(&app, tenant).await, [1, 0, 0]);

    sqlx::query("UPDATE campaigns SET status = 'completed' WHERE id = $1")
        .bind(campaign)
        .execute(&app.owner)
        .await
        .unwrap();
    assert_eq!(alice.delete(&path(&created)).await.status, 204);
    assert_eq!(template_events(&app, tenant).await, [1, 0, 1]);
}
