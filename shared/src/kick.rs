//! Waking a worker function without waiting for it: Lambda `Invoke` with `InvocationType`
//! `Event`. The writer's response does not wait on the worker; the worker's own schedule is
//! the safety net if a kick is lost.
//!
//! Which function is kicked comes from an environment variable (`HERALD_DISPATCHER_FUNCTION`
//! for the dispatcher); without it (locally, in tests) kicking does nothing, because
//! `herald-local` runs its workers continuously.

use aws_sdk_lambda::types::InvocationType;

/// A worker function that can be woken.
#[derive(Clone)]
pub struct Kick {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl Kick {
    /// The worker named by `variable`, if it is set.
    pub async fn from_env(variable: &str) -> Option<Kick> {
        let function = std::env::var(variable)
            .ok()
            .filter(|v| !v.trim().is_empty())?;
        let config = crate::aws::from_env().await;
        Some(Kick {
            client: aws_sdk_lambda::Client::new(&config),
            function,
        })
    }

    /// Queues one asynchronous invocation. Failures are logged, not returned: the change
    /// is committed already and the schedule will pick its events up.
    pub async fn kick(&self) {
        let sent = self
            .client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .send()
            .await;
        if let Err(e) = sent {
            tracing::warn!(function = %self.function, error = %aws_sdk_lambda::error::DisplayErrorContext(&e), "kick failed");
        }
    }
}
