//! Where a service keeps its data: MongoDB when `DATABASE_URL` (or `<SERVICE>_DATABASE_URL`)
//! is set, otherwise an embedded SQLite file under `MINUTE_DATA_DIR` (design.md §8).

use std::path::PathBuf;

use crate::config::{ConfigError, Env};
use crate::mongo::MongoSettings;

/// A service's store choice.
#[derive(Debug, Clone)]
pub enum Storage {
    /// MongoDB, one database per service.
    Mongo(MongoSettings),
    /// The SQLite file `$MINUTE_DATA_DIR/<service>.sqlite3` (default `./data`).
    Embedded(PathBuf),
}

impl Storage {
    /// Reads the choice for `service` from the environment.
    pub fn from_env(env: &Env, service: &str) -> Result<Self, ConfigError> {
        Ok(match MongoSettings::from_env(env, service)? {
            Some(m) => Self::Mongo(m),
            None => Self::Embedded(
                PathBuf::from(env.get("MINUTE_DATA_DIR").unwrap_or("./data"))
                    .join(format!("{service}.sqlite3")),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_unless_a_database_url_is_set() {
        let s = Storage::from_env(&Env::from_pairs([("MINUTE_DATA_DIR", "/tmp/d")]), "users")
            .expect("valid");
        assert!(
            matches!(s, Storage::Embedded(p) if p == std::path::Path::new("/tmp/d/users.sqlite3"))
        );
        let env = Env::from_pairs([("DATABASE_URL", "mongodb://db:27017")]);
        let s = Storage::from_env(&env, "users").expect("valid");
        assert!(matches!(s, Storage::Mongo(m) if m.database == "minute_users"));
        let bad = Env::from_pairs([("DATABASE_URL", "postgres://x")]);
        assert_eq!(
            Storage::from_env(&bad, "users").unwrap_err().var,
            "DATABASE_URL"
        );
    }
}
