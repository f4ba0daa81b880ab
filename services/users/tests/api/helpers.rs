//! `spawn_app` and friends: the real service on port 0, over real infrastructure.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use minute_bus::{Message, QueueSpec, Subscription};
use minute_events::{AccountRegistered, EVENTS_EXCHANGE, Envelope, Event, UserUpdated};
use minute_kit::config::{CommonSettings, Env, JwtSettings};
use minute_kit::infra::{Infra, InfraOptions};
use minute_kit::mongo::MongoSettings;
use minute_testkit::GraphqlClient;
use minute_users::config::Storage;
use minute_users::domain::{Profile, SearchQuery, UserId};
use minute_users::store::{MongoStore, OutboxEntry, Pending, StoreError, UserStore};
use minute_users::{App, Settings};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub(crate) const SECRET: &str = "users-test-secret-0123456789abcdef";

pub(crate) async fn infra() -> Infra {
    let jwt = JwtSettings::from_env(&Env::from_pairs([("JWT_SECRET", SECRET)]), None)
        .expect("jwt settings");
    Infra::connect(
        InfraOptions {
            amqp_url: Some(minute_testkit::amqp_url()),
            redis_url: Some(minute_testkit::redis_url()),
            bus_namespace: minute_testkit::unique_namespace(),
            redis_prefix: format!("{}:", minute_testkit::unique("t")),
            replica_id: minute_testkit::unique("users"),
        },
        jwt,
        CancellationToken::new(),
    )
    .await
    .expect("infra connects to RabbitMQ and Redis")
}

pub(crate) fn settings(storage: Storage) -> Settings {
    let env = Env::from_pairs([("HOST", "127.0.0.1"), ("PORT", "0")]);
    Settings {
        common: CommonSettings::from_env(&env, 0).expect("common settings"),
        storage,
        outbox_interval: Duration::from_millis(200),
        queue_expiry: Some(Duration::from_secs(60)),
    }
}

pub(crate) fn mongo_settings() -> MongoSettings {
    MongoSettings {
        url: minute_testkit::mongodb_uri(),
        database: minute_testkit::unique_database("users"),
        max_pool_size: 10,
        timeout: Duration::from_secs(10),
    }
}

pub(crate) async fn mongo_store() -> Arc<dyn UserStore> {
    let db = minute_kit::mongo::connect(&mongo_settings())
        .await
        .expect("mongo client");
    Arc::new(MongoStore::open(db).await.expect("indexes"))
}

/// Counts the calls that reach the real store behind it (not a mock: every call is
/// delegated to the real adapter).
pub(crate) struct CountingStore {
    pub(crate) inner: Arc<dyn UserStore>,
    pub(crate) get: AtomicUsize,
    pub(crate) get_many: AtomicUsize,
    pub(crate) get_many_keys: AtomicUsize,
}

