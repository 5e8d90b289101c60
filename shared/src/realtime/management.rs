//! The `@connections` management API of API Gateway's WebSocket API (or of the local
//! gateway), through `aws-sdk-apigatewaymanagement`.

use std::time::Duration;

use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::config::timeout::TimeoutConfig;
use aws_sdk_apigatewaymanagement::error::{DisplayErrorContext, SdkError};
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::{Client, config};

/// What happened to one post.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// 410: the client is gone; its connection should be pruned.
    Gone,
    /// Refused or still failing after the retries.
    Failed,
}

#[derive(Clone)]
pub struct Connections {
    client: Client,
}

impl Connections {
    /// A client for the management endpoint `endpoint` (`https://{domain}/{stage}` in AWS,
    /// `HERALD_WS_ENDPOINT`). Throttling, 5xx and network errors are retried with
    /// jittered backoff; each post has a deadline so one stuck connection cannot hold a
    /// batch.
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: &str) -> Connections {
        let config = config::Builder::from(sdk)
            .endpoint_url(endpoint)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(50)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(Duration::from_secs(3))
                    .operation_timeout(Duration::from_secs(10))
                    .build(),
            )
            .build();
        Connections {
            client: Client::from_conf(config),
        }
    }

    pub async fn post(&self, connection_id: &str, data: &[u8]) -> Delivery {
        let sent = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(data))
            .send()
            .await;
        match sent {
            Ok(_) => Delivery::Sent,
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PostToConnectionError::GoneException(_)) =>
            {
                Delivery::Gone
            }
            Err(e) => {
                tracing::warn!(connection_id, error = %DisplayErrorContext(&e), "post to connection failed");
                Delivery::Failed
            }
        }
    }
}
