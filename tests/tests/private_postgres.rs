//! `herald-local` with no `DATABASE_URL` and nothing on the default port: it makes a
//! PostgreSQL of its own in the state directory, and later runs reuse it, whether it is
//! still running or was stopped.
//!
//! The real binary runs with `HERALD_DEFAULT_DATABASE_PORT` on a port where nothing
//! listens, so the shared server on 5432 is neither used nor touched.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use herald_local::postgres::Private;
use herald_tests::function_process::binaries;
use serde_json::{Value, json};
use sqlx::Connection;

/// initdb plus the first start, on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn serve_makes_its_own_postgres_and_reuses_it() {
    let scene = Scene::new();

    let mut first = scene.serve("first").await;
    assert!(first.line.contains("(created)"), "{}", first.line);
    assert!(scene.cluster.dir.join("PG_VERSION").exists());
    let tenant = scene.tenant_create().await;
    let created = first
        .post(
            "/api/contacts",
            &tenant,
            json!({"name": "Ada Lovelace", "phone": "+44 20 7946 0958"}),
        )
        .await;
    assert_eq!(created["name"], "Ada Lovelace", "{created}");
    first.stop().await;

    // The cluster outlives herald-local: the next run only connects.
    let mut second = scene.serve("second").await;
    assert!(second.line.contains("(already running)"), "{}", second.line);
    assert_eq!(second.port, first.port);
    assert_eq!(second.contacts(&tenant).await, ["Ada Lovelace"]);
    second.stop().await;

    // Stopped as the line says: the next run starts it again, without initdb.
    scene.pg_ctl_stop(&second.line);
    let mut third = scene.serve("third").await;
    assert!(third.line.contains("(started)"), "{}", third.line);
    assert_eq!(third.contacts(&tenant).await, ["Ada Lovelace"]);

    // Loopback only, the superuser trusted there.
    let url = format!("postgres://postgres@127.0.0.1:{}/herald", third.port);
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    let listen: String = sqlx::query_scalar("SHOW listen_addresses")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(listen, "127.0.0.1");
    third.stop().await;
    eprintln!(
        "first start (initdb) {:?}, reuse while running {:?}, reuse after pg_ctl stop {:?}",
        first.took, second.took, third.took
    );
}

/// A state directory of its own, an unused "default" port, and the built binary. Dropping
/// it stops the cluster and removes the directory.
struct Scene {
    root: PathBuf,
    probe: u16,
    binary: PathBuf,
    cluster: Private,
}

impl Scene {
    fn new() -> Scene {
        let root = std::env::temp_dir().join(format!("herald-own-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&root).unwrap();
        let probe = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        Scene {
            cluster: Private::new(root.join("state/postgres")).expect("PostgreSQL's binaries"),
            binary: binaries().join("herald-local"),
            probe,
            root,
        }
    }

    fn command(&self, args: &[&str], stderr: Stdio) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("HERALD_APP_DATABASE_URL")
            .env("HERALD_STATE_DIR", self.root.join("state"))
            .env("HERALD_DEFAULT_DATABASE_PORT", self.probe.to_string())
            .env("HERALD_JWT_SECRET", herald_tests::SECRET)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true);
        command
    }

    /// `herald-local serve` on a free port, once `/health` says the database is ok.
    async fn serve(&self, name: &str) -> Served {
        let log = self.root.join(format!("{name}.log"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let started = Instant::now();
        let mut child = self
            .command(
                &["serve", "--port", &port.to_string()],
                std::fs::File::create(&log).unwrap().into(),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("herald-local starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = herald_tests::client();
        loop {
            let health = http.get(format!("{base}/health")).send().await;
            if let Ok(r) = health
                && r.status() == 200
                && r.json::<Value>().await.unwrap()["database"] == "ok"
            {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("herald-local exited ({status}): {}", read(&log));
            }
            assert!(started.elapsed() < DEADLINE, "not healthy: {}", read(&log));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = started.elapsed();
        let line = read(&log)
            .lines()
            .find(|l| l.contains("its own PostgreSQL"))
            .expect("the line saying where the cluster is")
            .to_owned();
        assert!(line.contains("pg_ctl -D"), "{line}");
        let port = line
            .rsplit("on 127.0.0.1:")
            .next()
            .and_then(|rest| rest.split(';').next()?.parse().ok())
            .expect("the cluster's port in the line");
        Served {
            base,
            port,
            took,
            line,
            child,
            http,
        }
    }

    /// `herald-local tenant create`, which finds the same cluster; the tenant's id.
    async fn tenant_create(&self) -> String {
        let args = ["tenant", "create", "--name", "Acme", "--owner", "alice"];
        let out = self.command(&args, Stdio::piped()).output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("(already running)"), "{stderr}");
        let tenant: Value = serde_json::from_slice(&out.stdout).unwrap();
        tenant["id"].as_str().unwrap().to_owned()
    }

    /// Runs the command `line` says stops the cluster.
    fn pg_ctl_stop(&self, line: &str) {
        let stop = line.split("stop it with: ").nth(1).expect("how to stop it");
        let status = std::process::Command::new("sh")
            .args(["-c", stop])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{stop}");
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .command("pg_ctl")
            .args(["stop", "-w", "-m", "immediate", "-D"])
            .arg(&self.cluster.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

struct Served {
    base: String,
    /// The private cluster's, from the line.
    port: u16,
    /// From spawning to a healthy `/health`.
    took: Duration,
    line: String,
    child: tokio::process::Child,
    http: reqwest::Client,
}

impl Served {
    async fn post(&self, path: &str, tenant: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(herald_tests::token("alice", None, 3600))
            .header("X-Tenant-ID", tenant)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    async fn contacts(&self, tenant: &str) -> Vec<String> {
        let response = self
            .http
            .get(format!("{}/api/contacts", self.base))
            .bearer_auth(herald_tests::token("alice", None, 3600))
            .header("X-Tenant-ID", tenant)
            .send()
            .await
            .unwrap();
        let page: Value = response.json().await.unwrap();
        let items = page["items"].as_array().expect("a page of contacts");
        items
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn stop(&mut self) {
        self.child.kill().await.unwrap();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
