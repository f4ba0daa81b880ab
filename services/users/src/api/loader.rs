//! Batches `User` lookups: every entity representation in one request (e.g. 50 message
//! senders) becomes ONE `get_many` on the store.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;

use crate::domain::{Profile, UserId};
use crate::store::UserStore;

/// The `User` loader; errors are shared by every key of a failed batch.
pub struct UserLoader {
    store: Arc<dyn UserStore>,
}

impl UserLoader {
    /// Over `store`.
    pub fn new(store: Arc<dyn UserStore>) -> Self {
        Self { store }
    }
}

impl Loader<UserId> for UserLoader {
    type Value = Profile;
    type Error = Arc<crate::store::StoreError>;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, Profile>, Self::Error> {
        let found = self.store.get_many(keys).await.map_err(Arc::new)?;
        Ok(found.into_iter().map(|p| (p.id.clone(), p)).collect())
    }
}
