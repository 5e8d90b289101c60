//! Database credentials read from AWS Secrets Manager at init, instead of a dynamic
//! reference in the function's environment that anyone allowed
//! `lambda:GetFunctionConfiguration` could read.
//!
//! A secret's `SecretString` is either a connection URL (`postgres://user:password@host/db`)
//! or RDS's JSON shape (`{"username","password","host","port","dbname",…}`), which RDS Proxy
//! requires. `DATABASE_HOST` replaces the secret's host (the proxy's endpoint) and
//! `DATABASE_SSLMODE` its sslmode. The value is read once and kept for the container's life;
//! [`DatabaseSecret::refresh`] reads it again when the server refuses the credentials (a
//! rotated password).
//!
//! The read is one signed `GetSecretValue` call to Secrets Manager's JSON API
//! ([`crate::aws_sign`]), not aws-sdk-secretsmanager: a whole SDK client in every bootstrap
//! for one call at init is not worth its size.
//!
//! Neither the secret nor the password is ever logged or put in an error: errors name the
//! secret's ARN and, for a malformed secret, the key or the part that is wrong.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_credential_types::Credentials;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use url::Url;

use crate::aws_sign::{self, Signer};

/// The application role's secret.
pub const SECRET_ARN_VAR: &str = "DATABASE_SECRET_ARN";
/// The database owner's secret (the migrate function only).
pub const OWNER_SECRET_ARN_VAR: &str = "OWNER_DATABASE_SECRET_ARN";
/// Replaces the secret's host: RDS Proxy's endpoint when the stack has one.
pub const HOST_VAR: &str = "DATABASE_HOST";
/// Replaces the secret's sslmode (`verify-full` through RDS Proxy).
pub const SSL_MODE_VAR: &str = "DATABASE_SSLMODE";
/// Moves Secrets Manager's endpoint (else `AWS_ENDPOINT_URL`), as for the AWS SDKs.
pub const ENDPOINT_VAR: &str = "AWS_ENDPOINT_URL_SECRETS_MANAGER";

/// Init must not hang on an unreachable endpoint (a VPC without a route to Secrets
/// Manager): each attempt, and the read with its retries, fail and say so well inside
/// Lambda's 10 s init. The SDK's figures.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
const READ_TIMEOUT: Duration = Duration::from_secs(8);
const ATTEMPTS: u32 = 3;

/// Where a database connection's credentials are kept, read through Secrets Manager's API.
pub struct DatabaseSecret {
    arn: String,
    host: Option<String>,
    ssl_mode: Option<String>,
    /// Secrets Manager's endpoint, `…/`.
    endpoint: String,
    signer: Signer,
    /// The secret as a connection URL, once read.
    cached: tokio::sync::Mutex<Option<String>>,
    /// Reads so far; lets concurrent refreshes after one failure share a single read.
    reads: AtomicU64,
}

#[derive(thiserror::Error)]
pub enum SecretError {
    #[error("the secret {arn} does not exist (or this role may not see it)")]
    NotFound { arn: String },
    #[error("the secret {arn} could not be read: {message}")]
    Read { arn: String, message: String },
    #[error("the secret {arn} has no SecretString (a binary secret is not a connection)")]
    NotString { arn: String },
    #[error(
        "the secret {arn} is neither a postgres:// URL nor RDS's JSON \
         ({{\"username\",\"password\",\"host\",\"port\",\"dbname\"}}): {reason}"
    )]
    Shape { arn: String, reason: String },
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("{0} is not set: the database secret cannot be read without it")]
    Unset(&'static str),
}

