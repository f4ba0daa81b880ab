//! The membership replica in MongoDB: collection `memberships`, one document per
//! (conversation, user), `_id = "<conversation>/<user>"`.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::{Collection, Database, IndexModel};

use crate::domain::membership::{MemberState, MembershipChange};
use crate::store::{MAX_CONVERSATIONS_PER_USER, MembershipStore, StoreError};

/// MongoDB adapter.
#[derive(Clone)]
pub struct MongoMemberships {
    db: Database,
    col: Collection<Document>,
}

impl MongoMemberships {
    /// Uses `db`, creating the indexes.
    pub async fn new(db: Database) -> Result<Self, StoreError> {
        minute_kit::mongo::ensure_indexes(
            &db,
            "memberships",
            vec![
                IndexModel::builder()
                    .keys(doc! {"user_id": 1, "member": 1})
                    .build(),
                IndexModel::builder()
                    .keys(doc! {"conversation_id": 1, "member": 1})
                    .build(),
            ],
        )
        .await
        .map_err(StoreError::from_display)?;
        let col = db.collection("memberships");
        Ok(Self { db, col })
    }

    /// Sets one member row unless it already holds this version or a newer one. Inserting
    /// first and updating on a duplicate key avoids racing upserts (see brief's known trap).
    async fn apply_one(
        &self,
        change: &MembershipChange,
        m: &MemberState,
    ) -> Result<(), StoreError> {
        let id = format!("{}/{}", change.conversation_id, m.user_id);
        let version = i64::try_from(change.version).unwrap_or(i64::MAX);
        let mut set = doc! {"version": version, "member": m.member};
        if let Some(d) = change.direct {
            set.insert("direct", d);
        }
        for _ in 0..2 {
            let updated = self
                .col
                .update_one(
                    doc! {"_id": &id, "version": {"$lt": version}},
                    doc! {"$set": set.clone()},
                )
                .await
                .map_err(StoreError::from_display)?;
            if updated.matched_count > 0 {
                return Ok(());
            }
            let mut fresh = doc! {
                "_id": &id,
                "conversation_id": &change.conversation_id,
                "user_id": &m.user_id,
            };
            fresh.extend(set.clone());
            if !fresh.contains_key("direct") {
                fresh.insert("direct", Bson::Null);
            }
            match self.col.insert_one(fresh).await {
                Ok(_) => return Ok(()),
                // It exists: either already at this version or newer (done), or older and
                // inserted concurrently (the second update round handles it).
                Err(e) if minute_kit::mongo::is_duplicate_key(&e) => continue,
                Err(e) => return Err(StoreError::from_display(e)),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl MembershipStore for MongoMemberships {
    async fn apply(&self, change: &MembershipChange) -> Result<(), StoreError> {
        for m in &change.members {
            self.apply_one(change, m).await?;
        }
        if let Some(d) = change.direct {
            self.col
                .update_many(
                    doc! {"conversation_id": &change.conversation_id, "direct": Bson::Null},
                    doc! {"$set": {"direct": d}},
                )
                .await
                .map_err(StoreError::from_display)?;
        }
        Ok(())
    }

    async fn conversations_of(&self, user_id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let docs: Vec<Document> = self
            .col
            .find(doc! {"user_id": user_id})
            .limit(MAX_CONVERSATIONS_PER_USER)
            .await
            .map_err(StoreError::from_display)?
            .try_collect()
            .await
            .map_err(StoreError::from_display)?;
        if docs.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            docs.iter()
                .filter(|d| d.get_bool("member").unwrap_or(false))
                .filter_map(|d| d.get_str("conversation_id").ok().map(str::to_owned))
                .collect(),
        ))
    }

    async fn direct_peers(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let mine: Vec<Document> = self
            .col
            .find(doc! {"user_id": user_id, "member": true, "direct": true})
            .limit(MAX_CONVERSATIONS_PER_USER)
            .await
            .map_err(StoreError::from_display)?
            .try_collect()
            .await
            .map_err(StoreError::from_display)?;
        let convs: Vec<&str> = mine
            .iter()
            .filter_map(|d| d.get_str("conversation_id").ok())
            .collect();
        if convs.is_empty() {
            return Ok(Vec::new());
        }
        let peers: Vec<Document> = self
            .col
            .find(doc! {"conversation_id": {"$in": convs}, "member": true, "user_id": {"$ne": user_id}})
            .limit(MAX_CONVERSATIONS_PER_USER)
            .await
            .map_err(StoreError::from_display)?
            .try_collect()
            .await
            .map_err(StoreError::from_display)?;
        let mut out: Vec<String> = peers
            .iter()
            .filter_map(|d| d.get_str("user_id").ok().map(str::to_owned))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .run_command(doc! {"ping": 1})
            .await
            .map(|_| ())
            .map_err(StoreError::from_display)
    }
}
