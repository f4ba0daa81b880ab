//! The conversations service's internal API, asked only when the membership replica has
//! never heard of a connecting user (read-your-writes, design.md §3).

use std::time::Duration;

use serde::Deserialize;

/// `GET {CONVERSATIONS_URL}/internal/users/{userId}/conversations`.
#[derive(Clone)]
pub(crate) struct ConversationsClient {
    http: reqwest::Client,
    base: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    conversation_ids: Vec<String>,
}

impl ConversationsClient {
    pub(crate) fn new(base: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base,
        }
    }

    /// Every conversation of `user` (none when no URL is configured).
    pub(crate) async fn conversations_of(&self, user: &str) -> Result<Vec<String>, String> {
        let Some(base) = &self.base else {
            return Ok(Vec::new());
        };
        let url = format!("{base}/internal/users/{user}/conversations");
        let resp = self
            .http
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("conversations answered {}", resp.status()));
        }
        resp.json::<Answer>()
            .await
            .map(|a| a.conversation_ids)
            .map_err(|e| e.to_string())
    }
}
