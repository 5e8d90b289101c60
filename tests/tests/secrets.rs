//! Database credentials from Secrets Manager (`herald::secrets`), against a real stand-in for
//! its API: moto's server mode (`pip install 'moto[server]'`), one process per test on
//! 127.0.0.1, and the local PostgreSQL (a private cluster that checks passwords for the
//! rotation test).

use std::process::Stdio;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use herald::aws_sign::{self, Signer};
use herald::db::Database;
use herald::secrets::{DatabaseSecret, SecretError};
use herald_tests::cluster::Cluster;
use herald_tests::function_process::{FunctionProcess, http_event};
use herald_tests::{SECRET, server_url};
use serde_json::{Value, json};
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, Postgres};
use tokio::io::{AsyncBufReadExt, BufReader};

const INSTALL: &str = "install it with: pip install 'moto[server]'";

/// moto's server, serving the Secrets Manager API until dropped.
struct Moto {
    endpoint: String,
    _process: tokio::process::Child,
}

impl Moto {
    async fn start() -> Moto {
        let mut process = tokio::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("moto_server does not start ({e}); {INSTALL}"));
        // Werkzeug says where it listens, on stderr, once it does.
        let mut lines = BufReader::new(process.stderr.take().expect("stderr is piped")).lines();
        let mut said = String::new();
        let endpoint = loop {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
            match line {
                Ok(Ok(Some(line))) => {
                    if let Some(url) = line.split("Running on ").nth(1) {
                        break url.trim().to_owned();
                    }
                    said.push_str(&line);
                    said.push('\n');
                }
                Ok(_) => panic!("moto_server ended before it listened; {INSTALL}\n{said}"),
                Err(_) => panic!("moto_server did not listen within a minute\n{said}"),
            }
        };
        // Drained, so that moto never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Moto {
            endpoint,
            _process: process,
        }
    }

    fn credentials() -> Credentials {
        Credentials::new("local", "local", None, None, "moto")
    }

    /// `arn` as a function reads it: through moto's endpoint, in moto's default region.
    fn secret(&self, arn: &str) -> DatabaseSecret {
        DatabaseSecret::new(
            arn,
            "us-east-1",
            Moto::credentials(),
            Some(self.endpoint.clone()),
        )
    }

    /// Secrets Manager's `operation`, as herald::secrets calls it; the answer.
    async fn call(&self, operation: &str, body: Value) -> Value {
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("{}/", self.endpoint))
            .header("x-amz-target", format!("secretsmanager.{operation}"))
            .header("content-type", "application/x-amz-json-1.1")
            .body(body.to_string().into_bytes())
            .unwrap();
        let request = Signer::new("secretsmanager", "us-east-1", Moto::credentials())
            .sign(request)
            .unwrap();
        let response = aws_sign::client().execute(request).await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{operation}: {status} {answer}");
        answer
    }

    /// A new secret holding `value`; its ARN.
    async fn create(&self, value: &str) -> String {
        let name = format!("herald/test/{}", uuid::Uuid::new_v4().simple());
        let created = self
            .call("CreateSecret", json!({"Name": name, "SecretString": value}))
            .await;
        created["ARN"].as_str().expect("an ARN").to_owned()
    }

    /// A new current version of the secret, as a rotation makes.
    async fn rotate(&self, arn: &str, value: &str) {
        self.call(
            "PutSecretValue",
            json!({"SecretId": arn, "SecretString": value}),
        )
        .await;
    }
}

/// The test server's connection (`TEST_DATABASE_URL`), in database `database`.
fn server_in(database: &str) -> String {
    format!("{}/{database}", server_url())
}

