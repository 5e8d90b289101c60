//! `herald-local serve` as a process of its own, for the tests that run several of them on
//! one database or kill one as a Lambda instance dies.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::function_process::binaries;

pub struct LocalProcess {
    pub base: String,
    child: tokio::process::Child,
}

impl LocalProcess {
    /// Starts one on the owner's database `owner_url`, its application role connecting to
    /// `app_url` behind `pooler` (`none`, `transaction`), plus `env`; returns once `/health`
    /// answers.
    pub async fn start(
        owner_url: &str,
        app_url: &str,
        pooler: &str,
        env: &[(&str, &str)],
    ) -> LocalProcess {
        let output = (Stdio::null(), Stdio::inherit());
        LocalProcess::spawn(owner_url, app_url, pooler, env, output).await
    }

    /// [`LocalProcess::start`] with every log line, at debug level, written to `log`.
    pub async fn start_logging(
        owner_url: &str,
        app_url: &str,
        env: &[(&str, &str)],
        log: &std::path::Path,
    ) -> LocalProcess {
        let file = std::fs::File::create(log).expect("the log file");
        let output = (file.try_clone().expect("the log file").into(), file.into());
        let env = [env, &[("RUST_LOG", "debug")]].concat();
        LocalProcess::spawn(owner_url, app_url, "none", &env, output).await
    }

    async fn spawn(
        owner_url: &str,
        app_url: &str,
        pooler: &str,
        env: &[(&str, &str)],
        (stdout, stderr): (Stdio, Stdio),
    ) -> LocalProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = tokio::process::Command::new(binaries().join("herald-local"))
            .args(["serve", "--port", &port.to_string()])
            .env("DATABASE_URL", owner_url)
            .env("HERALD_APP_DATABASE_URL", app_url)
            .env("DATABASE_POOLER", pooler)
            .env("HERALD_JWT_SECRET", crate::SECRET)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("herald-local starts");
        let process = LocalProcess {
            base: format!("http://127.0.0.1:{port}"),
            child,
        };
        process.wait_healthy(Duration::from_secs(60)).await;
        process
    }

    async fn wait_healthy(&self, deadline: Duration) {
        let http = crate::client();
        let start = Instant::now();
        loop {
            let answer = http.get(format!("{}/health", self.base)).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                start.elapsed() < deadline,
                "herald-local at {} not healthy within {deadline:?}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, as a Lambda instance dies: no shutdown, no flush, sockets closed by the
    /// kernel.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("herald-local killed");
    }
}
