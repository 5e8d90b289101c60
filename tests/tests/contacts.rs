//! Contacts from HTTP request to database and back.

use herald_tests::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn create_get_update_and_soft_delete() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);

    let created = alice
        .post(
            "/api/contacts",
            &json!({ "name": "  Ada Lovelace ", "phone": "+44 20 7946 0958", "email": "Ada@Example.COM",
                     "attributes": { "city": "London" } }),
        )
        .await;
    let contact = created.ok(201).clone();
    assert_eq!(contact["name"], "Ada Lovelace");
    assert_eq!(contact["phone"], "+442079460958", "stored in E.164");
    assert_eq!(contact["email"], "Ada@example.com");
    assert_eq!(contact["attributes"]["city"], "London");
    assert_eq!(contact["optedOut"], false);
    assert_eq!(contact["tenantId"], tenant.to_string());
    let path = format!("/api/contacts/{}", contact["id"].as_str().unwrap());
    assert_eq!(
        created.headers["location"],
        path.as_str(),
        "where the new contact lives"
    );

    assert_eq!(alice.get(&path).await.ok(200), &contact);

    let updated = alice
        .patch(
            &path,
            &json!({ "name": "Augusta Ada", "email": null, "optedOut": true }),
        )
        .await;
    let updated = updated.ok(200);
    assert_eq!(updated["name"], "Augusta Ada");
    assert_eq!(updated["email"], Value::Null, "null clears");
    assert_eq!(updated["phone"], "+442079460958", "absent keeps");
    assert_eq!(updated["optedOut"], true);
    assert!(updated["optedOutAt"].is_string());

    // Clearing the last way to reach a contact is refused, and changes nothing.
    alice
        .patch(&path, &json!({ "phone": null }))
        .await
        .problem(422);
    assert_eq!(alice.get(&path).await.ok(200)["phone"], "+442079460958");

    assert_eq!(alice.delete(&path).await.status, 204);
    alice.get(&path).await.problem(404);
    alice.delete(&path).await.problem(404);
    alice
        .patch(&path, &json!({ "name": "Ghost" }))
        .await
        .problem(404);
    assert_eq!(alice.get("/api/contacts").await.ok(200)["items"], json!([]));

    // Soft: the row is still there, stamped.
    let deleted = app
        .count(
            "SELECT count(*) FROM contacts WHERE tenant_id = $1 AND deleted_at IS NOT NULL",
            tenant,
        )
        .await;
    assert_eq!(deleted, 1);

    // A deleted contact's phone may be used again.
    alice.contact("Ada again", "+442079460958").await;
}

#[tokio::test]
async fn duplicates_among_live_contacts_conflict() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    alice
        .post(
            "/api/contacts",
            &json!({ "name": "Ada", "phone": "+14155552671", "email": "ada@example.com" }),
        )
        .await
        .ok(201);

    let phone = alice
        .post(
            "/api/contacts",
            &json!({ "name": "B", "phone": "+1 415 555 2671" }),
        )
        .await;
    assert!(
        phone.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("phone")
    );
    let email = alice
        .post(
            "/api/contacts",
            &json!({ "name": "C", "email": "ADA@example.com" }),
        )
        .await;
    assert!(
        email.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("email")
    );

    let other = alice.contact("D", "+14155552672").await;
    let clash = alice
        .patch(
            &format!("/api/contacts/{}", other["id"].as_str().unwrap()),
            &json!({ "phone": "+14155552671" }),
        )
        .await;
    clash.problem(409);
    assert_eq!(app.live_contacts(tenant).await, 2);
}

