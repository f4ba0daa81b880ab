//! Starting roles: the shared infrastructure from the environment, each service's
//! settings and `App`, and the shutdown token that stops them.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use anyhow::Context;
use minute_kit::config::{CommonSettings, Env, JwtSettings};
use minute_kit::infra::{Infra, InfraOptions};
use minute_kit::shutdown::{self, CancellationToken, DRAIN_DEADLINE};

use crate::Role;

type RoleFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Runs `role` until SIGTERM / Ctrl-C, then drains within [`DRAIN_DEADLINE`].
pub(crate) async fn run(role: Role, env: Env) -> anyhow::Result<()> {
    let common = CommonSettings::from_env(&env, 8080).context("configuration")?;
    let telemetry = minute_kit::telemetry::init(&common, service_name(role));
    let stop = shutdown::on_signal();
    let work = start(role, env, common, stop.clone());
    tokio::pin!(work);
    let result = tokio::select! {
        r = &mut work => r,
        _ = stop.cancelled() => {
            match tokio::time::timeout(DRAIN_DEADLINE, work).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!("drain deadline passed; exiting");
                    Ok(())
                }
            }
        }
    };
    telemetry.shutdown().await;
    result
}

/// The `service.name` of this process's traces: the role (`minute` for all roles in one).
fn service_name(role: Role) -> &'static str {
    match role {
        Role::All | Role::Healthcheck => "minute",
        Role::Auth => "auth",
        Role::Users => "users",
        Role::Conversations => "conversations",
        Role::Messaging => "messaging",
        Role::Realtime => "realtime",
        Role::Gateway => "gateway",
    }
}

async fn start(
    role: Role,
    env: Env,
    common: CommonSettings,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(?role, "starting");
    let dev_secret = match role {
        Role::All => Some(dev_jwt_secret(&data_dir(&env), &env)?),
        _ => None,
    };
    let jwt = JwtSettings::from_env(&env, dev_secret).context("configuration")?;
    let infra = Infra::connect(InfraOptions::from_settings(&common), jwt, stop.clone()).await?;
    match role {
        Role::Auth => auth(env, infra).await,
        Role::Users => users(env, infra).await,
        Role::Conversations => conversations(env, infra).await,
        Role::Messaging => messaging(env, infra).await,
        Role::Realtime => realtime(env, infra).await,
        Role::Gateway => gateway(env, infra).await,
        Role::All => all(env, infra).await,
        Role::Healthcheck => Ok(()),
    }
}

macro_rules! service_role {
    ($fn:ident, $krate:ident) => {
        fn $fn(env: Env, infra: Infra) -> RoleFuture {
            Box::pin(async move {
                let settings = $krate::Settings::from_env(&env)
                    .context(concat!("configuration of ", stringify!($fn)))?;
                let stop = infra.stop.clone();
                let app = $krate::App::build(settings, infra).await?;
                tracing::info!(port = app.port(), concat!(stringify!($fn), " listening"));
                app.run_until_stopped(stop).await
            })
        }
    };
}

service_role!(auth, minute_auth);
service_role!(users, minute_users);
service_role!(conversations, minute_conversations);
service_role!(messaging, minute_messaging);
service_role!(realtime, minute_realtime);

service_role!(gateway, minute_gateway);

/// The services `minute all` runs on loopback ports, with the variable that names each.
const SERVICES: [(&str, &str); 5] = [
    ("auth", "AUTH_URL"),
    ("users", "USERS_URL"),
    ("conversations", "CONVERSATIONS_URL"),
    ("messaging", "MESSAGING_URL"),
    ("realtime", "REALTIME_URL"),
];

