//! The dispatcher, running continuously inside `herald-local`: it LISTENs on the outbox's
//! notification channel (an `AFTER INSERT` trigger notifies at commit) and drains right away,
//! with a slow poll as a safety net for a lost connection.

use std::time::Duration;

use herald::realtime::dispatcher::{Dispatcher, SAFETY_POLL};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

/// The channel `app.notify_outbox()` notifies.
const CHANNEL: &str = "herald_outbox";

/// Starts the loop; it runs until the process ends.
pub fn spawn(options: PgConnectOptions, dispatcher: Dispatcher) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options.application_name("herald-local-dispatcher"));
        let mut listener = None;
        loop {
            if listener.is_none() {
                listener = listen(&pool).await;
            }
            // A failed run (a crash between posting and stamping included) leaves its batch
            // pending: run again shortly, as Lambda retries a failed asynchronous invocation.
            if dispatcher.run().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            match listener.as_mut() {
                Some(l) => tokio::select! {
                    woke = l.recv() => if woke.is_err() {
                        listener = None;
                    },
                    _ = tokio::time::sleep(SAFETY_POLL) => {}
                },
                None => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    })
}

async fn listen(pool: &sqlx::PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen(CHANNEL).await.ok()?;
    Some(listener)
}