async fn current_database(options: &PgConnectOptions) -> (String, String) {
    let mut conn = PgConnection::connect_with(options)
        .await
        .expect("the secret's connection connects");
    let row: (String, String) = sqlx::query_as("SELECT current_database(), current_user::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    row
}

/// A database of this test's own, dropped at the end.
async fn scratch_database() -> (String, String) {
    let name = format!("herald_test_{}", uuid::Uuid::new_v4().simple());
    let url = server_in(&name);
    Postgres::create_database(&url).await.unwrap();
    (name, url)
}

#[tokio::test]
async fn a_url_secret_connects_and_a_rotation_is_read_on_refresh_only() {
    let moto = Moto::start().await;
    let (scratch, scratch_url) = scratch_database().await;
    let arn = moto.create(&server_in("postgres")).await;
    let secret = moto.secret(&arn);

    let options = secret.fetch().await.unwrap();
    assert_eq!(current_database(&options).await.0, "postgres");

    moto.rotate(&arn, &scratch_url).await;
    let kept = secret.fetch().await.unwrap();
    assert_eq!(
        kept.get_database(),
        Some("postgres"),
        "kept for the container's life"
    );
    let refreshed = secret.refresh().await.unwrap();
    assert_eq!(current_database(&refreshed).await.0, scratch);
    assert_eq!(
        secret.fetch().await.unwrap().get_database(),
        Some(scratch.as_str()),
        "the refreshed secret is the one kept from then on"
    );

    Postgres::force_drop_database(&scratch_url).await.unwrap();
}

#[tokio::test]
async fn an_rds_json_secret_connects_through_the_host_given_instead_of_its_own() {
    let moto = Moto::start().await;
    let server = PgConnectOptions::from_str(&server_url()).unwrap();
    // RDS's shape, naming the database instance, as RDS Proxy needs it; the functions are
    // pointed at the proxy by DATABASE_HOST (here the test server stands in for the proxy).
    let arn = moto
        .create(
            &json!({
                "engine": "postgres",
                "username": server.get_username(),
                "password": "p@ss:w/rd%41 ?#&=",
                "host": "herald-db.abc123.eu-west-1.rds.amazonaws.com",
                "port": server.get_port(),
                "dbname": "postgres",
                "dbInstanceIdentifier": "herald-db",
            })
            .to_string(),
        )
        .await;

    let as_stored = moto.secret(&arn).fetch().await.unwrap();
    assert_eq!(
        as_stored.get_host(),
        "herald-db.abc123.eu-west-1.rds.amazonaws.com"
    );

    let secret = moto.secret(&arn).with_host(server.get_host());
    let options = secret.fetch().await.unwrap();
    assert_eq!(
        current_database(&options).await,
        ("postgres".to_owned(), server.get_username().to_owned())
    );
}

#[tokio::test]
async fn a_secret_that_does_not_exist_is_a_clear_error() {
    let moto = Moto::start().await;
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:herald/missing-AbCdEf";
    let error = moto.secret(arn).fetch().await.expect_err("no such secret");
    assert!(matches!(error, SecretError::NotFound { .. }), "{error:?}");
    let said = error.to_string();
    assert!(
        said.contains(arn) && said.contains("does not exist"),
        "{said}"
    );
}

/// What a deployed function gets (template.yaml): the secret's ARN, not its value, and
/// the execution role's credentials; moto stands in for Secrets Manager's endpoint.
fn function_env<'a>(moto: &'a Moto, arn: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("DATABASE_SECRET_ARN", arn),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("HERALD_JWT_SECRET", SECRET),
    ]
}

#[tokio::test]
async fn a_function_reads_its_database_secret_at_init_and_refuses_to_start_without_it() {
    let moto = Moto::start().await;
    let arn = moto.create(&server_in("postgres")).await;
    let function = FunctionProcess::function("system", &function_env(&moto, &arn)).await;
    let health = http_event("GET", "GET /health", "/health", &[], None);
    let response = function.invoke(&health).await.response();
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["database"], "ok");

    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:herald/missing-AbCdEf";
    let mut function = FunctionProcess::function("system", &function_env(&moto, missing)).await;
    let status = function
        .exit(Duration::from_secs(30))
        .await
        .expect("a function without its secret exits at init");
    assert!(!status.success());
    let said = function.stderr();
    assert!(
        said.contains(missing) && said.contains("does not exist"),
        "{said}"
    );
}

