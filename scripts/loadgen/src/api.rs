//! GraphQL over HTTP as a client of api.md sees it: `POST /graphql` with a bearer token.

use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

/// Password of every bench account (8..=128 chars).
pub(crate) const PASSWORD: &str = "bench-password-0123";

/// A GraphQL endpoint.
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    url: String,
}

/// A registered account and its access token.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) username: String,
    pub(crate) token: String,
}

impl Api {
    /// `url` is the full endpoint, e.g. `http://127.0.0.1:8080/graphql`.
    pub(crate) fn new(url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .expect("an HTTP client");
        Self {
            http,
            url: url.into(),
        }
    }

    /// Runs `query` and returns `data`; a GraphQL error (or no data) is an error naming
    /// its code and message.
    pub(crate) async fn gql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .post(&self.url)
            .json(&json!({"query": query, "variables": variables}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let response = req
            .send()
            .await
            .with_context(|| format!("POST {}", self.url))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("POST {}: HTTP {status}, body is not JSON", self.url))?;
        if let Some(errors) = body.get("errors").and_then(Value::as_array)
            && let Some(first) = errors.first()
        {
            bail!(
                "GraphQL error {}: {} (HTTP {status})",
                first["extensions"]["code"].as_str().unwrap_or("?"),
                first["message"].as_str().unwrap_or("?")
            );
        }
        match body.get("data") {
            Some(d) if !d.is_null() => Ok(d.clone()),
            _ => bail!("POST {}: HTTP {status} without data: {body}", self.url),
        }
    }

    pub(crate) async fn register(&self, username: &str) -> anyhow::Result<User> {
        let data = self
            .gql(
                None,
                "mutation($u: String!, $p: String!) { register(input: {username: $u, password: $p}) { accessToken user { id } } }",
                json!({"u": username, "p": PASSWORD}),
            )
            .await
            .with_context(|| format!("register {username}"))?;
        Ok(User {
            id: str_at(&data, "/register/user/id")?,
            username: username.to_owned(),
            token: str_at(&data, "/register/accessToken")?,
        })
    }

    /// Logs in and returns the access token.
    pub(crate) async fn login(&self, username: &str) -> anyhow::Result<String> {
        let data = self
            .gql(
                None,
                "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { accessToken } }",
                json!({"u": username, "p": PASSWORD}),
            )
            .await?;
        str_at(&data, "/login/accessToken")
    }

    /// Registers `n` accounts named `<prefix><i>`, `concurrency` at a time (each costs the
    /// server one argon2id hash).
    pub(crate) async fn register_many(
        &self,
        prefix: &str,
        n: usize,
        concurrency: usize,
    ) -> anyhow::Result<Vec<User>> {
        futures_util::stream::iter(0..n)
            .map(|i| {
                let api = self.clone();
                let name = format!("{prefix}{i}");
                async move { api.register(&name).await }
            })
            .buffered(concurrency.max(1))
            .try_collect()
            .await
    }

    pub(crate) async fn create_direct(&self, token: &str, user_id: &str) -> anyhow::Result<String> {
        let data = self
            .gql(
                Some(token),
                "mutation($u: ID!) { createDirectConversation(userId: $u) { id } }",
                json!({"u": user_id}),
            )
            .await?;
        str_at(&data, "/createDirectConversation/id")
    }

    pub(crate) async fn create_group(
        &self,
        token: &str,
        title: &str,
        member_ids: &[String],
    ) -> anyhow::Result<String> {
        let data = self
            .gql(
                Some(token),
                "mutation($t: String!, $m: [ID!]!) { createGroup(title: $t, memberIds: $m) { id memberCount } }",
                json!({"t": title, "m": member_ids}),
            )
            .await?;
        let count = data["createGroup"]["memberCount"].as_u64().unwrap_or(0);
        if count != member_ids.len() as u64 + 1 {
            bail!(
                "createGroup: memberCount {count}, expected {}",
                member_ids.len() + 1
            );
        }
        str_at(&data, "/createGroup/id")
    }

    /// `sendMessage`; returns the message's seq.
    pub(crate) async fn send_message(
        &self,
        token: &str,
        conversation_id: &str,
        client_message_id: &str,
        body: &str,
    ) -> anyhow::Result<i64> {
        let data = self
            .gql(
                Some(token),
                "mutation($i: SendMessageInput!) { sendMessage(input: $i) { seq } }",
                json!({"i": {"conversationId": conversation_id, "clientMessageId": client_message_id, "body": body}}),
            )
            .await?;
        data["sendMessage"]["seq"]
            .as_i64()
            .context("sendMessage without seq")
    }
}

/// The string at a JSON pointer.
pub(crate) fn str_at(v: &Value, pointer: &str) -> anyhow::Result<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no string at {pointer} in {v}"))
}

/// A short random tag so accounts of one run never collide with an earlier run's
/// (usernames: 3..=32 of `[a-z0-9_.]`).
pub(crate) fn run_tag() -> String {
    use rand::Rng;
    let n: u32 = rand::rng().random();
    format!("{n:08x}")
}
