//! Spawning the service and talking to it as a client would.

use std::sync::Arc;
use std::time::Duration;

use minute_auth::store::AuthStore;
use minute_auth::store::mongo::MongoStore;
use minute_auth::{App, Settings};
use minute_bus::{EVENTS_EXCHANGE, QueueSpec, Subscription};
use minute_events::RawEnvelope;
use minute_kit::config::{Env, JwtSettings};
use minute_kit::infra::{Infra, InfraOptions};
use minute_testkit::GraphqlClient;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub(crate) const SECRET: &str = "auth-tests-secret-auth-tests-secret!!";
pub(crate) const PASSWORD: &str = "correct horse battery";

pub(crate) const REGISTER: &str = "mutation($u: String!, $p: String!, $d: String) {
  register(input: {username: $u, password: $p, displayName: $d}) {
    accessToken refreshToken expiresIn user { id } } }";
pub(crate) const LOGIN: &str = "mutation($u: String!, $p: String!) {
  login(input: {username: $u, password: $p, deviceName: \"test\"}) {
    accessToken refreshToken expiresIn user { id } } }";
pub(crate) const REFRESH: &str = "mutation($t: String!) {
  refresh(refreshToken: $t) { accessToken refreshToken expiresIn user { id } } }";
pub(crate) const LOGOUT: &str = "mutation { logout }";
pub(crate) const LOGOUT_ALL: &str = "mutation { logoutAll }";
pub(crate) const CHANGE_PASSWORD: &str = "mutation($c: String!, $n: String!) {
  changePassword(currentPassword: $c, newPassword: $n) }";

/// Tokens of one session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) access: String,
    pub(crate) refresh: String,
    pub(crate) user_id: String,
}

impl Session {
    fn from(payload: &Value) -> Self {
        Self {
            access: payload["accessToken"]
                .as_str()
                .expect("accessToken")
                .to_owned(),
            refresh: payload["refreshToken"]
                .as_str()
                .expect("refreshToken")
                .to_owned(),
            user_id: payload["user"]["id"].as_str().expect("user.id").to_owned(),
        }
    }
}

pub(crate) fn jwt() -> JwtSettings {
    JwtSettings::from_env(&Env::from_pairs([("JWT_SECRET", SECRET)]), None).expect("jwt settings")
}

/// A running auth service on its own database, bus namespace and Redis prefix.
pub(crate) struct TestApp {
    pub(crate) client: GraphqlClient,
    pub(crate) port: u16,
    pub(crate) infra: Infra,
    pub(crate) store: Arc<dyn AuthStore>,
    stop: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_with(&[]).await
}

pub(crate) async fn spawn_with(extra: &[(&str, &str)]) -> TestApp {
    spawn_on(&minute_testkit::unique_database("auth"), extra, true).await
}

/// Spawns on `database`; `redis: false` runs with the in-process throttle and revocations.
pub(crate) async fn spawn_on(database: &str, extra: &[(&str, &str)], redis: bool) -> TestApp {
    spawn_full(database, extra, redis, jwt()).await
}

/// Spawns with the given JWT settings.
pub(crate) async fn spawn_full(
    database: &str,
    extra: &[(&str, &str)],
    redis: bool,
    jwt: JwtSettings,
) -> TestApp {
    let uri = minute_testkit::mongodb_uri();
    let mut pairs: Vec<(String, String)> = vec![
        ("PORT".into(), "0".into()),
        ("HOST".into(), "127.0.0.1".into()),
        ("DATABASE_URL".into(), uri.clone()),
        ("AUTH_DATABASE_NAME".into(), database.into()),
        ("AUTH_OUTBOX_INTERVAL_MS".into(), "200".into()),
    ];
    pairs.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let settings = Settings::from_env(&Env::from_pairs(pairs)).expect("settings");
    let stop = CancellationToken::new();
    let infra = Infra::connect(
        InfraOptions {
            amqp_url: Some(minute_testkit::amqp_url()),
            redis_url: redis.then(minute_testkit::redis_url),
            bus_namespace: minute_testkit::unique_namespace(),
            redis_prefix: format!("{}:", minute_testkit::unique("t")),
            replica_id: minute_testkit::unique("auth"),
        },
        jwt,
        stop.clone(),
    )
    .await
    .expect("infra");
    let app = App::build(settings, infra.clone())
        .await
        .expect("app builds");
    let port = app.port();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    let db = mongodb::Client::with_uri_str(&uri)
        .await
        .expect("mongo client")
        .database(database);
    let store = Arc::new(MongoStore::new(db).await.expect("store"));
    TestApp {
        client: GraphqlClient::new(port),
        port,
        infra,
        store,
        stop,
    }
}

