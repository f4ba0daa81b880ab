//! Which users exist: the local replica (kept from `auth.account.registered.v1`), and for
//! ids it does not know yet, the users service's `GET /internal/users/{id}` (read-your-
//! writes: a user registered 5 ms ago is not refused). Confirmed users are cached in the
//! replica.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use crate::domain::{Error, KnownUser, UserId};
use crate::store::UserReplica;

/// Lookups of the users service in flight at once.
const CONCURRENCY: usize = 16;

/// Answers "does this user exist?".
#[derive(Clone)]
pub struct Directory {
    replica: Arc<dyn UserReplica>,
    users_url: Option<String>,
    http: reqwest::Client,
}

enum Answer {
    Exists(KnownUser),
    Unknown(UserId),
}

impl Directory {
    /// Over `replica`, falling back to the users service at `users_url`.
    pub fn new(replica: Arc<dyn UserReplica>, users_url: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        Self {
            replica,
            users_url,
            http,
        }
    }

    /// The ids among `ids` that do not exist.
    pub async fn unknown(&self, ids: &[UserId]) -> Result<Vec<UserId>, Error> {
        let known = self.replica.known(ids).await?;
        let missing: Vec<&UserId> = ids.iter().filter(|i| !known.contains(*i)).collect();
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let Some(base) = &self.users_url else {
            return Ok(missing.into_iter().cloned().collect());
        };
        let missing: Vec<UserId> = missing.into_iter().cloned().collect();
        let answers: Vec<Result<Answer, Error>> = futures_util::stream::iter(missing)
            .map(|id| {
                let (this, base) = (self.clone(), base.clone());
                async move { this.ask(&base, &id).await }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut confirmed = Vec::new();
        let mut unknown = Vec::new();
        for a in answers {
            match a? {
                Answer::Exists(u) => confirmed.push(u),
                Answer::Unknown(id) => unknown.push(id),
            }
        }
        self.replica.remember(&confirmed).await?;
        // Keep the caller's order so error messages are stable.
        let unknown: HashSet<UserId> = unknown.into_iter().collect();
        Ok(ids
            .iter()
            .filter(|i| unknown.contains(*i))
            .cloned()
            .collect())
    }

    async fn ask(&self, base: &str, id: &UserId) -> Result<Answer, Error> {
        let url = format!("{base}/internal/users/{id}");
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| Error::UsersUnavailable(e.to_string()))?;
        match resp.status().as_u16() {
            200 => {
                let body: serde_json::Value = resp.json().await.unwrap_or_default();
                Ok(Answer::Exists(KnownUser {
                    id: id.clone(),
                    username: body["username"].as_str().map(str::to_owned),
                }))
            }
            404 => Ok(Answer::Unknown(id.clone())),
            s => Err(Error::UsersUnavailable(format!("status {s}"))),
        }
    }
}
