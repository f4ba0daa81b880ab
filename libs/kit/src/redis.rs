//! Redis, the shared layer between replicas (presence, typing, rate limits, revocation).

use async_trait::async_trait;
use redis::aio::ConnectionManager;

use crate::http::ReadinessCheck;

/// Connects a multiplexed connection that reconnects by itself.
///
/// Commands wait for a reconnect in progress, so it makes one quick attempt, not the
/// driver's default series of six with growing delays: while Redis is down every caller
/// (revocation checks on each request, typing, presence) gets an error at once instead of
/// stalling for seconds, and the next command tries again.
pub async fn connect(url: &str) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
        .set_response_timeout(Some(std::time::Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(std::time::Duration::from_millis(100));
    ConnectionManager::new_with_config(client, config).await
}

/// `/readyz` check: `PING`.
pub struct RedisCheck(pub ConnectionManager);

#[async_trait]
impl ReadinessCheck for RedisCheck {
    fn name(&self) -> &str {
        "redis"
    }
    async fn check(&self) -> Result<(), String> {
        let mut c = self.0.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
