//! Waking a worker function without waiting for it: Lambda `Invoke` with `InvocationType`
//! `Event`. The writer's response does not wait on the worker; the worker's own schedule is
//! the safety net if a kick is lost.
//!
//! Which function is kicked comes from an environment variable (`HERALD_DISPATCHER_FUNCTION`
//! for the dispatcher); without it (locally, in tests) kicking does nothing, because
//! `herald-local` runs its workers continuously.
//!
//! One SigV4-signed POST ([`crate::aws_sign`]) rather than aws-sdk-lambda: every HTTP
//! function kicks, and the SDK client with its HTTP/2-capable stack was about a megabyte of
//! each bootstrap, for one call.
//!
//! Kicks coalesce: a process has at most one invocation of a worker in flight. A kick asked
//! for meanwhile is owed: exactly one more invocation follows the one in flight, so every
//! committed event is still announced, and the worker's reserved concurrency is not spent
//! on invocations that would find nothing new.

use std::sync::{Arc, Mutex};

use aws_credential_types::Credentials;
use tokio::sync::watch;

use crate::aws_sign::{self, Signer};

/// A worker function that can be woken. Clones share their kicks in flight.
#[derive(Clone)]
pub struct Kick {
    inner: Arc<Inner>,
}

struct Inner {
    /// `…/2015-03-31/functions/{name}/invocations`
    url: String,
    signer: Signer,
    function: String,
    flight: Mutex<Flight>,
    /// The number of the last invocation that finished (see [`Flight::started`]).
    finished: watch::Sender<u64>,
}

#[derive(Default)]
struct Flight {
    /// Whether a task is sending invocations.
    sending: bool,
    /// A kick was asked for after the invocation in flight started: one more is owed.
    owed: bool,
    /// Invocations started so far; the next one is `started + 1`.
    started: u64,
}

impl Kick {
    /// The worker named by `variable`, if it is set, invoked with the execution role's
    /// credentials from the environment. `AWS_ENDPOINT_URL_LAMBDA` (or `AWS_ENDPOINT_URL`)
    /// moves the Lambda endpoint, as it does for the AWS SDKs.
    pub fn from_env(variable: &str) -> Option<Kick> {
        let function = aws_sign::env(variable)?;
        let region = aws_sign::region_from_env()?;
        let Some(credentials) = aws_sign::credentials_from_env() else {
            tracing::warn!(%function, "no AWS credentials in the environment: kicks are off");
            return None;
        };
        let endpoint = aws_sign::endpoint_from_env("AWS_ENDPOINT_URL_LAMBDA");
        Kick::new(function, region, credentials, endpoint)
    }

    /// Invokes `function` in `region` with `credentials`, at `endpoint` (Lambda's regional
    /// endpoint when `None`).
    pub fn new(
        function: String,
        region: String,
        credentials: Credentials,
        endpoint: Option<String>,
    ) -> Option<Kick> {
        let endpoint = endpoint.unwrap_or_else(|| format!("https://lambda.{region}.amazonaws.com"));
        let name: String = form_urlencoded::byte_serialize(function.as_bytes()).collect();
        Some(Kick {
            inner: Arc::new(Inner {
                url: format!(
                    "{}/2015-03-31/functions/{name}/invocations",
                    endpoint.trim_end_matches('/')
                ),
                signer: Signer::new("lambda", region, credentials),
                function,
                flight: Mutex::new(Flight::default()),
                finished: watch::Sender::new(0),
            }),
        })
    }

    /// Queues an asynchronous invocation that starts after this call, and returns once it
    /// has been sent (Lambda freezes the container after the response, so nothing may be
    /// left in flight). With one in flight already, the next one is shared with every other
    /// kick asked for meanwhile. Failures are logged, not returned: the change is committed
    /// already and the schedule will pick its events up.
    pub async fn kick(&self) {
        let wanted = {
            let mut flight = self.inner.flight.lock().expect("kick state");
            if flight.sending {
                flight.owed = true;
            } else {
                flight.sending = true;
                // A task of its own, so that a caller that stops waiting cannot strand the
                // kick owed to the others.
                tokio::spawn(Arc::clone(&self.inner).send_while_owed());
            }
            flight.started + 1
        };
        let mut finished = self.inner.finished.subscribe();
        // Err only if the sender is gone, and it lives as long as `self`.
        let _ = finished.wait_for(|&n| n >= wanted).await;
    }
}

impl Inner {
    /// Sends invocations one at a time until none is owed.
    async fn send_while_owed(self: Arc<Inner>) {
        let mut guard = Sending(Some(&self));
        loop {
            let number = {
                let mut flight = self.flight.lock().expect("kick state");
                flight.owed = false;
                flight.started += 1;
                flight.started
            };
            self.kick_once().await;
            self.finished.send_replace(number);
            let mut flight = self.flight.lock().expect("kick state");
            if !flight.owed {
                flight.sending = false;
                guard.0 = None;
                return;
            }
        }
    }