#[tokio::test]
async fn the_migrate_function_reads_the_owners_secret_and_the_applications() {
    let moto = Moto::start().await;
    let (_, owner_url) = scratch_database().await;
    let owner = PgConnectOptions::from_str(&owner_url).unwrap();
    let owner_arn = moto
        .create(
            &json!({
                "username": owner.get_username(),
                "password": "owner",
                "host": owner.get_host(),
                "port": owner.get_port(),
                "dbname": owner.get_database(),
            })
            .to_string(),
        )
        .await;
    let app_url = owner_url.replacen("postgres://postgres@", "postgres://herald_app:s3cret@", 1);
    let app_arn = moto.create(&app_url).await;
    let mut env = function_env(&moto, &app_arn);
    env.push(("OWNER_DATABASE_SECRET_ARN", &owner_arn));
    let function = FunctionProcess::function("migrate", &env).await;
    let report = function.invoke(&json!({})).await.response();
    assert!(
        !report["applied"].as_array().unwrap().is_empty(),
        "{report}"
    );
    assert_eq!(report["appPasswordSet"], true, "{report}");

    drop(function);
    Postgres::force_drop_database(&owner_url).await.unwrap();
}

/// A configuration whose application connection comes from `secret`, as
/// [`herald::Config::load`] makes it from `DATABASE_SECRET_ARN` (built here, not from the
/// environment, which the process shares).
async fn config_from(secret: DatabaseSecret) -> herald::Config {
    herald::Config {
        database_url: secret.url().await.expect("the secret is read"),
        database_secret: Some(Arc::new(secret)),
        db_max_connections: 2,
        db_pooler: herald::db::Pooler::None,
        jwt: herald::config::JwtConfig {
            hs256_secret: Some(SECRET.into()),
            ..Default::default()
        },
        slow_query: Duration::from_secs(1),
        egress: herald::net::egress::EgressPolicy::public_only(),
        observer: herald::observer::ObserverConfig {
            enabled: false,
            ..Default::default()
        },
        public_url: None,
        twilio_base_url: "https://api.twilio.com".parse().unwrap(),
        event_retention: herald::events::DEFAULT_RETENTION,
    }
}

async fn current_user(db: &Database) -> Result<String, sqlx::Error> {
    let mut tx = db.begin_unscoped().await?;
    let user = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(user)
}

#[tokio::test]
async fn the_pool_reads_its_secret_again_when_a_rotated_password_is_refused() {
    let moto = Moto::start().await;
    let cluster = Cluster::start_checking_passwords().await;
    let mut superuser = PgConnection::connect_with(&cluster.superuser())
        .await
        .expect("the superuser connects through the socket");
    sqlx::raw_sql("CREATE ROLE herald_rotated LOGIN PASSWORD 'p1'")
        .execute(&mut superuser)
        .await
        .unwrap();
    let url = |password: &str| {
        format!(
            "postgres://herald_rotated:{password}@127.0.0.1:{}/postgres",
            cluster.port()
        )
    };
    let arn = moto.create(&url("p1")).await;
    let config = config_from(moto.secret(&arn)).await;

    // Both lazy: neither has connected with p1 before the rotation.
    let rereads = config.database("rotation-test").unwrap();
    let without_secret = herald::Config {
        database_secret: None,
        ..config.clone()
    };
    let keeps_p1 = without_secret.database("rotation-test").unwrap();

    // A rotation: the password changes, then the secret's current version.
    sqlx::raw_sql("ALTER ROLE herald_rotated PASSWORD 'p2'")
        .execute(&mut superuser)
        .await
        .unwrap();
    moto.rotate(&arn, &url("p2")).await;

    let refused = current_user(&keeps_p1)
        .await
        .expect_err("p1 is refused once rotated");
    assert_eq!(
        refused
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("28P01"),
        "{refused}"
    );

    assert_eq!(
        current_user(&rereads)
            .await
            .expect("refused with p1, the pool reads p2 and connects"),
        "herald_rotated"
    );
    let kept = config
        .database_secret
        .as_ref()
        .unwrap()
        .url()
        .await
        .unwrap();
    assert_eq!(kept, url("p2"), "the secret now keeps p2");

    superuser.close().await.unwrap();
}
