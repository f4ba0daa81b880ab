//! The MongoDB adapter: one `profiles` collection in `minute_users`.
//!
//! Document: `_id` (user id), `username`, `username_lc`, `display_name`,
//! `display_name_lc`, `avatar_url`, `bio`, `created_at`, `provisional`,
//! `registered_event`, `version`, and the outbox: `outbox` (array of unsent events) with
//! `outbox_at` set while it is non-empty, so the relay finds pending work through an index.

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, DateTime as BsonDateTime, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};

use super::{OutboxEntry, Pending, StoreError, UserStore, merge_search};
use crate::domain::input::fold_case;
use crate::domain::{Profile, SearchQuery, UserId};

const PROFILES: &str = "profiles";

/// Profiles in MongoDB.
#[derive(Clone)]
pub struct MongoStore {
    profiles: Collection<Document>,
    db: Database,
}

fn index(keys: Document, name: &str, sparse: bool) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(
            IndexOptions::builder()
                .name(name.to_owned())
                .sparse(sparse.then_some(true))
                .build(),
        )
        .build()
}

impl MongoStore {
    /// Uses `db`, creating the indexes search and the relay rely on.
    pub async fn open(db: Database) -> Result<Self, StoreError> {
        minute_kit::mongo::ensure_indexes(
            &db,
            PROFILES,
            vec![
                index(doc! {"username_lc": 1, "_id": 1}, "username_lc", false),
                index(
                    doc! {"display_name_lc": 1, "_id": 1},
                    "display_name_lc",
                    false,
                ),
                index(doc! {"outbox_at": 1}, "outbox_at", true),
            ],
        )
        .await
        .map_err(StoreError::from_display)?;
        Ok(Self {
            profiles: db.collection(PROFILES),
            db,
        })
    }

    /// The database (readiness checks).
    pub fn database(&self) -> &Database {
        &self.db
    }

    async fn find(
        &self,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> Result<Vec<Profile>, StoreError> {
        let docs: Vec<Document> = self
            .profiles
            .find(filter)
            .sort(sort)
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .projection(doc! {"outbox": 0})
            .await
            .map_err(StoreError::from_display)?
            .try_collect()
            .await
            .map_err(StoreError::from_display)?;
        docs.iter().map(from_doc).collect()
    }

    async fn prefix_range(
        &self,
        field: &str,
        query: &SearchQuery,
        limit: usize,
    ) -> Result<Vec<Profile>, StoreError> {
        self.find(
            doc! {field: {"$gte": query.prefix(), "$lt": query.upper_bound()}},
            doc! {field: 1, "_id": 1},
            limit,
        )
        .await
    }
}

fn fields(p: &Profile) -> Document {
    doc! {
        "username": &p.username,
        "username_lc": fold_case(&p.username),
        "display_name": &p.display_name,
        "display_name_lc": fold_case(&p.display_name),
        "avatar_url": p.avatar_url.clone().map_or(Bson::Null, Bson::String),
        "bio": p.bio.clone().map_or(Bson::Null, Bson::String),
        "created_at": BsonDateTime::from_millis(p.created_at.timestamp_millis()),
        "provisional": p.provisional,
        "registered_event": p.registered_event.clone().map_or(Bson::Null, Bson::String),
        "version": p.version,
    }
}

fn entry_doc(e: &OutboxEntry) -> Document {
    doc! {"id": &e.id, "routing_key": &e.routing_key, "body": &e.body}
}

fn opt_str(d: &Document, key: &str) -> Option<String> {
    d.get_str(key).ok().map(str::to_owned)
}

fn from_doc(d: &Document) -> Result<Profile, StoreError> {
    let bad = |what: &str| StoreError(format!("profile document without {what}"));
    let id = d.get_str("_id").map_err(|_| bad("_id"))?;
    let created = d
        .get_datetime("created_at")
        .map_err(|_| bad("created_at"))?;
    Ok(Profile {
        id: UserId::parse(id).map_err(|_| bad("a valid _id"))?,
        username: opt_str(d, "username").ok_or_else(|| bad("username"))?,
        display_name: opt_str(d, "display_name").ok_or_else(|| bad("display_name"))?,
        avatar_url: opt_str(d, "avatar_url"),
        bio: opt_str(d, "bio"),
        created_at: chrono::DateTime::from_timestamp_millis(created.timestamp_millis())
            .ok_or_else(|| bad("a valid created_at"))?,
        provisional: d.get_bool("provisional").unwrap_or(false),
        registered_event: opt_str(d, "registered_event"),
        version: d
            .get_i64("version")
            .or_else(|_| d.get_i32("version").map(i64::from))
            .map_err(|_| bad("version"))?,
    })
}

#[async_trait]
impl UserStore for MongoStore {
    async fn get(&self, id: &UserId) -> Result<Option<Profile>, StoreError> {
        let d = self
            .profiles
            .find_one(doc! {"_id": id.as_str()})
            .projection(doc! {"outbox": 0})
            .await
            .map_err(StoreError::from_display)?;
        d.as_ref().map(from_doc).transpose()
    }