/// As its message: a function's `main` that fails at init prints its error's `Debug`.
impl std::fmt::Debug for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Debug for DatabaseSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSecret")
            .field("arn", &self.arn)
            .field("host", &self.host)
            .field("ssl_mode", &self.ssl_mode)
            .field("endpoint", &self.endpoint)
            .field("reads", &self.reads.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What a read attempt that failed calls for.
enum Failure {
    /// Worth another attempt: no answer, a server error, throttling.
    Transient(String),
    Final(SecretError),
}

impl DatabaseSecret {
    /// The application role's secret (`DATABASE_SECRET_ARN`), with the `DATABASE_HOST` and
    /// `DATABASE_SSLMODE` overrides; `None` when the variable is not set.
    pub async fn from_env() -> Result<Option<DatabaseSecret>, SecretError> {
        let Some(arn) = var(SECRET_ARN_VAR) else {
            return Ok(None);
        };
        let mut secret = DatabaseSecret::in_env(arn)?;
        if let Some(host) = var(HOST_VAR) {
            secret = secret.with_host(host);
        }
        if let Some(mode) = var(SSL_MODE_VAR) {
            secret = secret
                .with_ssl_mode(&mode)
                .map_err(|reason| SecretError::Invalid {
                    name: SSL_MODE_VAR,
                    reason,
                })?;
        }
        Ok(Some(secret))
    }

    /// The owner's secret (`OWNER_DATABASE_SECRET_ARN`) as it stands: no host override,
    /// because migrations connect straight to the server, never through a pooler.
    pub async fn owner_from_env() -> Result<Option<DatabaseSecret>, SecretError> {
        let Some(arn) = var(OWNER_SECRET_ARN_VAR) else {
            return Ok(None);
        };
        Ok(Some(DatabaseSecret::in_env(arn)?))
    }

    /// The secret `arn`, read with the environment's region (else the ARN's), credentials
    /// and endpoint.
    fn in_env(arn: String) -> Result<DatabaseSecret, SecretError> {
        let region = aws_sign::region_from_env()
            .or_else(|| region_of(&arn))
            .ok_or(SecretError::Unset("AWS_REGION"))?;
        let credentials = aws_sign::credentials_from_env().ok_or(SecretError::Unset(
            "AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY",
        ))?;
        let endpoint = aws_sign::endpoint_from_env(ENDPOINT_VAR);
        Ok(DatabaseSecret::new(arn, region, credentials, endpoint))
    }

    /// The secret `arn`, read in `region` with `credentials`, at `endpoint` (Secrets
    /// Manager's regional endpoint when `None`).
    pub fn new(
        arn: impl Into<String>,
        region: impl Into<String>,
        credentials: Credentials,
        endpoint: Option<String>,
    ) -> DatabaseSecret {
        let region = region.into();
        let endpoint = match endpoint {
            Some(endpoint) => format!("{}/", endpoint.trim_end_matches('/')),
            None => format!("https://secretsmanager.{region}.amazonaws.com/"),
        };
        DatabaseSecret {
            arn: arn.into(),
            host: None,
            ssl_mode: None,
            endpoint,
            signer: Signer::new("secretsmanager", region, credentials),
            cached: tokio::sync::Mutex::new(None),
            reads: AtomicU64::new(0),
        }
    }

    /// Connects to `host` whatever host the secret names (RDS Proxy's endpoint).
    pub fn with_host(self, host: impl Into<String>) -> DatabaseSecret {
        DatabaseSecret {
            host: Some(host.into()),
            ..self
        }
    }

    /// Connects with sslmode `mode` (`disable` … `verify-full`) whatever the secret says.
    pub fn with_ssl_mode(self, mode: &str) -> Result<DatabaseSecret, String> {
        PgSslMode::from_str(mode).map_err(|e| e.to_string())?;
        Ok(DatabaseSecret {
            ssl_mode: Some(mode.trim().to_owned()),
            ..self
        })
    }

    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The connection, read from Secrets Manager on the first call and kept from then on.
    pub async fn fetch(&self) -> Result<PgConnectOptions, SecretError> {
        let url = self.url().await?;
        self.options(&url)
    }

    /// The connection read again from Secrets Manager, for after the server refused the
    /// kept one (SQLSTATE 28P01 or 28000). Callers that failed together share one read.
    pub async fn refresh(&self) -> Result<PgConnectOptions, SecretError> {
        let seen = self.reads.load(Ordering::Acquire);
        let mut cached = self.cached.lock().await;
        let url = match cached.as_ref() {
            // Another caller read it while this one waited for the lock.
            Some(url) if self.reads.load(Ordering::Acquire) != seen => url.clone(),
            _ => {
                let url = self.read().await?;
                *cached = Some(url.clone());
                url
            }
        };
        drop(cached);
        self.options(&url)
    }

    /// The connection as a URL, as [`DatabaseSecret::fetch`] keeps it. It holds the
    /// password: never log it.
    pub async fn url(&self) -> Result<String, SecretError> {
        let mut cached = self.cached.lock().await;
        if let Some(url) = cached.as_ref() {
            return Ok(url.clone());
        }
        let url = self.read().await?;
        *cached = Some(url.clone());
        Ok(url)
    }

    async fn read(&self) -> Result<String, SecretError> {
        let read = tokio::time::timeout(READ_TIMEOUT, self.get_secret_value()).await;
        let secret = read.unwrap_or_else(|_| {
            Err(self.read_error(format!(
                "no answer from {} within {READ_TIMEOUT:?}",
                self.endpoint
            )))
        })?;
        self.reads.fetch_add(1, Ordering::AcqRel);
        connection_url(&secret, self.host.as_deref(), self.ssl_mode.as_deref()).map_err(|reason| {
            SecretError::Shape {
                arn: self.arn.clone(),
                reason,
            }
        })
    }

    /// The secret's `SecretString`, retrying what may pass (as the SDK's standard retries
    /// did) with a short backoff.
    async fn get_secret_value(&self) -> Result<String, SecretError> {
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self.attempt().await {
                Ok(secret) => return Ok(secret),
                Err(Failure::Transient(message)) if attempt < ATTEMPTS => {
                    tracing::warn!(arn = %self.arn, attempt, %message, "secret read failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                Err(Failure::Transient(message)) => return Err(self.read_error(message)),
                Err(Failure::Final(error)) => return Err(error),
            }
        }
    }

    async fn attempt(&self) -> Result<String, Failure> {
        let body = serde_json::json!({ "SecretId": self.arn }).to_string();
        let request = http::Request::builder()
            .method("POST")
            .uri(&self.endpoint)
            .header("x-amz-target", "secretsmanager.GetSecretValue")
            .header("content-type", "application/x-amz-json-1.1")
            .body(body.into_bytes())
            .map_err(|e| Failure::Final(self.read_error(e.to_string())))?;
        let mut request = self
            .signer
            .sign(request)
            .map_err(|e| Failure::Final(self.read_error(chain(&*e))))?;
        *request.timeout_mut() = Some(ATTEMPT_TIMEOUT);
        let response = aws_sign::client()
            .execute(request)
            .await
            .map_err(|e| Failure::Transient(chain(&e)))?;
        let status = response.status();
        let error_header = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes()
            .await
            .map_err(|e| Failure::Transient(chain(&e)))?;
        if status.is_success() {
            return self.secret_string(&body).map_err(Failure::Final);
        }
        let (kind, message) = api_error(&body, error_header.as_deref());
        if kind == "ResourceNotFoundException" {
            return Err(Failure::Final(SecretError::NotFound {
                arn: self.arn.clone(),
            }));
        }
        let said = format!("{kind} (HTTP {}): {message}", status.as_u16());
        let transient = status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || matches!(
                kind.as_str(),
                "ThrottlingException" | "InternalServiceError"
            );
        Err(if transient {
            Failure::Transient(said)
        } else {
            Failure::Final(self.read_error(said))
        })
    }

    /// `SecretString` from GetSecretValue's answer. A parse error is reported by position
    /// only: serde's message may quote the value.
    fn secret_string(&self, body: &[u8]) -> Result<String, SecretError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(rename = "SecretString")]
            secret_string: Option<String>,
        }
        let answer: Answer = serde_json::from_slice(body).map_err(|e| {
            self.read_error(format!(
                "GetSecretValue's answer is not what the API returns (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        answer.secret_string.ok_or_else(|| SecretError::NotString {
            arn: self.arn.clone(),
        })
    }

    fn read_error(&self, message: String) -> SecretError {
        SecretError::Read {
            arn: self.arn.clone(),
            message,
        }
    }

    fn options(&self, url: &str) -> Result<PgConnectOptions, SecretError> {
        PgConnectOptions::from_str(url).map_err(|e| SecretError::Shape {
            arn: self.arn.clone(),
            reason: e.to_string(),
        })
    }
}

/// A JSON 1.1 API error's type (`ResourceNotFoundException`) and message, from the body's
/// `__type` (which may carry a namespace before `#`) or the `x-amzn-ErrorType` header
/// (which may carry a URL after `:`).
fn api_error(body: &[u8], header: Option<&str>) -> (String, String) {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |key: &str| json.get(key).and_then(serde_json::Value::as_str);
    let kind = text("__type")
        .or(header)
        .map(|t| t.rsplit('#').next().unwrap_or(t))
        .map(|t| t.split(':').next().unwrap_or(t))
        .unwrap_or("UnknownError");
    let message = text("message").or_else(|| text("Message")).unwrap_or("");
    (kind.to_owned(), message.to_owned())
}

/// An error with its causes: reqwest's own message says only which request failed.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut said = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        said.push_str(": ");
        said.push_str(&cause.to_string());
        source = cause.source();
    }
    said
}

