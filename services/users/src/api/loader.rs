//! Batches `User` lookups: every reference in one request (e.g. 50 message senders)
//! becomes ONE `get_many` on the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::dataloader::Loader;

use crate::domain::{Profile, UserId};
use crate::store::{StoreError, UserStore};

/// The `User` loader for `user(id)`; errors are shared by every key of a failed batch.
pub struct UserLoader {
    store: Arc<dyn UserStore>,
}

impl UserLoader {
    /// Over `store`.
    pub fn new(store: Arc<dyn UserStore>) -> Self {
        Self { store }
    }

    async fn fetch(&self, keys: &[UserId]) -> Result<HashMap<UserId, Profile>, Arc<StoreError>> {
        let found = self.store.get_many(keys).await.map_err(Arc::new)?;
        Ok(found.into_iter().map(|p| (p.id.clone(), p)).collect())
    }
}

impl Loader<UserId> for UserLoader {
    type Value = Profile;
    type Error = Arc<StoreError>;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, Profile>, Self::Error> {
        self.fetch(keys).await
    }
}

/// Pauses before looking again for references not found yet (about 0.8 s in all).
pub(super) const REGISTRATION_GRACE: [Duration; 5] = [
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
];

/// The loader behind the federation entity resolver. Like [`UserLoader`], plus a short
/// grace for ids not found: `register { user { displayName } }` reaches us through the
/// gateway milliseconds after auth created the account, without a token (so no claims to
/// build a provisional profile from), usually before `auth.account.registered.v1` has
/// been consumed. Waiting briefly for the event keeps that read-your-writes promise; a
/// batch where every id exists still costs exactly one query.
pub struct EntityLoader(UserLoader);

impl EntityLoader {
    /// Over `store`.
    pub fn new(store: Arc<dyn UserStore>) -> Self {
        Self(UserLoader::new(store))
    }
}

impl Loader<UserId> for EntityLoader {
    type Value = Profile;
    type Error = Arc<StoreError>;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, Profile>, Self::Error> {
        let mut found = self.0.fetch(keys).await?;
        for pause in REGISTRATION_GRACE {
            let missing: Vec<UserId> = keys
                .iter()
                .filter(|k| !found.contains_key(*k))
                .cloned()
                .collect();
            if missing.is_empty() {
                break;
            }
            tokio::time::sleep(pause).await;
            found.extend(self.0.fetch(&missing).await?);
        }
        Ok(found)
    }
}