    async fn get_many(&self, ids: &[UserId]) -> Result<Vec<Profile>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = ids.iter().map(UserId::as_str).collect();
        self.find(doc! {"_id": {"$in": &ids}}, doc! {"_id": 1}, ids.len())
            .await
    }

    async fn search(&self, query: &SearchQuery, limit: usize) -> Result<Vec<Profile>, StoreError> {
        let by_username = self.prefix_range("username_lc", query, limit).await?;
        if by_username.len() >= limit {
            return Ok(merge_search(by_username, Vec::new(), limit));
        }
        let by_name = self.prefix_range("display_name_lc", query, limit).await?;
        Ok(merge_search(by_username, by_name, limit))
    }

    async fn insert(&self, profile: &Profile, event: &OutboxEntry) -> Result<bool, StoreError> {
        let mut d = fields(profile);
        d.insert("_id", profile.id.as_str());
        d.insert("outbox", vec![entry_doc(event)]);
        d.insert("outbox_at", BsonDateTime::now());
        match self.profiles.insert_one(d).await {
            Ok(_) => Ok(true),
            Err(e) if minute_kit::mongo::is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(StoreError::from_display(e)),
        }
    }

    async fn replace(&self, profile: &Profile, event: &OutboxEntry) -> Result<bool, StoreError> {
        let mut set = fields(profile);
        set.insert("outbox_at", BsonDateTime::now());
        let r = self
            .profiles
            .update_one(
                doc! {"_id": profile.id.as_str(), "version": profile.version - 1},
                doc! {"$set": set, "$push": {"outbox": entry_doc(event)}},
            )
            .await
            .map_err(StoreError::from_display)?;
        Ok(r.matched_count == 1)
    }

    async fn pending(&self, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let docs: Vec<Document> = self
            .profiles
            .find(doc! {"outbox_at": {"$lte": BsonDateTime::now()}})
            .sort(doc! {"outbox_at": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .projection(doc! {"outbox": 1})
            .await
            .map_err(StoreError::from_display)?
            .try_collect()
            .await
            .map_err(StoreError::from_display)?;
        let mut out = Vec::new();
        for d in docs {
            let user_id = d
                .get_str("_id")
                .ok()
                .and_then(|s| UserId::parse(s).ok())
                .ok_or_else(|| StoreError("outbox on a profile without a valid _id".into()))?;
            for e in d.get_array("outbox").map(|a| a.as_slice()).unwrap_or(&[]) {
                let Some(e) = e.as_document() else { continue };
                if let (Some(id), Some(routing_key), Some(body)) = (
                    opt_str(e, "id"),
                    opt_str(e, "routing_key"),
                    opt_str(e, "body"),
                ) {
                    out.push(Pending {
                        user_id: user_id.clone(),
                        entry: OutboxEntry {
                            id,
                            routing_key,
                            body,
                        },
                    });
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    async fn mark_sent(&self, user_id: &UserId, event_id: &str) -> Result<(), StoreError> {
        self.profiles
            .update_one(
                doc! {"_id": user_id.as_str()},
                doc! {"$pull": {"outbox": {"id": event_id}}},
            )
            .await
            .map_err(StoreError::from_display)?;
        // Only when nothing new was pushed in between: the filter re-checks emptiness.
        self.profiles
            .update_one(
                doc! {"_id": user_id.as_str(), "outbox": {"$size": 0}},
                doc! {"$unset": {"outbox_at": ""}},
            )
            .await
            .map_err(StoreError::from_display)?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .run_command(doc! {"ping": 1})
            .await
            .map(|_| ())
            .map_err(StoreError::from_display)
    }
}