/// The region of `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`.
fn region_of(arn: &str) -> Option<String> {
    let region = arn.strip_prefix("arn:")?.split(':').nth(2)?;
    (!region.is_empty()).then(|| region.to_owned())
}

/// `secret` (either shape) as one PostgreSQL URL, with `host` and `ssl_mode` in place of
/// its own. The reason of an error never quotes the secret.
fn connection_url(
    secret: &str,
    host: Option<&str>,
    ssl_mode: Option<&str>,
) -> Result<String, String> {
    let secret = secret.trim();
    let mut url = if secret.starts_with('{') {
        from_rds_json(secret, host.is_some())?
    } else {
        let url = Url::parse(secret).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!("the URL's scheme is {:?}", url.scheme()));
        }
        url
    };
    if let Some(host) = host {
        set_host(&mut url, host)?;
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("it names no host (nor is {HOST_VAR} set)"));
    }
    if let Some(mode) = ssl_mode {
        let others: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !matches!(k.as_ref(), "sslmode" | "ssl-mode"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(others)
            .append_pair("sslmode", mode);
    }
    Ok(url.into())
}

/// RDS's secret shape. `host` may be absent when the caller supplies one.
fn from_rds_json(secret: &str, host_given: bool) -> Result<Url, String> {
    let json: serde_json::Value = serde_json::from_str(secret)
        .map_err(|e| format!("not valid JSON (line {}, column {})", e.line(), e.column()))?;
    let object = json.as_object().ok_or("not a JSON object")?;
    let text = |key: &str| -> Result<Option<&str>, String> {
        match object.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("\"{key}\" is not a string")),
        }
    };
    let required = |key: &str| text(key)?.ok_or_else(|| format!("\"{key}\" is missing"));
    let username = required("username")?;
    let password = required("password")?;
    let port = match object.get("port") {
        None | Some(serde_json::Value::Null) => Some(5432),
        Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    }
    .ok_or("\"port\" is not a port number")?;

    let mut url = Url::parse("postgres://localhost").expect("a valid URL");
    match text("host")? {
        Some(host) => set_host(&mut url, host)?,
        None if host_given => {}
        None => return Err(format!("\"host\" is missing (and {HOST_VAR} is not set)")),
    }
    url.set_port(Some(port)).map_err(|()| "no port")?;
    // Encoded first, so that a '%' in them survives the decoding sqlx does.
    url.set_username(&encode(username))
        .map_err(|()| "the username does not fit a URL")?;
    url.set_password(Some(&encode(password)))
        .map_err(|()| "the password does not fit a URL")?;
    if let Some(dbname) = text("dbname")? {
        url.set_path(&encode(dbname));
    }
    Ok(url)
}