    async fn kick_once(&self) {
        match self.invoke().await {
            // Lambda answers 202 Accepted to an Event invocation.
            Ok(status) if status.is_success() => {}
            Ok(status) => tracing::warn!(function = %self.function, %status, "kick refused"),
            Err(error) => tracing::warn!(function = %self.function, %error, "kick failed"),
        }
    }

    async fn invoke(&self) -> Result<reqwest::StatusCode, aws_sign::Error> {
        let request = http::Request::builder()
            .method("POST")
            .uri(&self.url)
            .header("x-amz-invocation-type", "Event")
            .header("content-type", "application/json")
            .body(b"{}".to_vec())?;
        let request = self.signer.sign(request)?;
        Ok(aws_sign::client().execute(request).await?.status())
    }
}

/// Should the sending task end early (a panic, the runtime shutting down), releases the
/// kicks waiting on it, theirs lost to the schedule, and lets the next kick start anew.
struct Sending<'a>(Option<&'a Inner>);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        if let Some(inner) = self.0
            && let Ok(mut flight) = inner.flight.lock()
        {
            // Counted as sent: the owed one included, so that its waiters return too.
            flight.started += 1;
            flight.owed = false;
            flight.sending = false;
            inner.finished.send_replace(flight.started);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::extract::State;
    use axum::http::StatusCode;
    use tokio::sync::{Semaphore, mpsc, watch};

    use super::*;

    /// Lambda's Invoke endpoint, counting the invocations in flight. Each invocation waits
    /// for `open` before it answers.
    struct Lambda {
        /// One clock for invocations started here and kicks asked for by the test.
        clock: Arc<AtomicU64>,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
        started_at: Mutex<Vec<u64>>,
        arrived: mpsc::UnboundedSender<()>,
        open: watch::Receiver<bool>,
    }

    async fn invoke(State(lambda): State<Arc<Lambda>>) -> StatusCode {
        let tick = lambda.clock.fetch_add(1, Ordering::SeqCst);
        lambda.started_at.lock().unwrap().push(tick);
        let now = lambda.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        lambda.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let _ = lambda.arrived.send(());
        let _ = lambda.open.clone().wait_for(|open| *open).await;
        lambda.in_flight.fetch_sub(1, Ordering::SeqCst);
        StatusCode::ACCEPTED
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_kicks_send_one_invocation_at_a_time_and_one_after_the_last() {
        const KICKS: usize = 50;
        let clock = Arc::new(AtomicU64::new(0));
        let (arrived, mut arrivals) = mpsc::unbounded_channel();
        let (open, gate) = watch::channel(false);
        let lambda = Arc::new(Lambda {
            clock: Arc::clone(&clock),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            started_at: Mutex::new(Vec::new()),
            arrived,
            open: gate,
        });
        let app = axum::Router::new()
            .fallback(invoke)
            .with_state(Arc::clone(&lambda));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let credentials = Credentials::new("AKIDKICK", "secret", None, None, "test");
        let kick = Kick::new(
            "herald-dispatcher".into(),
            "eu-west-1".into(),
            credentials,
            Some(format!("http://{addr}")),
        )
        .unwrap();

        let first = tokio::spawn({
            let kick = kick.clone();
            async move { kick.kick().await }
        });
        arrivals.recv().await.expect("the first invocation arrives");

        // Kicks asked for while the first invocation is held open.
        let asked = Arc::new(Semaphore::new(0));
        let last_asked = Arc::new(AtomicU64::new(0));
        let mut kicks = tokio::task::JoinSet::new();
        for _ in 0..KICKS {
            let (kick, clock, asked, last_asked) = (
                kick.clone(),
                Arc::clone(&clock),
                Arc::clone(&asked),
                Arc::clone(&last_asked),
            );
            kicks.spawn(async move {
                last_asked.fetch_max(clock.fetch_add(1, Ordering::SeqCst), Ordering::SeqCst);
                asked.add_permits(1);
                kick.kick().await;
            });
        }
        let _ = asked.acquire_many(KICKS as u32).await.unwrap();
        open.send_replace(true);

        first.await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), kicks.join_all())
            .await
            .expect("every kick returns once an invocation after it was sent");

        let started_at = lambda.started_at.lock().unwrap().clone();
        assert_eq!(
            lambda.most_in_flight.load(Ordering::SeqCst),
            1,
            "invocations overlapped: {started_at:?}"
        );
        assert!(
            started_at.len() >= 2 && started_at.len() <= 3,
            "{} kicks made {} invocations, not the one in flight and one (rarely two) more",
            KICKS + 1,
            started_at.len()
        );
        let last_asked = last_asked.load(Ordering::SeqCst);
        assert!(
            started_at.iter().any(|&tick| tick > last_asked),
            "no invocation started after the last kick was asked for (at {last_asked}): \
             {started_at:?}"
        );
    }
}
