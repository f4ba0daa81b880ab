//! Password hashing: argon2id with m = 19 MiB, t = 2, p = 1 (OWASP's first choice), a
//! random salt, PHC strings. Each hash burns ~20-50 ms of one core, so hashing runs on the
//! blocking pool behind a semaphore sized to the cores: a login storm queues here instead
//! of occupying the async workers that serve every other request. The queue itself is
//! bounded too; past it callers get `RATE_LIMITED` at once rather than waiting minutes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use super::AuthError;
use crate::config::HashingSettings;

/// Memory cost in KiB (19 MiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Iterations.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;

/// The bounded hashing pool.
pub struct Hasher {
    argon: Argon2<'static>,
    permits: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
    max_queue: usize,
    /// Verified against when the user does not exist, so both cases cost one hash.
    dummy: String,
}

impl Hasher {
    /// Builds the pool and computes the dummy hash (one hash; call at start-up).
    pub fn new(settings: HashingSettings) -> Result<Self, AuthError> {
        let params =
            Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).map_err(AuthError::internal)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut random = [0_u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut random);
        let dummy = hash_with(&argon, &hex::encode(random))?;
        Ok(Self {
            argon,
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_queue: settings.max_queue.max(1),
            dummy,
        })
    }

    /// A PHC string for `password`.
    pub async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let password = password.to_owned();
        self.run(move |argon| hash_with(argon, &password)).await?
    }

    /// True when `password` matches `phc`. With `phc = None` (no such user) it verifies
    /// against the dummy hash and returns false, taking the same time.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, AuthError> {
        let known = phc.is_some();
        let phc = phc.unwrap_or(&self.dummy).to_owned();
        let password = password.to_owned();
        let matches = self
            .run(move |argon| {
                PasswordHash::new(&phc)
                    .map(|parsed| argon.verify_password(password.as_bytes(), &parsed).is_ok())
                    .map_err(AuthError::internal)
            })
            .await??;
        Ok(known && matches)
    }

    async fn run<T, F>(&self, work: F) -> Result<T, AuthError>
    where
        T: Send + 'static,
        F: FnOnce(&Argon2<'static>) -> T + Send + 'static,
    {
        let slot = QueueSlot::take(&self.in_flight);
        if slot.position >= self.max_queue {
            return Err(AuthError::RateLimited {
                retry_after_secs: 1,
            });
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(AuthError::internal)?;
        let argon = self.argon.clone();
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&argon)
        })
        .await
        .map_err(AuthError::internal)?;
        drop(slot);
        Ok(out)
    }
}

fn hash_with(argon: &Argon2<'_>, password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(AuthError::internal)
}

/// Counts a caller waiting for or holding a permit, until dropped (also on cancellation).
struct QueueSlot {
    counter: Arc<AtomicUsize>,
    position: usize,
}

impl QueueSlot {
    fn take(counter: &Arc<AtomicUsize>) -> Self {
        let position = counter.fetch_add(1, Ordering::SeqCst);
        Self {
            counter: counter.clone(),
            position,
        }
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> Hasher {
        Hasher::new(HashingSettings {
            concurrency: 2,
            max_queue: 8,
        })
        .expect("hasher")
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_owasp_parameters() {
        let h = hasher();
        let phc = h.hash("correct horse").await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify("correct horse", Some(&phc)).await.expect("verify"));
        assert!(!h.verify("wrong horse", Some(&phc)).await.expect("verify"));
        assert!(!h.verify("correct horse", None).await.expect("dummy"));
        assert_ne!(
            h.hash("correct horse").await.expect("hash"),
            phc,
            "random salt"
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let h = Arc::new(
            Hasher::new(HashingSettings {
                concurrency: 1,
                max_queue: 1,
            })
            .expect("hasher"),
        );
        let (a, b) = tokio::join!(h.hash("password-1"), async {
            tokio::task::yield_now().await;
            h.hash("password-2").await
        });
        let limited = [&a, &b]
            .iter()
            .filter(|r| matches!(r, Err(AuthError::RateLimited { .. })))
            .count();
        assert_eq!(limited, 1, "one runs, the other is refused");
    }
}