impl TestApp {
    pub(crate) fn as_user(&self, access_token: &str) -> GraphqlClient {
        self.client.with_token(access_token)
    }

    pub(crate) async fn register(&self, username: &str) -> Session {
        let data = self
            .client
            .ok(
                REGISTER,
                json!({"u": username, "p": PASSWORD, "d": "Display Name"}),
            )
            .await;
        Session::from(&data["register"])
    }

    pub(crate) async fn login(&self, username: &str, password: &str) -> Value {
        self.client
            .raw(LOGIN, json!({"u": username, "p": password}))
            .await
    }

    pub(crate) async fn login_ok(&self, username: &str, password: &str) -> Session {
        let body = self.login(username, password).await;
        assert!(body["errors"].is_null(), "login failed: {body}");
        Session::from(&body["data"]["login"])
    }

    /// Logs in with `X-Forwarded-For: ip`.
    pub(crate) async fn login_from(&self, ip: &str, username: &str, password: &str) -> Value {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/graphql", self.port))
            .header("x-forwarded-for", format!("{ip}, 10.0.0.1"))
            .json(&json!({"query": LOGIN, "variables": {"u": username, "p": password}}))
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("json")
    }

    pub(crate) async fn refresh(&self, refresh_token: &str) -> Value {
        self.client.raw(REFRESH, json!({"t": refresh_token})).await
    }

    pub(crate) async fn refresh_ok(&self, refresh_token: &str) -> Session {
        let body = self.refresh(refresh_token).await;
        assert!(body["errors"].is_null(), "refresh failed: {body}");
        Session::from(&body["data"]["refresh"])
    }

    /// `logout` with `token`: the error code, or `None` when it succeeded.
    pub(crate) async fn logout_code(&self, token: &str) -> Option<String> {
        let body = self.as_user(token).raw(LOGOUT, json!({})).await;
        code(&body)
    }

    /// An exclusive queue bound to every auth event; declare it before acting.
    pub(crate) async fn auth_events(&self) -> Subscription {
        let name = minute_testkit::unique("auth-test");
        self.infra
            .bus
            .declare_queue(QueueSpec::exclusive(&name).bind(EVENTS_EXCHANGE, "auth.#"))
            .await
            .expect("declare");
        self.infra.bus.consume(&name, 50).await.expect("consume")
    }
}

/// The first error's code, if any.
pub(crate) fn code(body: &Value) -> Option<String> {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .map(str::to_owned)
}

/// The next event of `event_type` (others are skipped), within 5 s.
pub(crate) async fn next_event(sub: &mut Subscription, event_type: &str) -> RawEnvelope {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let d = tokio::time::timeout_at(deadline, sub.next())
            .await
            .unwrap_or_else(|_| panic!("no {event_type} event within 5 s"))
            .expect("subscription open");
        let env = RawEnvelope::parse(&d.body).expect("envelope");
        d.ack().await.expect("ack");
        if env.event_type == event_type {
            return env;
        }
    }
}

/// All-in-one mode: embedded SQLite in a fresh data dir, in-process bus, throttle and
/// revocations.
pub(crate) async fn spawn_embedded() -> TestApp {
    let dir = std::env::temp_dir().join(minute_testkit::unique("auth-data"));
    let settings = Settings::from_env(&Env::from_pairs([
        ("PORT", "0"),
        ("HOST", "127.0.0.1"),
        ("MINUTE_DATA_DIR", dir.to_str().expect("utf-8 temp dir")),
        ("AUTH_OUTBOX_INTERVAL_MS", "200"),
    ]))
    .expect("settings");
    let stop = CancellationToken::new();
    let options = InfraOptions {
        bus_namespace: minute_testkit::unique_namespace(),
        replica_id: minute_testkit::unique("auth"),
        ..InfraOptions::default()
    };
    let infra = Infra::connect(options, jwt(), stop.clone())
        .await
        .expect("in-process infra");
    let app = App::build(settings, infra.clone())
        .await
        .expect("app builds");
    let port = app.port();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    let store = minute_auth::store::embedded::SqliteStore::open(&dir.join("auth.sqlite3"))
        .expect("second connection to the data file");
    TestApp {
        client: GraphqlClient::new(port),
        port,
        infra,
        store: Arc::new(store),
        stop,
    }
}