fn set_host(url: &mut Url, host: &str) -> Result<(), String> {
    let host = host.trim();
    let bracketed;
    // An IPv6 address goes into a URL in brackets.
    let host = if host.contains(':') && !host.starts_with('[') {
        bracketed = format!("[{host}]");
        &bracketed
    } else {
        host
    };
    url.set_host(Some(host))
        .map_err(|e| format!("the host is not a host name ({e})"))
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::ConnectOptions;

    const PASSWORD: &str = "p@ss:w/rd%41?#&=";

    fn options(url: &str) -> PgConnectOptions {
        PgConnectOptions::from_str(url).unwrap()
    }

    /// The password as sqlx will send it.
    fn password(options: &PgConnectOptions) -> String {
        let url = options.to_url_lossy();
        let encoded = url.password().unwrap_or_default();
        percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .unwrap()
            .into_owned()
    }

    #[test]
    fn a_url_secret_is_the_connection() {
        let url = connection_url(
            "  postgres://herald_app:s%40cret@db.example:6432/herald?sslmode=require\n",
            None,
            None,
        )
        .unwrap();
        let o = options(&url);
        assert_eq!(
            (o.get_host(), o.get_port(), o.get_username()),
            ("db.example", 6432, "herald_app")
        );
        assert_eq!(o.get_database(), Some("herald"));
        assert_eq!(password(&o), "s@cret");
        assert!(matches!(o.get_ssl_mode(), PgSslMode::Require));
    }

    #[test]
    fn an_rds_json_secret_is_the_connection_whatever_its_password_holds() {
        let secret = serde_json::json!({
            "username": "herald_app", "password": PASSWORD, "engine": "postgres",
            "host": "db.example", "port": 5433, "dbname": "herald",
            "dbInstanceIdentifier": "herald-db",
        })
        .to_string();
        let o = options(&connection_url(&secret, None, None).unwrap());
        assert_eq!(
            (o.get_host(), o.get_port(), o.get_username()),
            ("db.example", 5433, "herald_app")
        );
        assert_eq!(o.get_database(), Some("herald"));
        assert_eq!(password(&o), PASSWORD);

        // A port as text, no dbname, the host from outside (RDS's managed master secrets
        // hold only the username and password).
        let bare = serde_json::json!({"username": "u", "password": "p", "port": "5432"});
        let url = connection_url(&bare.to_string(), Some("proxy.example"), None).unwrap();
        let o = options(&url);
        assert_eq!((o.get_host(), o.get_port()), ("proxy.example", 5432));
    }

    #[test]
    fn the_host_and_sslmode_overrides_replace_the_secrets_own() {
        let url = connection_url(
            "postgres://u:p@db.internal:5432/herald?sslmode=disable&application_name=x",
            Some("herald.proxy-abc.eu-west-1.rds.amazonaws.com"),
            Some("verify-full"),
        )
        .unwrap();
        let o = options(&url);
        assert_eq!(o.get_host(), "herald.proxy-abc.eu-west-1.rds.amazonaws.com");
        assert!(matches!(o.get_ssl_mode(), PgSslMode::VerifyFull));
        assert_eq!(o.get_application_name(), Some("x"));

        let v6 = connection_url("postgres://u:p@db/herald", Some("::1"), None).unwrap();
        assert_eq!(options(&v6).get_host(), "[::1]");
    }

    #[test]
    fn a_malformed_secret_is_refused_without_quoting_it() {
        let cases = [
            (
                format!("{{\"username\": \"u\", \"password\": \"{PASSWORD}\""),
                "not valid JSON",
            ),
            (
                format!("{{\"username\": \"u\", \"password\": \"{PASSWORD}\"}}"),
                "\"host\" is missing",
            ),
            (
                format!(
                    "{{\"username\": \"u\", \"password\": \"{PASSWORD}\", \"host\": \"h\", \"port\": 99999}}"
                ),
                "\"port\"",
            ),
            (
                "{\"username\": \"u\", \"password\": 12345678, \"host\": \"h\"}".to_owned(),
                "\"password\" is not a string",
            ),
            (
                format!("{{\"password\": \"{PASSWORD}\", \"host\": \"h\"}}"),
                "\"username\" is missing",
            ),
            (format!("mysql://u:{}@h/db", encode(PASSWORD)), "scheme"),
            (PASSWORD.to_owned(), "not a URL"),
            ("[1, 2]".to_owned(), "not a URL"),
        ];
        for (secret, expected) in cases {
            let reason = connection_url(&secret, None, None).unwrap_err();
            assert!(reason.contains(expected), "{secret}: {reason}");
            assert!(
                !reason.contains("p@ss")
                    && !reason.contains("p%40ss")
                    && !reason.contains("12345678"),
                "{reason}"
            );
        }
    }

    #[test]
    fn its_debug_form_names_the_secret_not_its_value() {
        let credentials = Credentials::new("AKIDSECRETS", "s3cr3t-key", None, None, "test");
        let secret = DatabaseSecret::new(
            "arn:aws:secretsmanager:eu-west-1:1:secret:x",
            "eu-west-1",
            credentials,
            None,
        )
        .with_host("proxy.example");
        let shown = format!("{secret:?}");
        assert!(
            shown.contains("arn:aws:secretsmanager")
                && shown.contains("proxy.example")
                && shown.contains("https://secretsmanager.eu-west-1.amazonaws.com/"),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("AKID"),
            "{shown}"
        );
    }

    #[test]
    fn an_api_errors_type_is_read_from_the_body_or_the_header() {
        let namespaced = br#"{"__type":"com.amazonaws.secretsmanager#ResourceNotFoundException","message":"gone"}"#;
        assert_eq!(
            api_error(namespaced, None),
            ("ResourceNotFoundException".into(), "gone".into())
        );
        let header = Some("AccessDeniedException:http://internal.amazon.com/coral/");
        assert_eq!(
            api_error(b"<html>", header),
            ("AccessDeniedException".into(), String::new())
        );
        assert_eq!(
            region_of("arn:aws:secretsmanager:eu-west-1:1:secret:x").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of("herald/app"), None);
    }

    /// Secrets Manager's endpoint, answering each request with the next of `answers` (the
    /// last one from then on) and keeping what it was sent.
    struct StandIn {
        answers: Vec<(u16, &'static str)>,
        seen: std::sync::Mutex<Vec<(http::HeaderMap, Vec<u8>)>>,
    }

    async fn serve(answers: Vec<(u16, &'static str)>) -> (std::sync::Arc<StandIn>, String) {
        use axum::extract::{Request, State};
        use std::sync::Arc;

        async fn answer(
            State(stand_in): State<Arc<StandIn>>,
            request: Request,
        ) -> (axum::http::StatusCode, String) {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
            let mut seen = stand_in.seen.lock().unwrap();
            seen.push((parts.headers, body));
            let (status, text) = stand_in.answers[(seen.len() - 1).min(stand_in.answers.len() - 1)];
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                text.to_owned(),
            )
        }

        let state = Arc::new(StandIn {
            answers,
            seen: std::sync::Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (state, endpoint)
    }

    fn secret_at(endpoint: String) -> DatabaseSecret {
        let credentials =
            Credentials::new("AKIDSECRETS", "key", Some("token".into()), None, "test");
        DatabaseSecret::new(
            "arn:aws:secretsmanager:eu-west-1:1:secret:herald-AbCdEf",
            "eu-west-1",
            credentials,
            Some(endpoint),
        )
    }

    #[tokio::test]
    async fn a_signed_get_secret_value_is_sent_and_a_server_error_retried() {
        let (stand_in, endpoint) = serve(vec![
            (
                500,
                r#"{"__type":"InternalServiceError","message":"try again"}"#,
            ),
            (
                200,
                r#"{"Name":"herald","SecretString":"postgres://u:p@db.example/herald"}"#,
            ),
        ])
        .await;
        let options = secret_at(endpoint).fetch().await.unwrap();
        assert_eq!(options.get_host(), "db.example");

        let seen = stand_in.seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "the 500 retried once");
        let (headers, body) = &seen[1];
        assert_eq!(headers["x-amz-target"], "secretsmanager.GetSecretValue");
        assert_eq!(headers["content-type"], "application/x-amz-json-1.1");
        assert_eq!(headers["x-amz-security-token"], "token");
        let auth = headers["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDSECRETS/")
                && auth.contains("/eu-west-1/secretsmanager/aws4_request"),
            "{auth}"
        );
        let body: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"SecretId": "arn:aws:secretsmanager:eu-west-1:1:secret:herald-AbCdEf"})
        );
    }

    #[tokio::test]
    async fn a_refusal_is_reported_at_once_and_a_binary_secret_is_not_a_connection() {
        let (stand_in, endpoint) = serve(vec![(
            400,
            r#"{"__type":"AccessDeniedException","Message":"not authorized to perform GetSecretValue"}"#,
        )])
        .await;
        let error = secret_at(endpoint).fetch().await.unwrap_err();
        let said = error.to_string();
        assert!(matches!(error, SecretError::Read { .. }), "{said}");
        assert!(
            said.contains("AccessDeniedException (HTTP 400): not authorized"),
            "{said}"
        );
        assert_eq!(stand_in.seen.lock().unwrap().len(), 1, "not retried");

        let (_, endpoint) = serve(vec![(200, r#"{"SecretBinary":"cGFzcw=="}"#)]).await;
        let error = secret_at(endpoint).fetch().await.unwrap_err();
        assert!(matches!(error, SecretError::NotString { .. }), "{error}");
    }
}
