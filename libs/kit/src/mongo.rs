//! MongoDB connections: one pooled client per role, one database per service
//! (`minute_<service>`, or `<SERVICE>_DATABASE_URL`), indexes created idempotently at start.

use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{Document, doc};
use mongodb::options::ClientOptions;
use mongodb::{Client, Database, IndexModel};

use crate::config::{ConfigError, Env};
use crate::http::ReadinessCheck;

/// How to reach one service's database.
#[derive(Debug, Clone)]
pub struct MongoSettings {
    /// Connection string.
    pub url: String,
    /// Database name.
    pub database: String,
    /// Pool size (`MONGODB_MAX_POOL_SIZE`, default 20).
    pub max_pool_size: u32,
    /// Connect and server-selection timeout (`MONGODB_TIMEOUT_SECS`, default 5).
    pub timeout: Duration,
}

impl MongoSettings {
    /// Settings for `service`: `<SERVICE>_DATABASE_URL` or `DATABASE_URL`; `None` when
    /// neither is set (embedded storage in `minute all`).
    pub fn from_env(env: &Env, service: &str) -> Result<Option<Self>, ConfigError> {
        let own = format!("{}_DATABASE_URL", service.to_ascii_uppercase());
        let url = match env.url(&own, &["mongodb", "mongodb+srv"])? {
            Some(u) => u,
            None => match env.url("DATABASE_URL", &["mongodb", "mongodb+srv"])? {
                Some(u) => u,
                None => return Ok(None),
            },
        };
        let database = env
            .get(&format!("{}_DATABASE_NAME", service.to_ascii_uppercase()))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("minute_{service}"));
        Ok(Some(Self {
            url,
            database,
            max_pool_size: env.or("MONGODB_MAX_POOL_SIZE", 20, "a positive pool size")?,
            timeout: env.seconds("MONGODB_TIMEOUT_SECS", 5)?,
        }))
    }
}

/// Connects (lazily: the driver connects on first use) and returns the database.
pub async fn connect(settings: &MongoSettings) -> Result<Database, mongodb::error::Error> {
    let mut options = ClientOptions::parse(&settings.url).await?;
    options.app_name = Some("minute".into());
    options.max_pool_size = Some(settings.max_pool_size.max(1));
    options.connect_timeout = Some(settings.timeout);
    options.server_selection_timeout = Some(settings.timeout);
    let client = Client::with_options(options)?;
    Ok(client.database(&settings.database))
}

/// Creates indexes; existing identical ones are left as they are.
pub async fn ensure_indexes(
    db: &Database,
    collection: &str,
    indexes: Vec<IndexModel>,
) -> Result<(), mongodb::error::Error> {
    if indexes.is_empty() {
        return Ok(());
    }
    db.collection::<Document>(collection)
        .create_indexes(indexes)
        .await
        .map(|_| ())
}

/// True for a unique-index violation (E11000).
pub fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .is_some_and(|errs| errs.iter().any(|w| w.code == 11000)),
        _ => e.to_string().contains("E11000"),
    }
}

/// Atomically increments `field` of document `id` in `collection` and returns the new
/// value (`findOneAndUpdate` + `$inc`). The document is created first with a plain insert
/// (a duplicate key means another caller created it) rather than by an upserting update:
/// racing upserts may each report no document on some servers while still incrementing,
/// which would leave gaps. So every caller gets a distinct value, and values have no gaps.
pub async fn increment(
    collection: &mongodb::Collection<Document>,
    id: &str,
    field: &str,
    by: i64,
) -> Result<i64, mongodb::error::Error> {
    for _ in 0..3 {
        let updated = collection
            .find_one_and_update(doc! {"_id": id}, doc! {"$inc": {field: by}})
            .return_document(mongodb::options::ReturnDocument::After)
            .await?;
        if let Some(d) = updated {
            return match (d.get_i64(field), d.get_i32(field)) {
                (Ok(v), _) => Ok(v),
                (_, Ok(v)) => Ok(i64::from(v)),
                _ => Err(mongodb::error::Error::custom(format!(
                    "{field} is not an integer"
                ))),
            };
        }
        match collection.insert_one(doc! {"_id": id, field: 0_i64}).await {
            Ok(_) => {}
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Err(mongodb::error::Error::custom(format!(
        "counter {id} could not be created"
    )))
}

/// `/readyz` check: `ping`.
pub struct MongoCheck(pub Database);

#[async_trait]
impl ReadinessCheck for MongoCheck {
    fn name(&self) -> &str {
        "database"
    }
    async fn check(&self) -> Result<(), String> {
        self.0
            .run_command(doc! {"ping": 1})
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
