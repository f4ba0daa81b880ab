//! The shared infrastructure a service is built on, assembled once per process and passed
//! into every service's `App::build` (style.md §5: dependencies are values passed in):
//! the event bus, Redis, the JWT authenticator with its revocation store, and their
//! readiness checks. With `AMQP_URL` / `REDIS_URL` unset (`minute all` on a laptop) the
//! in-process bus and in-process revocations take their place, shared by all services.

use std::sync::Arc;
use std::time::Duration;

use minute_bus::{EventBus, MemoryBus, Namespace, RabbitBus, RabbitSettings};
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticator, JwtKeys, MemoryRevocations, RedisRevocations, Revocations};
use crate::config::{CommonSettings, JwtSettings};
use crate::http::{FnCheck, Readiness};

/// Where the infrastructure is and how its names are prefixed.
#[derive(Debug, Clone, Default)]
pub struct InfraOptions {
    /// RabbitMQ; `None` = in-process bus.
    pub amqp_url: Option<String>,
    /// Redis; `None` = in-process.
    pub redis_url: Option<String>,
    /// Prefix of exchange and queue names (empty in production; unique per test).
    pub bus_namespace: String,
    /// Prefix of Redis keys (`minute:` in production; unique per test).
    pub redis_prefix: String,
    /// This process's replica id.
    pub replica_id: String,
}

impl InfraOptions {
    /// Production options from the common settings.
    pub fn from_settings(common: &CommonSettings) -> Self {
        Self {
            amqp_url: common.amqp_url.clone(),
            redis_url: common.redis_url.clone(),
            bus_namespace: String::new(),
            redis_prefix: "minute:".into(),
            replica_id: common.replica_id.clone(),
        }
    }
}

/// The connected infrastructure. Cheap to clone.
#[derive(Clone)]
pub struct Infra {
    /// The event bus.
    pub bus: Arc<dyn EventBus>,
    /// Redis, when configured.
    pub redis: Option<ConnectionManager>,
    /// Prefix for Redis keys.
    pub redis_prefix: String,
    /// Verifies access tokens and checks revocation.
    pub auth: Arc<Authenticator>,
    /// JWT settings (auth issues tokens with them).
    pub jwt: JwtSettings,
    /// This process's replica id.
    pub replica_id: String,
    /// Broker and Redis readiness.
    pub readiness: Readiness,
    /// Fires on shutdown.
    pub stop: CancellationToken,
}

impl Infra {
    /// Connects what `options` names (waiting up to 30 s for the broker; the bus keeps
    /// reconnecting by itself afterwards) and falls back to in-process parts for the rest.
    pub async fn connect(
        options: InfraOptions,
        jwt: JwtSettings,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let mut readiness = Readiness::new();
        let bus: Arc<dyn EventBus> = match &options.amqp_url {
            Some(url) => {
                let mut settings = RabbitSettings::new(url.clone());
                settings.namespace = Namespace(options.bus_namespace.clone());
                settings.connection_name = format!("minute-{}", options.replica_id);
                let bus = RabbitBus::start(settings, stop.clone());
                let probe = bus.clone();
                readiness = readiness.with(FnCheck::new("broker", move || {
                    let ready = probe.is_ready();
                    async move {
                        if ready {
                            Ok(())
                        } else {
                            Err("not connected to RabbitMQ".to_owned())
                        }
                    }
                }));
                Arc::new(bus)
            }
            None => Arc::new(MemoryBus::with_namespace(Namespace(
                options.bus_namespace.clone(),
            ))),
        };
        let (redis, revocations): (Option<ConnectionManager>, Arc<dyn Revocations>) =
            match &options.redis_url {
                Some(url) => {
                    let conn =
                        tokio::time::timeout(Duration::from_secs(30), crate::redis::connect(url))
                            .await
                            .map_err(|_| anyhow::anyhow!("REDIS_URL: no answer within 30 s"))?
                            .map_err(|e| anyhow::anyhow!("REDIS_URL: cannot connect: {e}"))?;
                    readiness = readiness.with(Arc::new(crate::redis::RedisCheck(conn.clone())));
                    let rev = RedisRevocations::new(conn.clone(), options.redis_prefix.clone());
                    (Some(conn), Arc::new(rev))
                }
                None => (None, Arc::new(MemoryRevocations::default())),
            };
        let auth = Arc::new(Authenticator::new(JwtKeys::new(&jwt), revocations));
        Ok(Self {
            bus,
            redis,
            redis_prefix: options.redis_prefix,
            auth,
            jwt,
            replica_id: options.replica_id,
            readiness,
            stop,
        })
    }
}
