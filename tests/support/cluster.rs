//! A private PostgreSQL server for the tests that stop and start it: the shared server on
//! 5432 serves every other test at the same time, so it must never go down.
//!
//! Made with the machine's own `initdb` and `pg_ctl`, found and run as `herald-local` runs
//! its private cluster ([`herald_local::postgres`]): as the `postgres` user when root.

use std::path::PathBuf;
use std::process::Stdio;

use herald_local::postgres::{as_root, bindir, pg_command};
use sqlx::postgres::PgConnectOptions;
use tokio::process::Command;

pub struct Cluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl Cluster {
    /// Initialises a cluster in a fresh directory and starts it on a free port. Every
    /// connection is trusted.
    pub async fn start() -> Cluster {
        Cluster::start_with(&["-A", "trust"]).await
    }

    /// A cluster that checks passwords on TCP (SCRAM), for tests of refused credentials;
    /// the superuser connects through the Unix socket ([`Cluster::superuser`]), trusted.
    pub async fn start_checking_passwords() -> Cluster {
        Cluster::start_with(&["--auth-host=scram-sha-256", "--auth-local=trust"]).await
    }

    /// `auth`: initdb's authentication options.
    async fn start_with(auth: &[&str]) -> Cluster {
        let dir = std::env::temp_dir().join(format!("herald-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let cluster = Cluster {
            port: free_port(),
            bin: bindir().expect("PostgreSQL's binaries (or set PG_BINDIR)"),
            dir,
        };
        if as_root() {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(&cluster.dir)
                .status()
                .await
                .expect("chown runs");
            assert!(status.success(), "chown the cluster directory");
        }
        let data = cluster.data().display().to_string();
        let mut args = vec!["-D", &data, "-U", "postgres", "--no-sync", "-E", "UTF8"];
        args.extend_from_slice(auth);
        cluster.run("initdb", &args).await;
        cluster.resume().await;
        cluster
    }

    /// The server's URL, without a database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser through the Unix socket (`-k`, the cluster's directory), which even
    /// [`Cluster::start_checking_passwords`] trusts.
    pub fn superuser(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.dir)
            .port(self.port)
            .username("postgres")
            .database("postgres")
    }

    /// Kills the server as a crash would: no shutdown checkpoint, so the next start replays
    /// the write-ahead log. Open connections see their sockets close.
    pub async fn crash(&self) {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .await;
    }

    /// Starts the (stopped) server again on the same port, waiting until it accepts
    /// connections.
    pub async fn resume(&self) {
        let data = self.data().display().to_string();
        let log = self.dir.join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &options, "-w", "start"],
        )
        .await;
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    async fn run(&self, program: &str, args: &[&str]) {
        let status = Command::from(self.command(program, args))
            .stdout(Stdio::null())
            .status()
            .await
            .unwrap_or_else(|e| panic!("{program} runs: {e}"));
        assert!(status.success(), "{program} {args:?} failed");
    }

    /// `program` from PostgreSQL's binaries, in the cluster's directory.
    fn command(&self, program: &str, args: &[&str]) -> std::process::Command {
        let mut command = pg_command(&self.bin, program);
        command.args(args).current_dir(&self.dir);
        command
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self
            .command("pg_ctl", &["-D", &data, "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
