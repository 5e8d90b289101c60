//! A mixed load over two tenants, for the load test (CI's reduced size) and the
//! `mixed-load` bench (the full 20,000 requests): reads, writes, imports and campaign
//! starts through the HTTP API, every answer checked for a server error and for any row of
//! the other tenant.
//!
//! Step `i` goes to tenant `i % 2` and does the `(i / 2) % 20`th thing of [`MIX`], so
//! each tenant gets the whole mix: half lists and gets, a quarter single writes, one in twenty an import of 50 rows, one in twenty a
//! campaign created and started (two requests).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

/// What request `i` does, by `i % 20`.
const MIX: [Kind; 20] = {
    use Kind::*;
    [
        List, List, List, List, List, List, List, List, Get, Get, //
        Campaigns, Messages, Create, Create, Create, Create, Patch, Patch, Import, Start,
    ]
};

/// Rows in each import.
const IMPORT_ROWS: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    List,
    Get,
    Campaigns,
    Messages,
    Create,
    Patch,
    Import,
    Start,
}

impl Kind {
    fn class(self) -> &'static str {
        match self {
            Kind::List | Kind::Get | Kind::Campaigns | Kind::Messages => "read",
            Kind::Create | Kind::Patch => "write",
            Kind::Import => "import",
            Kind::Start => "campaign start",
        }
    }
}

/// One tenant's side of the load: who it is and what it has made so far.
pub struct Tenant {
    pub id: Uuid,
    token: String,
    template: String,
    group: String,
    contacts: Mutex<Vec<String>>,
}

/// Everything the load saw.
#[derive(Default)]
pub struct Report {
    pub requests: usize,
    pub elapsed: Duration,
    pub statuses: BTreeMap<u16, usize>,
    /// Latencies per class (read, write, import, campaign start).
    pub latencies: BTreeMap<&'static str, Vec<Duration>>,
    /// Every 5xx, with what was asked.
    pub server_errors: Vec<String>,
    /// Every answer that held another tenant's `tenantId`.
    pub cross_tenant: Vec<String>,
    /// Requests that could not be sent or read at all.
    pub transport_errors: Vec<String>,
}