#[tokio::test]
async fn lists_page_by_offset_and_cursor_and_search() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let rows: Vec<Value> = (0..25)
        .map(|i| {
            json!({ "name": format!("Person {i:02}"), "phone": format!("+1415555{:04}", 2600 + i),
                          "email": format!("p{i}@example.com") })
        })
        .collect();
    assert_eq!(
        alice
            .post("/api/contacts/import", &Value::Array(rows))
            .await
            .ok(200)["imported"],
        25
    );

    // Offset pages carry the total; newest first.
    let first = alice.get("/api/contacts?limit=10&offset=0").await;
    let first = first.ok(200);
    assert_eq!(first["total"], 25);
    assert_eq!(first["items"].as_array().unwrap().len(), 10);
    assert_eq!(first["items"][0]["name"], "Person 24");
    let third = alice.get("/api/contacts?limit=10&offset=20").await;
    assert_eq!(third.ok(200)["items"].as_array().unwrap().len(), 5);

    // Cursor pages walk everything exactly once.
    let mut seen = Vec::new();
    let mut path = "/api/contacts?limit=10".to_owned();
    loop {
        let page = alice.get(&path).await;
        let page = page.ok(200);
        assert!(page.get("total").is_none());
        for item in page["items"].as_array().unwrap() {
            seen.push(item["name"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/contacts?limit=10&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("Person {i:02}")).collect();
    assert_eq!(seen, expected);

    // Search by name, email and phone.
    let by_name = alice.get("/api/contacts?search=person%2007").await;
    assert_eq!(by_name.ok(200)["items"].as_array().unwrap().len(), 1);
    let by_email = alice
        .get("/api/contacts?search=p12%40example&offset=0")
        .await;
    assert_eq!(by_email.ok(200)["total"], 1);
    let by_phone = alice.get("/api/contacts?search=%2B14155552610").await;
    assert_eq!(by_phone.ok(200)["items"][0]["name"], "Person 10");
    // LIKE wildcards are literal.
    let wildcard = alice.get("/api/contacts?search=%25").await;
    assert_eq!(wildcard.ok(200)["items"], json!([]));
}

#[tokio::test]
async fn import_reports_every_row_it_does_not_import() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    alice.contact("Existing", "+14155550001").await;

    let csv = "name,phone,email,city\n\
               Ada,+14155550002,ada@example.com,London\n\
               ,+14155550003,,\n\
               Bad Phone,12345,,\n\
               Ada Twin,+14155550002,,\n\
               Existing Again,+14155550001,,\n\
               Grace,,grace@example.com,Arlington\n";
    let import = async || {
        let request = alice.request(Method::POST, "/api/contacts/import");
        alice
            .send(request.header("content-type", "text/csv").body(csv))
            .await
    };
    let reply = import().await;
    let report = reply.ok(200);
    assert_eq!(report["received"], 6);
    assert_eq!(report["imported"], 2);
    let invalid: Vec<_> = report["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].clone())
        .collect();
    assert_eq!(invalid, vec![json!(2), json!(3)]);
    assert_eq!(report["invalid"][0]["errors"][0]["pointer"], "/name");
    assert_eq!(report["invalid"][1]["errors"][0]["pointer"], "/phone");
    let duplicates = report["duplicates"].as_array().unwrap();
    assert_eq!(duplicates.len(), 2);
    assert_eq!(duplicates[0]["row"], 4);
    assert_eq!(duplicates[0]["duplicateOfRow"], 1);
    assert_eq!(duplicates[1]["row"], 5);
    assert_eq!(app.live_contacts(tenant).await, 3);
    assert_eq!(app.events(tenant, "contact_created").await, 3);

    // Extra CSV columns became attributes.
    let grace = alice.get("/api/contacts?search=grace").await;
    assert_eq!(grace.ok(200)["items"][0]["attributes"]["city"], "Arlington");

    // The same import again doubles nothing.
    let again = import().await;
    assert_eq!(again.ok(200)["imported"], 0);
    assert_eq!(app.live_contacts(tenant).await, 3);
}

#[tokio::test]
async fn import_takes_ten_thousand_rows_and_refuses_more() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);

    let rows = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| json!({ "name": format!("C{i}"), "phone": format!("+1415{:07}", 2_000_000 + i) }))
                .collect(),
        )
    };
    let too_many = alice.post("/api/contacts/import", &rows(10_001)).await;
    too_many.problem(422);
    assert_eq!(app.live_contacts(tenant).await, 0);

    let report = alice.post("/api/contacts/import", &rows(10_000)).await;
    assert_eq!(report.ok(200)["imported"], 10_000);
    assert_eq!(app.live_contacts(tenant).await, 10_000);
    assert_eq!(app.events(tenant, "contact_created").await, 10_000);
}

