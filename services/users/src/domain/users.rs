//! The operations on profiles, shared by the GraphQL API, the internal endpoint and the
//! event consumer. Writes are read-modify-write with a version check; a lost race re-reads
//! and decides again, so concurrent edits and redelivered events never clobber each other.

use std::sync::Arc;

use chrono::Utc;
use minute_kit::ApiError;
use tokio::sync::Notify;

use super::input::{InvalidInput, ProfileChanges, SearchLimit, SearchQuery, UserId};
use super::profile::{Profile, Registration, RegistrationEffect};
use crate::events::user_updated;
use crate::store::{StoreError, UserStore};

/// Attempts of a versioned write before giving up under contention.
const WRITE_ATTEMPTS: usize = 8;

/// What an operation can fail with.
#[derive(Debug)]
pub enum UsersError {
    /// Invalid input (`BAD_USER_INPUT`).
    Invalid(InvalidInput),
    /// The caller has no profile and the token carries no username to create one.
    NoProfile,
    /// Too many concurrent writers to one profile.
    Contended,
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for UsersError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<InvalidInput> for UsersError {
    fn from(e: InvalidInput) -> Self {
        Self::Invalid(e)
    }
}

impl From<UsersError> for ApiError {
    fn from(e: UsersError) -> Self {
        match e {
            UsersError::Invalid(i) => ApiError::bad_input(i.0),
            UsersError::NoProfile => ApiError::not_found("no profile for this user yet"),
            UsersError::Contended => ApiError::conflict("the profile is being changed; retry"),
            UsersError::Store(s) => ApiError::internal(s),
        }
    }
}

/// The profile operations.
pub struct Users {
    store: Arc<dyn UserStore>,
    relay: Arc<Notify>,
}

impl Users {
    /// Over `store`; `relay` is woken after every write that stored an event.
    pub fn new(store: Arc<dyn UserStore>, relay: Arc<Notify>) -> Self {
        Self { store, relay }
    }

    /// The store (the entity loader reads it directly).
    pub fn store(&self) -> &Arc<dyn UserStore> {
        &self.store
    }

    /// One profile.
    pub async fn get(&self, id: &UserId) -> Result<Option<Profile>, UsersError> {
        Ok(self.store.get(id).await?)
    }

    /// The caller's profile; created from the token's claims (provisional) when the
    /// registration event has not arrived yet, so `me` right after `register` works.
    pub async fn me(
        &self,
        id: &UserId,
        username: Option<&str>,
        traceparent: Option<String>,
    ) -> Result<Profile, UsersError> {
        if let Some(p) = self.store.get(id).await? {
            return Ok(p);
        }
        let username = username
            .filter(|u| !u.trim().is_empty())
            .ok_or(UsersError::NoProfile)?;
        let provisional = Profile::provisional(id.clone(), username, Utc::now());
        if self
            .store
            .insert(&provisional, &user_updated(&provisional, traceparent))
            .await?
        {
            self.relay.notify_one();
            return Ok(provisional);
        }
        // Lost the race to the registration event (or another request): read the winner.
        self.store.get(id).await?.ok_or(UsersError::NoProfile)
    }

    /// Prefix search on username and display name.
    pub async fn search(
        &self,
        query: &SearchQuery,
        limit: SearchLimit,
    ) -> Result<Vec<Profile>, UsersError> {
        Ok(self.store.search(query, limit.get()).await?)
    }

    /// Applies `changes` to the caller's profile (creating it as `me` does first).
    pub async fn update_profile(
        &self,
        id: &UserId,
        username: Option<&str>,
        changes: &ProfileChanges,
        traceparent: Option<String>,
    ) -> Result<Profile, UsersError> {
        for _ in 0..WRITE_ATTEMPTS {
            let current = self.me(id, username, traceparent.clone()).await?;
            let Some(next) = current.edited(changes) else {
                return Ok(current);
            };
            if self
                .store
                .replace(&next, &user_updated(&next, traceparent.clone()))
                .await?
            {
                self.relay.notify_one();
                return Ok(next);
            }
        }
        Err(UsersError::Contended)
    }

    /// Applies `auth.account.registered.v1`: creates the profile, or fills a provisional
    /// one; a redelivery, or a profile the user already edited, changes nothing.
    pub async fn on_registered(&self, registration: &Registration) -> Result<(), UsersError> {
        // Called inside the consumer span of the registration: the event continues its trace.
        let traceparent = minute_kit::trace::traceparent_of(&tracing::Span::current(), None);
        for _ in 0..WRITE_ATTEMPTS {
            let current = self.store.get(&registration.user_id).await?;
            let written = match Profile::on_registration(current.as_ref(), registration) {
                RegistrationEffect::Nothing => return Ok(()),
                RegistrationEffect::Create(p) => {
                    let event = user_updated(&p, traceparent.clone());
                    self.store.insert(&p, &event).await?
                }
                RegistrationEffect::Fill(p) => {
                    let event = user_updated(&p, traceparent.clone());
                    self.store.replace(&p, &event).await?
                }
            };
            if written {
                self.relay.notify_one();
                return Ok(());
            }
        }
        Err(UsersError::Contended)
    }
}
