//! The rules of authentication: what a valid username, password or refresh token is
//! ([`credentials`], [`tokens`]), how passwords are hashed without starving the runtime
//! ([`hasher`]), and the operations themselves ([`service::AuthService`]).

pub mod credentials;
pub mod hasher;
pub mod service;
pub mod tokens;

use minute_kit::ApiError;

use crate::store::StoreError;

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Input that can never be valid.
    #[error("{0}")]
    BadInput(String),
    /// The username is taken.
    #[error("username taken")]
    UsernameTaken,
    /// Unknown user, wrong password or wrong current password (one error on purpose).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Unknown, expired, revoked or reused refresh token.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// Too many attempts.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until the window ends.
        retry_after_secs: u64,
    },
    /// A dependency failed.
    #[error("internal: {0}")]
    Internal(String),
}

impl AuthError {
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::BadInput(m) => ApiError::bad_input(m),
            AuthError::UsernameTaken => ApiError::conflict("username is taken"),
            AuthError::InvalidCredentials => {
                ApiError::unauthenticated("invalid username or password")
            }
            AuthError::InvalidRefreshToken => ApiError::unauthenticated("invalid refresh token"),
            AuthError::RateLimited { retry_after_secs } => {
                ApiError::rate_limited(retry_after_secs.max(1))
            }
            AuthError::Internal(m) => ApiError::internal(m),
        }
    }
}