#[tokio::test]
async fn bad_input_is_a_problem_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let alice = app.user("alice", tenant);
    let existing = alice.contact("Ada", "+14155552671").await;
    let path = format!("/api/contacts/{}", existing["id"].as_str().unwrap());
    let events_before = app.all_events().await;

    let bodies = [
        (
            "invalid phone",
            json!({ "name": "X", "phone": "555-1234" }),
            422,
            Some("/phone"),
        ),
        (
            "invalid email",
            json!({ "name": "X", "email": "not-an-email" }),
            422,
            Some("/email"),
        ),
        (
            "unknown field",
            json!({ "name": "X", "phone": "+14155552672", "role": "admin" }),
            422,
            None,
        ),
        (
            "wrong type",
            json!({ "name": 42, "phone": "+14155552672" }),
            422,
            None,
        ),
        (
            "attributes not an object",
            json!({ "name": "X", "phone": "+14155552672", "attributes": [1] }),
            422,
            None,
        ),
        ("neither phone nor email", json!({ "name": "X" }), 422, None),
        (
            "empty name",
            json!({ "name": " ", "phone": "+14155552672" }),
            422,
            Some("/name"),
        ),
        ("not an object", json!([1, 2]), 422, None),
        (
            "positional array",
            json!(["Ada", "+14155552672"]),
            422,
            None,
        ),
    ];
    for (what, body, status, pointer) in bodies {
        let reply = alice.post("/api/contacts", &body).await;
        assert_eq!(reply.status.as_u16(), status, "{what}: {}", reply.json);
        let problem = reply.problem(status);
        if let Some(pointer) = pointer {
            assert_eq!(problem["errors"][0]["pointer"], pointer, "{what}");
        }
    }

    // Patches too.
    alice
        .patch(&path, &json!({ "phone": "nope" }))
        .await
        .problem(422);
    alice
        .patch(&path, &json!({ "colour": "red" }))
        .await
        .problem(422);
    alice.patch(&path, &json!({})).await.problem(422);

    // Not JSON at all, the wrong media type, an oversized body.
    let syntax = alice
        .send(
            alice
                .request(Method::POST, "/api/contacts")
                .header("content-type", "application/json")
                .body("{\"name\":"),
        )
        .await;
    syntax.problem(400);
    // Truncated after an unknown field: still a syntax error, not a shape error.
    let truncated = alice
        .send(
            alice
                .request(Method::POST, "/api/contacts")
                .header("content-type", "application/json")
                .body("{\"role\": 1, \"name\":"),
        )
        .await;
    truncated.problem(400);
    let form = alice
        .send(
            alice
                .request(Method::POST, "/api/contacts")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("name=x"),
        )
        .await;
    form.problem(415);
    let huge = json!({ "name": "X", "phone": "+14155552672", "attributes": { "blob": "x".repeat(1024 * 1024) } });
    alice.post("/api/contacts", &huge).await.problem(413);
    let huge_import = alice
        .send(
            alice
                .request(Method::POST, "/api/contacts/import")
                .header("content-type", "text/csv")
                .body(format!("name\n{}", "x".repeat(10 * 1024 * 1024 + 1000))),
        )
        .await;
    huge_import.problem(413);
    let import_type = alice
        .send(
            alice
                .request(Method::POST, "/api/contacts/import")
                .header("content-type", "application/xml")
                .body("<a/>"),
        )
        .await;
    import_type.problem(415);
    let no_name_column = alice
        .send(
            alice
                .request(Method::POST, "/api/contacts/import")
                .header("content-type", "text/csv")
                .body("phone\n+14155552679\n"),
        )
        .await;
    no_name_column.problem(422);

    // A JSON row of the wrong shape refuses the whole import, naming the row by pointer;
    // a row of the right shape with a bad value would only be reported.
    let misshapen = alice
        .post(
            "/api/contacts/import",
            &json!([{ "name": "Fine", "phone": "+14155552680" }, { "name": "Typed", "email": 42 }]),
        )
        .await;
    let problem = misshapen.problem(422);
    assert_eq!(problem["errors"][0]["pointer"], "/1");

    // Malformed ids in paths, and out-of-range or malformed paging parameters.
    alice.get("/api/contacts/not-a-uuid").await.problem(400);
    alice
        .patch("/api/contacts/123", &json!({ "name": "X" }))
        .await
        .problem(400);
    alice.delete("/api/contacts/zzz").await.problem(400);
    for query in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "offset=-1",
        "offset=100001",
        "cursor=%%%",
        "offset=0&cursor=AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let reply = alice.get(&format!("/api/contacts?{query}")).await;
        assert!(reply.status.is_client_error(), "{query}: {}", reply.status);
        reply.problem(reply.status.as_u16());
    }

    assert_eq!(
        app.live_contacts(tenant).await,
        1,
        "bad input wrote a contact"
    );
    assert_eq!(
        app.all_events().await,
        events_before,
        "bad input wrote an event"
    );
    assert_eq!(alice.get(&path).await.ok(200)["name"], "Ada");
}

/// Attributes are passed on as PostgreSQL writes them (`herald::jsonb::JsonbText`): binary
/// `jsonb` carries a version byte before the text, binary `json` and text results do not.
#[tokio::test]
async fn jsonb_text_is_what_postgres_wrote_in_every_result_format() {
    use herald::jsonb::JsonbText;
    use sqlx::Row;

    let app = TestApp::spawn().await;
    let input = r#"{"b": [1, "x\"y"], "a": null}"#;
    let (jsonb, json): (JsonbText, JsonbText) = sqlx::query_as("SELECT $1::jsonb, $1::json")
        .bind(input)
        .fetch_one(&app.owner)
        .await
        .unwrap();
    // jsonb keeps its own key order and spacing; json keeps the input.
    assert_eq!(jsonb.get(), r#"{"a": null, "b": [1, "x\"y"]}"#);
    assert_eq!(json.get(), input);
    let text = sqlx::raw_sql(r#"SELECT '{"k": "é"}'::jsonb"#)
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert_eq!(text.get::<JsonbText, _>(0).get(), r#"{"k": "é"}"#);
    assert_eq!(serde_json::to_string(&jsonb).unwrap(), jsonb.get());
}