/// Every service on an internal loopback port, sharing one infrastructure; the public
/// port serves the federated `/graphql` (the gateway's edge), `/ws` (realtime, in-process)
/// and the health endpoints.
async fn all(env: Env, infra: Infra) -> anyhow::Result<()> {
    let common = CommonSettings::from_env(&env, 8080)?;
    let mut internal = env.clone();
    internal.set("HOST", "127.0.0.1");
    let mut ports = Vec::new();
    for (name, var) in SERVICES {
        let port = free_loopback_port()?;
        // Realtime has no HTTP subgraph (its operations run over /ws): not composed.
        if name != "realtime" {
            internal.set(var, format!("http://127.0.0.1:{port}"));
        }
        ports.push(port);
    }
    // GraphQL introspection and GraphiQL are on in all-in-one dev mode unless set.
    if env.get("GRAPHQL_INTROSPECTION").is_none() {
        internal.set("GRAPHQL_INTROSPECTION", "true");
    }
    let mut handles = Vec::new();
    let mut realtime_router = None;
    for ((name, _), port) in SERVICES.iter().zip(&ports) {
        let mut e = internal.clone();
        e.set("PORT", port.to_string());
        match *name {
            "auth" => handles.push(tokio::spawn(auth(e, infra.clone()))),
            "users" => handles.push(tokio::spawn(users(e, infra.clone()))),
            "conversations" => handles.push(tokio::spawn(conversations(e, infra.clone()))),
            "messaging" => handles.push(tokio::spawn(messaging(e, infra.clone()))),
            _ => {
                let settings =
                    minute_realtime::Settings::from_env(&e).context("configuration of realtime")?;
                let app = minute_realtime::App::build(settings, infra.clone()).await?;
                realtime_router = Some(app.into_router(infra.stop.clone()));
            }
        }
    }
    let mut edge_env = internal.clone();
    edge_env.set("HOST", common.host.clone());
    edge_env.set("PORT", common.port.to_string());
    let settings =
        minute_gateway::Settings::from_env(&edge_env).context("configuration of the gateway")?;
    let gateway = minute_gateway::App::build(settings, infra.clone()).await?;
    tracing::info!(
        port = gateway.port(),
        "minute (all roles) listening: /graphql, /ws"
    );
    let (listener, edge, composition) = gateway.into_parts();
    let mut public = edge.router();
    if let Some(ws) = realtime_router {
        // The realtime router keeps its own state; requests to /ws are handed to it as-is
        // (the WebSocket upgrade travels in the request's extensions).
        public = public.route(
            "/ws",
            axum::routing::any(move |request: axum::extract::Request| {
                let ws = ws.clone();
                async move {
                    use tower::ServiceExt;
                    match ws.oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }
                }
            }),
        );
    }
    let composing = tokio::spawn(composition.run());
    let served = minute_kit::http::serve(listener, public, infra.stop.clone()).await;
    infra.stop.cancel();
    edge.shutdown();
    let _ = composing.await;
    let mut first_error = served.err().map(anyhow::Error::from);
    for h in handles {
        let result = h
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("a role panicked: {e}")));
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `MINUTE_DATA_DIR`, default `./data`.
fn data_dir(env: &Env) -> PathBuf {
    PathBuf::from(env.get("MINUTE_DATA_DIR").unwrap_or("./data"))
}

/// In all-in-one mode without `JWT_SECRET`: a random secret generated once and kept in the
/// data dir, so tokens survive restarts. `JWT_SECRET` in the environment wins.
fn dev_jwt_secret(dir: &Path, env: &Env) -> anyhow::Result<Vec<u8>> {
    if env.get("JWT_SECRET").is_some() {
        return Ok(Vec::new());
    }
    let path = dir.join("jwt_secret");
    if let Ok(s) = std::fs::read_to_string(&path)
        && s.trim().len() >= minute_kit::config::MIN_SECRET_BYTES
    {
        tracing::warn!(path = %path.display(), "JWT_SECRET is unset; using the generated dev secret");
        return Ok(s.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("MINUTE_DATA_DIR {}", dir.display()))?;
    let secret: String = rand::Rng::sample_iter(rand::rng(), &rand::distr::Alphanumeric)
        .take(48)
        .map(char::from)
        .collect();
    write_private(&path, &secret)?;
    tracing::warn!(path = %path.display(), "JWT_SECRET is unset; generated a dev secret and kept it in the data dir");
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}