impl CountingStore {
    pub(crate) fn new(inner: Arc<dyn UserStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            get: AtomicUsize::new(0),
            get_many: AtomicUsize::new(0),
            get_many_keys: AtomicUsize::new(0),
        })
    }
    pub(crate) fn reads(&self) -> (usize, usize) {
        (
            self.get.load(Ordering::SeqCst),
            self.get_many.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl UserStore for CountingStore {
    async fn get(&self, id: &UserId) -> Result<Option<Profile>, StoreError> {
        self.get.fetch_add(1, Ordering::SeqCst);
        self.inner.get(id).await
    }
    async fn get_many(&self, ids: &[UserId]) -> Result<Vec<Profile>, StoreError> {
        self.get_many.fetch_add(1, Ordering::SeqCst);
        self.get_many_keys.fetch_add(ids.len(), Ordering::SeqCst);
        self.inner.get_many(ids).await
    }
    async fn search(&self, q: &SearchQuery, limit: usize) -> Result<Vec<Profile>, StoreError> {
        self.inner.search(q, limit).await
    }
    async fn insert(&self, p: &Profile, e: &OutboxEntry) -> Result<bool, StoreError> {
        self.inner.insert(p, e).await
    }
    async fn replace(&self, p: &Profile, e: &OutboxEntry) -> Result<bool, StoreError> {
        self.inner.replace(p, e).await
    }
    async fn pending(&self, limit: usize) -> Result<Vec<Pending>, StoreError> {
        self.inner.pending(limit).await
    }
    async fn mark_sent(&self, u: &UserId, id: &str) -> Result<(), StoreError> {
        self.inner.mark_sent(u, id).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

pub(crate) struct TestApp {
    pub(crate) port: u16,
    pub(crate) infra: Infra,
    pub(crate) store: Arc<dyn UserStore>,
    pub(crate) stop: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The service on MongoDB.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_on(mongo_store().await).await
}

/// The service over `store`.
pub(crate) async fn spawn_app_on(store: Arc<dyn UserStore>) -> TestApp {
    spawn_app_with(store, infra().await).await
}

/// The service over `store` on `infra` (tests that listen before the service starts).
pub(crate) async fn spawn_app_with(store: Arc<dyn UserStore>, infra: Infra) -> TestApp {
    let app = App::build_with_store(
        settings(Storage::Embedded("unused".into())),
        infra.clone(),
        store.clone(),
    )
    .await
    .expect("app builds");
    let port = app.port();
    let stop = infra.stop.clone();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    TestApp {
        port,
        infra,
        store,
        stop,
    }
}

pub(crate) const ME: &str = "{ me { id username displayName avatarUrl bio createdAt } }";

impl TestApp {
    pub(crate) fn anonymous(&self) -> GraphqlClient {
        GraphqlClient::new(self.port)
    }

    /// A client holding an access token for a new user id.
    pub(crate) fn user(&self, username: &str) -> (String, GraphqlClient) {
        let id = uuid::Uuid::now_v7().to_string();
        let client = self.as_user(&id, Some(username));
        (id, client)
    }

    pub(crate) fn as_user(&self, id: &str, username: Option<&str>) -> GraphqlClient {
        let token = self
            .infra
            .auth
            .keys()
            .issue(id, &uuid::Uuid::new_v4().to_string(), username);
        self.anonymous().with_token(token)
    }

    /// Publishes `auth.account.registered.v1` as auth does; returns the envelope.
    pub(crate) async fn registered(
        &self,
        user_id: &str,
        username: &str,
        display_name: Option<&str>,
    ) -> Envelope<AccountRegistered> {
        let env = Envelope::new(AccountRegistered {
            user_id: user_id.to_owned(),
            username: username.to_owned(),
            display_name: display_name.map(str::to_owned),
            created_at: chrono::Utc::now(),
        });
        self.publish(&env).await;
        env
    }

    pub(crate) async fn publish<T: Event>(&self, env: &Envelope<T>) {
        self.infra
            .bus
            .publish(EVENTS_EXCHANGE, Message::from_envelope(env))
            .await
            .expect("published");
    }

    /// Waits until `user(id)` answers with a profile matching `check`.
    pub(crate) async fn wait_for_profile(&self, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let client = self.as_user("observer", Some("observer"));
        let mut last = Value::Null;
        for _ in 0..200 {
            last = client
                .ok(
                    "query($id: ID!) { user(id: $id) { id username displayName avatarUrl bio } }",
                    json!({"id": id}),
                )
                .await["user"]
                .clone();
            if !last.is_null() && check(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("profile {id} never matched; last: {last}");
    }

    /// Registers users through the event and waits until all exist.
    pub(crate) async fn register_many(&self, users: &[(String, String, Option<String>)]) {
        for (id, name, display) in users {
            self.registered(id, name, display.as_deref()).await;
        }
        for (id, _, _) in users {
            self.wait_for_profile(id, |_| true).await;
        }
    }

    /// Starts listening to `users.user.updated.v1` (before the action that causes it).
    pub(crate) async fn watch_updates(&self) -> Updates {
        watch_updates(&self.infra).await
    }
}

/// Starts listening to `users.user.updated.v1` on `infra`'s bus.
pub(crate) async fn watch_updates(infra: &Infra) -> Updates {
    {
        let queue = minute_testkit::unique("test.updates");
        infra
            .bus
            .declare_queue(
                QueueSpec::exclusive(&queue).bind(EVENTS_EXCHANGE, UserUpdated::routing_key()),
            )
            .await
            .expect("test queue");
        let sub = infra.bus.consume(&queue, 50).await.expect("consume");
        Updates { sub }
    }
}

pub(crate) struct Updates {
    sub: Subscription,
}

impl Updates {
    /// The next update of `user_id` (others are skipped), within 15 s (a bound on "never",
    /// not a speed claim: under the full suite's load a service start plus the relay's first
    /// drain on the MongoDB-wire stand-in once took over 5 s).
    pub(crate) async fn next_for(&mut self, user_id: &str) -> Option<Envelope<UserUpdated>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let d = tokio::time::timeout_at(deadline, self.sub.next())
                .await
                .ok()??;
            let env: Envelope<UserUpdated> =
                minute_events::decode(&d.body).expect("a users.user.updated.v1 envelope");
            d.ack().await.expect("ack");
            if env.data.user_id == user_id {
                return Some(env);
            }
        }
    }

    /// Asserts no update of `user_id` arrives within `wait`.
    pub(crate) async fn none_for(&mut self, user_id: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(d)) = tokio::time::timeout_at(deadline, self.sub.next()).await {
            let env: Envelope<UserUpdated> = minute_events::decode(&d.body).expect("envelope");
            d.ack().await.expect("ack");
            assert_ne!(
                env.data.user_id, user_id,
                "unexpected update: {:?}",
                env.data
            );
        }
    }
}

pub(crate) fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("an error with a code, got {body}"))
}
