//! A private PgBouncer in transaction mode (`scripts/pgbouncer`) in front of the local
//! PostgreSQL, for the tests that count what passes through it.

use std::path::PathBuf;

use crate::function_process::workspace_root;

pub struct PgBouncer {
    dir: PathBuf,
    pub port: u16,
}

impl PgBouncer {
    /// Starts one with `pool_size` server connections per database and user, in front of
    /// the PostgreSQL on `upstream_port`.
    pub fn start(pool_size: u32, upstream_port: u16) -> PgBouncer {
        let dir =
            std::env::temp_dir().join(format!("herald-pgb-{}", uuid::Uuid::new_v4().simple()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let output = std::process::Command::new(workspace_root().join("scripts/pgbouncer"))
            .arg(&dir)
            .arg(port.to_string())
            .arg(pool_size.to_string())
            .arg(upstream_port.to_string())
            .output()
            .expect("scripts/pgbouncer runs");
        assert!(
            output.status.success(),
            "scripts/pgbouncer failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        PgBouncer { dir, port }
    }

    /// `postgres://127.0.0.1:PORT`, as `HERALD_TEST_POOLER` takes it.
    pub fn url(&self) -> String {
        format!("postgres://127.0.0.1:{}", self.port)
    }

    /// One admin console command (`SHOW STATS`, `SHOW POOLS`): its rows as column → value.
    /// The console speaks only the simple query protocol, which psql uses.
    pub fn show(&self, what: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        let output = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "pgbouncer", "--csv", "-c"])
            .arg(format!("SHOW {what}"))
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "SHOW {what}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).expect("UTF-8");
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        lines
            .map(|line| {
                header
                    .iter()
                    .cloned()
                    .zip(line.split(',').map(str::to_owned))
                    .collect()
            })
            .collect()
    }

    /// What PgBouncer logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
