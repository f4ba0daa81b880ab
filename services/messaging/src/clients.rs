//! The conversations service's internal API, asked when the membership replica cannot
//! confirm a member yet (design.md §3). Short timeout: it sits on the request path.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::domain::Role;
use crate::domain::membership::{MembershipOwner, OwnerAnswer};

/// `GET {CONVERSATIONS_URL}/internal/conversations/{id}/members/{userId}`.
pub struct ConversationsClient {
    http: reqwest::Client,
    base: String,
}

impl ConversationsClient {
    /// A client for `base` (no trailing slash).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.into(),
        }
    }
}

#[derive(Deserialize)]
struct MemberAnswer {
    member: bool,
    role: Option<String>,
    version: u64,
}

#[async_trait]
impl MembershipOwner for ConversationsClient {
    async fn ask(&self, conversation_id: &str, user: &str) -> Result<OwnerAnswer, String> {
        let url = format!(
            "{}/internal/conversations/{conversation_id}/members/{user}",
            self.base
        );
        let resp = self
            .http
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(OwnerAnswer::NoConversation);
        }
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        let a: MemberAnswer = resp.json().await.map_err(|e| e.to_string())?;
        Ok(match (a.member, a.role.as_deref().and_then(Role::parse)) {
            (true, Some(role)) => OwnerAnswer::Member(role, a.version),
            _ => OwnerAnswer::NotMember,
        })
    }
}
