//! Support for the campaign-engine tests: a recording provider on 127.0.0.1, audiences
//! written in bulk, and waiting for a campaign to settle.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use herald_tests::{TestApp, User, eventually};
use serde_json::{Value, json};
use uuid::Uuid;

/// One request the fake provider received.
#[derive(Clone, Debug)]
pub struct Hit {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    /// The JSON body (http provider) or the form as an object (Twilio).
    pub body: Value,
}

impl Hit {
    pub fn key(&self) -> String {
        self.headers
            .get("idempotency-key")
            .or_else(|| self.headers.get("i-twilio-idempotency-token"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

/// How the fake answers: by default 202 with `{"id": "prov-…"}` after `delay`.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    pub delay: Duration,
    /// Recipients (`to`/`To`) answered with this status and body instead.
    pub answers: HashMap<String, (u16, Value)>,
    /// Every request answered with this status while set.
    pub all: Option<u16>,
}

/// A delivery provider (the http kind, or Twilio's Messages API) on 127.0.0.1 that records
/// every request.
#[derive(Clone)]
pub struct Recorder {
    pub url: String,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    pub behaviour: Arc<Mutex<Behaviour>>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let behaviour: Arc<Mutex<Behaviour>> = Arc::default();
        let (h, b) = (Arc::clone(&hits), Arc::clone(&behaviour));
        let router = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let (hits, behaviour) = (Arc::clone(&h), Arc::clone(&b));
            async move {
                let json = serde_json::from_slice::<Value>(&body).unwrap_or_else(|_| {
                    let form: serde_json::Map<String, Value> =
                        url_form(&body).into_iter().map(|(k, v)| (k, Value::String(v))).collect();
                    Value::Object(form)
                });
                let plan = behaviour.lock().unwrap().clone();
                if !plan.delay.is_zero() {
                    tokio::time::sleep(plan.delay).await;
                }
                let to = json["to"].as_str().or(json["To"].as_str()).unwrap_or("").to_owned();
                hits.lock().unwrap().push(Hit {
                    at: Instant::now(),
                    path: uri.path().to_owned(),
                    headers,
                    body: json,
                });
                let (status, reply) = match (plan.all, plan.answers.get(&to)) {
                    (Some(s), _) => (s, json!({})),
                    (None, Some((s, v))) => (*s, v.clone()),
                    (None, None) => (202, json!({ "id": format!("prov-{}", Uuid::new_v4()), "sid": format!("SM{}", Uuid::new_v4().simple()) })),
                };
                (StatusCode::from_u16(status).unwrap(), axum::Json(reply))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Recorder {
            url,
            hits,
            behaviour,
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.behaviour.lock().unwrap());
    }
}

fn url_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Points the tenant's provider at the recorder (the http kind).
pub async fn http_provider(user: &User<'_>, recorder: &Recorder) -> Value {
    user.send(
        user.request(reqwest::Method::PUT, "/api/provider")
            .json(&json!({ "kind": "http", "url": format!("{}/send", recorder.url) })),
    )
    .await
    .ok(200)
    .clone()
}

/// A group of `n` live contacts named `Name {i}` with phones, plus `extra_opted_out`
/// opted-out and `extra_deleted` deleted members, and its `member_count` as the API keeps
/// it; written in bulk as the owner. Returns the group id.
pub async fn audience(
    app: &TestApp,
    tenant: Uuid,
    n: i64,
    extra_opted_out: i64,
    extra_deleted: i64,
) -> Uuid {
    let group = Uuid::now_v7();
    let mut tx = app.owner.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO groups (tenant_id, id, name) VALUES ($1, $2, $3)")
        .bind(tenant)
        .bind(group)
        .bind(format!("Group {group}"))
        .execute(&mut *tx)
        .await
        .unwrap();
    // Numbered on from the tenant's existing contacts, so that phones stay unique.
    sqlx::query(
        "WITH base AS (SELECT count(*) AS n FROM contacts WHERE tenant_id = $1),
         added AS (
            INSERT INTO contacts (tenant_id, id, name, phone, attributes, opted_out_at, deleted_at)
            SELECT $1, gen_random_uuid(), 'Name ' || (base.n + i),
                   '+1555' || lpad((base.n + i)::text, 7, '0'),
                   jsonb_build_object('n', base.n + i),
                   CASE WHEN i > $3 AND i <= $3 + $4 THEN now() END,
                   CASE WHEN i > $3 + $4 THEN now() END
            FROM base, generate_series(1, $3 + $4 + $5) AS i
            RETURNING id
         ), members AS (
            INSERT INTO group_contacts (tenant_id, group_id, contact_id)
            SELECT $1, $2, id FROM added
            RETURNING 1
         )
         UPDATE groups SET member_count = (SELECT count(*) FROM members)
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(group)
    .bind(n)
    .bind(extra_opted_out)
    .bind(extra_deleted)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    group
}

/// A template with `body`, through the API.
pub async fn template(user: &User<'_>, body: &str) -> String {
    user.post(
        "/api/templates",
        &json!({ "name": format!("T {}", Uuid::now_v7()), "body": body }),
    )
    .await
    .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A draft campaign of `template` to `group`.
pub async fn campaign(user: &User<'_>, template: &str, group: Uuid) -> String {
    user.post(
        "/api/campaigns",
        &json!({ "name": format!("C {}", Uuid::now_v7()), "templateId": template, "groupId": group }),
    )
    .await
    .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub async fn status_of(app: &TestApp, campaign: &str) -> String {
    sqlx::query_scalar("SELECT status FROM campaigns WHERE id = $1")
        .bind(Uuid::parse_str(campaign).unwrap())
        .fetch_one(&app.owner)
        .await
        .unwrap()
}

pub async fn wait_status(app: &TestApp, campaign: &str, status: &str, deadline: Duration) {
    eventually(deadline, || async {
        status_of(app, campaign).await == status
    })
    .await;
}

/// Message counts of a campaign by status.
pub async fn message_counts(app: &TestApp, campaign: &str) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM messages WHERE campaign_id = $1 GROUP BY status",
    )
    .bind(Uuid::parse_str(campaign).unwrap())
    .fetch_all(&app.owner)
    .await
    .unwrap();
    rows.into_iter().collect()
}

/// The campaign's message ids and their contacts.
pub async fn messages_of(app: &TestApp, campaign: &str) -> HashMap<Uuid, Uuid> {
    let rows: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT id, contact_id FROM messages WHERE campaign_id = $1")
            .bind(Uuid::parse_str(campaign).unwrap())
            .fetch_all(&app.owner)
            .await
            .unwrap();
    rows.into_iter().collect()
}

/// The application role's pool for the test database (what the functions connect as).
pub fn app_db(app: &TestApp) -> herald::db::Database {
    herald::db::Database::connect_lazy(
        &app.app_role_url(),
        4,
        Duration::from_secs(5),
        "test-engine",
    )
    .unwrap()
}

/// A sender as the functions build it, pointed at the test database.
pub fn sender(app: &TestApp, tuning: herald::engine::Tuning) -> herald::engine::sender::Sender {
    let outbound = herald::providers::Outbound::new(
        herald::net::egress::EgressPolicy::parse("127.0.0.0/8").unwrap(),
        "http://127.0.0.1:9/".parse().unwrap(),
        None,
    );
    herald::engine::sender::Sender::new(app_db(app), outbound, tuning, true)
}
