//! The `migrate` Lambda function: applies Herald's migrations to the deployed database as
//! its owner and keeps `herald_app`'s password in step with the functions' secret. Invoked
//! by hand after a deploy (`sam remote invoke MigrateFunction`); see the README's Deploy
//! section. Its input is ignored; its output is the [`herald::migrate::Report`].
//!
//! The owner's connection is `OWNER_DATABASE_URL` or the secret `OWNER_DATABASE_SECRET_ARN`
//! names; the application's (for its password) `DATABASE_URL` or `DATABASE_SECRET_ARN`'s.

use herald::secrets::DatabaseSecret;
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde_json::Value;

/// A connection given as a URL in the environment, or kept in a secret (boxed: the
/// secret, with its cache and signer, is ten times a URL's size).
enum Source {
    Url(String),
    Secret(Box<DatabaseSecret>),
}

impl Source {
    /// The URL now. A secret is read on every invocation: the function is invoked after a
    /// rotation, possibly in a container that read the secret before it.
    async fn url(&self) -> Result<String, lambda_runtime::Error> {
        match self {
            Source::Url(url) => Ok(url.clone()),
            Source::Secret(secret) => {
                secret.refresh().await?;
                Ok(secret.url().await?)
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    herald::telemetry::init();
    let owner = match env("OWNER_DATABASE_URL") {
        Some(url) => Source::Url(url),
        None => Source::Secret(Box::new(DatabaseSecret::owner_from_env().await?.ok_or(
            "neither OWNER_DATABASE_URL nor OWNER_DATABASE_SECRET_ARN is set: the owner's connection",
        )?)),
    };
    let app = match env("DATABASE_URL") {
        Some(url) => Some(Source::Url(url)),
        None => DatabaseSecret::from_env()
            .await?
            .map(|secret| Source::Secret(Box::new(secret))),
    };
    let (owner, app) = (&owner, &app);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        let owner_url = owner.url().await?;
        let app_url = match app {
            Some(app) => Some(app.url().await?),
            None => None,
        };
        let report = herald::migrate::run(&owner_url, app_url.as_deref()).await?;
        tracing::info!(applied = ?report.applied, current = ?report.current, "migrated");
        Ok::<_, lambda_runtime::Error>(serde_json::to_value(report)?)
    }))
    .await
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}
