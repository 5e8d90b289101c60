//! The real function binaries (`functions/<name>`), run as processes against the Runtime
//! API emulator, so that every `main.rs` is exercised as Lambda runs it, not only the
//! handlers it calls.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::runtime_api::{Outcome, RuntimeApi};

/// The workspace root, from this crate's manifest.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Every function crate under `functions/`.
pub fn function_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("functions"))
        .expect("functions/ exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Builds every function binary (debug profile) once per test process, and returns the
/// directory that holds them. `cargo test` builds the test targets only, not the binaries.
pub fn binaries() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = std::process::Command::new(cargo);
        // The targets and features that `cargo nextest run --workspace` builds, plus the
        // binaries: the shared crates are then not rebuilt with another feature set.
        command.current_dir(workspace_root()).args([
            "build",
            "--quiet",
            "--workspace",
            "--bins",
            "--tests",
        ]);
        // The test runner's own variables (CARGO_PKG_*, CARGO_MANIFEST_DIR, NEXTEST_*) would
        // reach build scripts and make cargo rebuild what the test build just built.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let keep = matches!(name.as_ref(), "CARGO_HOME" | "CARGO_TARGET_DIR");
            if !keep
                && (name.starts_with("CARGO_")
                    || name.starts_with("NEXTEST")
                    || name.starts_with("RUST"))
                && name != "RUSTUP_HOME"
                && name != "RUSTUP_TOOLCHAIN"
            {
                command.env_remove(name.as_ref());
            }
        }
        let status = command.status().expect("cargo runs");
        assert!(status.success(), "the function binaries build");
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace_root().join("target"));
        target.join("debug")
    })
}

/// One function's process, serving invocations from its own Runtime API.
pub struct FunctionProcess {
    pub api: RuntimeApi,
    /// When the process was spawned: with [`RuntimeApi::first_poll`], its init time.
    pub spawned: Instant,
    child: tokio::process::Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    drain: Option<tokio::task::JoinHandle<()>>,
}

impl FunctionProcess {
    /// Starts `binary` (a path) with Lambda's reserved environment plus `env`.
    pub async fn start(
        binary: &std::path::Path,
        name: &str,
        env: &[(&str, &str)],
    ) -> FunctionProcess {
        let api = RuntimeApi::start(name).await;
        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.endpoint())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/11/25/[$LATEST]0123456789abcdef",
            )
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("LAMBDA_TASK_ROOT", "/var/task")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned = Instant::now();
        let mut child = command.spawn().expect("the function binary starts");
        // Drained continuously so that a chatty process never blocks on a full pipe.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        let drain = tokio::spawn(async move {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        FunctionProcess {
            api,
            spawned,
            child,
            stderr,
            drain: Some(drain),
        }
    }

    /// A function of this workspace by crate name.
    pub async fn function(name: &str, env: &[(&str, &str)]) -> FunctionProcess {
        let binary = binaries().join(name);
        FunctionProcess::start(&binary, name, env).await
    }

    /// A function of this workspace with the environment a deployment gives it
    /// ([`deployed_env`]), pointed at `app`.
    pub async fn deployed(app: &crate::TestApp, name: &str) -> FunctionProcess {
        let env = deployed_env(app);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        FunctionProcess::function(name, &pairs).await
    }

    pub async fn invoke(&self, event: &Value) -> Outcome {
        self.api
            .invoke(event, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("invocation: {e}"))
    }

    /// Waits up to `deadline` for the process to exit; `None` if it is still running.
    pub async fn exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let status = tokio::time::timeout(deadline, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)?;
        // The pipe closes with the process; everything it wrote is then in the buffer.
        if let Some(drain) = self.drain.take() {
            let _ = drain.await;
        }
        Some(status)
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The API Gateway HTTP API (payload 2.0) sample event of AWS's documentation, pointed at
/// one route: the shape the functions receive in AWS, independent of herald-local's gateway.
/// The environment template.yaml gives the functions, pointed at `app`'s database and, for
/// the dispatcher, at `app`'s `@connections` endpoint (with dummy credentials: the local
/// gateway checks no signature).
pub fn deployed_env(app: &crate::TestApp) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", app.app_role_url()),
        ("HERALD_JWT_SECRET", crate::SECRET.to_owned()),
        ("SLOW_QUERY_MS", "1000".to_owned()),
        ("HERALD_WS_ENDPOINT", app.base.clone()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
    ]
}

pub fn http_event(
    method: &str,
    route_key: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Value {
    let mut event: Value =
        serde_json::from_str(include_str!("../fixtures/events/apigw-http.json")).unwrap();
    let path_parameters = path_parameters(route_key, path);
    event["routeKey"] = route_key.into();
    event["rawPath"] = path.into();
    event["rawQueryString"] = "".into();
    event["queryStringParameters"] = Value::Null;
    event["cookies"] = Value::Null;
    event["stageVariables"] = Value::Null;
    event["pathParameters"] = if path_parameters.is_empty() {
        Value::Null
    } else {
        Value::Object(path_parameters)
    };
    event["requestContext"]["routeKey"] = route_key.into();
    event["requestContext"]["http"]["method"] = method.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["requestId"] = uuid::Uuid::new_v4().to_string().into();
    for (name, value) in headers {
        event["headers"][name.to_ascii_lowercase()] = (*value).into();
    }
    match body {
        Some(body) => {
            let text = body.to_string();
            event["headers"]["content-type"] = "application/json".into();
            event["headers"]["content-length"] = text.len().to_string().into();
            event["body"] = text.into();
        }
        None => event["body"] = Value::Null,
    }
    event
}

fn path_parameters(route_key: &str, path: &str) -> serde_json::Map<String, Value> {
    let template = route_key.split_once(' ').map_or(route_key, |(_, t)| t);
    template
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(t, s)| {
            let name = t.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.to_owned(), Value::String(s.to_owned())))
        })
        .collect()
}