impl Report {
    /// Fails unless every request got a 2xx answer holding only its own tenant's rows.
    #[track_caller]
    pub fn assert_all_succeeded(&self) {
        assert!(
            self.transport_errors.is_empty(),
            "{:?}",
            self.transport_errors
        );
        assert!(self.server_errors.is_empty(), "{:?}", self.server_errors);
        assert!(self.cross_tenant.is_empty(), "{:?}", self.cross_tenant);
        let ok: usize = (self.statuses.iter())
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            ok, self.requests,
            "every request succeeded: {:?}",
            self.statuses
        );
    }

    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p`th percentile (0–100) of every latency, or of one class's.
    pub fn percentile(&self, class: Option<&str>, p: f64) -> Duration {
        let mut all: Vec<Duration> = self
            .latencies
            .iter()
            .filter(|(c, _)| class.is_none_or(|want| **c == want))
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        if all.is_empty() {
            return Duration::ZERO;
        }
        all.sort_unstable();
        let rank = ((p / 100.0) * (all.len() - 1) as f64).round() as usize;
        all[rank]
    }

    /// The figures, one line each.
    pub fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut out = format!(
            "requests {} in {:.2} s: {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms\n",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            ms(self.percentile(None, 50.0)),
            ms(self.percentile(None, 99.0)),
        );
        for (class, latencies) in &self.latencies {
            out += &format!(
                "  {class:<15} {:>6} requests, p50 {:.1} ms, p99 {:.1} ms\n",
                latencies.len(),
                ms(self.percentile(Some(class), 50.0)),
                ms(self.percentile(Some(class), 99.0)),
            );
        }
        out += &format!(
            "statuses {:?}; server errors {}; cross-tenant answers {}; transport errors {}",
            self.statuses,
            self.server_errors.len(),
            self.cross_tenant.len(),
            self.transport_errors.len()
        );
        out
    }
}

/// The load's two tenants on `app`, each with a template, a group and a few contacts in it.
pub async fn two_tenants(app: &crate::TestApp) -> [Arc<Tenant>; 2] {
    let mut tenants = Vec::new();
    for owner in ["load-a", "load-b"] {
        let id = app.tenant(owner).await;
        let token = crate::token(owner, None, 3600);
        tenants.push(Arc::new(prepare(&app.http, &app.base, id, token).await));
    }
    [Arc::clone(&tenants[0]), Arc::clone(&tenants[1])]
}

/// Gives `tenant` (whose owner holds `token`) a template, a group and a few contacts in
/// it, through the API.
async fn prepare(http: &reqwest::Client, base: &str, id: Uuid, token: String) -> Tenant {
    let client = Client {
        http,
        base,
        tenant: id,
        token: &token,
    };
    let template = client
        .call(
            reqwest::Method::POST,
            "/api/templates",
            Some(json!({
                "name": "Load", "body": "Hello {{ contact.name }}"
            })),
        )
        .await
        .expect("template created");
    let group = client
        .call(
            reqwest::Method::POST,
            "/api/groups",
            Some(json!({ "name": "Load" })),
        )
        .await
        .expect("group created");
    let group = group["id"].as_str().unwrap().to_owned();
    let mut contacts = Vec::new();
    for _ in 0..10 {
        let contact = client
            .call(reqwest::Method::POST, "/api/contacts", Some(contact_body()))
            .await
            .expect("contact created");
        contacts.push(contact["id"].as_str().unwrap().to_owned());
    }
    client
        .call(
            reqwest::Method::POST,
            &format!("/api/groups/{group}/contacts"),
            Some(json!({ "contactIds": contacts })),
        )
        .await
        .expect("contacts added to the group");
    Tenant {
        id,
        token,
        template: template["id"].as_str().unwrap().to_owned(),
        group,
        contacts: Mutex::new(contacts),
    }
}

/// Sends `requests` requests (a campaign start counts two) at `concurrency` over the two
/// tenants, step `i` to server `bases[i % bases.len()]` (several instances of Herald on
/// one database).
pub async fn run(
    http: &reqwest::Client,
    bases: &[String],
    tenants: [Arc<Tenant>; 2],
    requests: usize,
    concurrency: usize,
) -> Report {
    let next = Arc::new(AtomicUsize::new(0));
    let report = Arc::new(std::sync::Mutex::new(Report::default()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (http, bases, tenants) = (http.clone(), bases.to_vec(), tenants.clone());
        let (next, report) = (Arc::clone(&next), Arc::clone(&report));
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let tenant = &tenants[i % 2];
                let kind = MIX[(i / 2) % MIX.len()];
                let base = &bases[i % bases.len()];
                one(&http, base, tenant, kind, i, &report).await;
            }
        }));
    }
    for worker in workers {
        worker.await.expect("load worker");
    }
    let mut report = std::mem::take(&mut *report.lock().unwrap());
    report.elapsed = started.elapsed();
    report
}

async fn one(
    http: &reqwest::Client,
    base: &str,
    tenant: &Tenant,
    kind: Kind,
    i: usize,
    report: &std::sync::Mutex<Report>,
) {
    use reqwest::Method;
    let client = Client {
        http,
        base,
        tenant: tenant.id,
        token: &tenant.token,
    };
    let some_contact = || async {
        let contacts = tenant.contacts.lock().await;
        contacts[i % contacts.len()].clone()
    };
    let (method, path, body): (Method, String, Option<Value>) = match kind {
        Kind::List => (Method::GET, "/api/contacts?limit=50".into(), None),
        Kind::Get => (
            Method::GET,
            format!("/api/contacts/{}", some_contact().await),
            None,
        ),
        Kind::Campaigns => (Method::GET, "/api/campaigns?limit=50".into(), None),
        Kind::Messages => (Method::GET, "/api/messages?limit=50".into(), None),
        Kind::Create => (Method::POST, "/api/contacts".into(), Some(contact_body())),
        Kind::Patch => (
            Method::PATCH,
            format!("/api/contacts/{}", some_contact().await),
            Some(json!({ "attributes": { "visit": i } })),
        ),
        Kind::Import => (
            Method::POST,
            "/api/contacts/import".into(),
            Some(Value::Array(
                (0..IMPORT_ROWS).map(|_| contact_body()).collect(),
            )),
        ),
        Kind::Start => (
            Method::POST,
            "/api/campaigns".into(),
            Some(json!({
                "name": format!("Load {i}"),
                "templateId": tenant.template,
                "groupId": tenant.group,
            })),
        ),
    };
    let sent = Instant::now();
    let answer = client.send(method.clone(), &path, body).await;
    let Some((status, json)) = record(report, tenant, kind, &method, &path, sent, answer) else {
        return;
    };
    if kind == Kind::Create && status == 201 {
        let id = json["id"].as_str().unwrap_or_default().to_owned();
        tenant.contacts.lock().await.push(id);
    }
    if kind == Kind::Start && status == 201 {
        // The campaign was created: start it, the second request of this step.
        let start = format!(
            "/api/campaigns/{}/start",
            json["id"].as_str().unwrap_or_default()
        );
        let sent = Instant::now();
        let answer = client.send(Method::POST, &start, Some(json!({}))).await;
        record(report, tenant, kind, &Method::POST, &start, sent, answer);
    }
}

/// Notes one answer in `report`; hands it back if there was one.
fn record(
    report: &std::sync::Mutex<Report>,
    tenant: &Tenant,
    kind: Kind,
    method: &reqwest::Method,
    path: &str,
    sent: Instant,
    answer: Result<(u16, Value), reqwest::Error>,
) -> Option<(u16, Value)> {
    let latency = sent.elapsed();
    let mut seen = report.lock().unwrap();
    seen.requests += 1;
    seen.latencies
        .entry(kind.class())
        .or_default()
        .push(latency);
    let (status, json) = match answer {
        Ok(answer) => answer,
        Err(e) => {
            seen.transport_errors.push(format!("{method} {path}: {e}"));
            return None;
        }
    };
    *seen.statuses.entry(status).or_default() += 1;
    if status >= 500 {
        seen.server_errors
            .push(format!("{method} {path}: {status} {json}"));
    }
    if let Some(other) = foreign_tenant(&json, tenant.id) {
        seen.cross_tenant
            .push(format!("{method} {path}: tenant {other}"));
    }
    Some((status, json))
}

/// Any `tenantId` in `value` (at any depth) that is not `own`.
fn foreign_tenant(value: &Value, own: Uuid) -> Option<String> {
    match value {
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k == "tenantId"
                && let Some(t) = v.as_str()
                && t != own.to_string()
            {
                return Some(t.to_owned());
            }
            foreign_tenant(v, own)
        }),
        Value::Array(items) => items.iter().find_map(|v| foreign_tenant(v, own)),
        _ => None,
    }
}

/// A new contact with a phone no other call of this process made.
fn contact_body() -> Value {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    json!({ "name": format!("Load {n}"), "phone": format!("+14152{n:06}") })
}

struct Client<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
    tenant: Uuid,
    token: &'a str,
}

impl Client<'_> {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), reqwest::Error> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token)
            .header("X-Tenant-ID", self.tenant.to_string())
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// A setup call that must succeed.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        match self.send(method, path, body).await {
            Ok((status, json)) if status < 300 => Ok(json),
            Ok((status, json)) => Err(format!("{path}: {status} {json}")),
            Err(e) => Err(format!("{path}: {e}")),
        }
    }
}
