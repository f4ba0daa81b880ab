//! The `User` entity.

use async_graphql::{ID, SimpleObject};
use chrono::{DateTime, Utc};

use crate::domain::Profile;

/// A user's public profile.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "User")]
pub struct User {
    /// Opaque id (auth's).
    pub id: ID,
    /// Lower-case username.
    pub username: String,
    /// Shown name.
    pub display_name: String,
    /// Avatar (https URL).
    pub avatar_url: Option<String>,
    /// Bio.
    pub bio: Option<String>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl From<Profile> for User {
    fn from(p: Profile) -> Self {
        Self {
            id: ID(p.id.as_str().to_owned()),
            username: p.username,
            display_name: p.display_name,
            avatar_url: p.avatar_url,
            bio: p.bio,
            created_at: p.created_at,
        }
    }
}
