//! The one error type at the API edge and its mapping to the codes of `api.md`.
//! Internal details are logged (with the current span) and never sent to the client.

use std::fmt;

/// `extensions.code` of a GraphQL error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Missing, bad or revoked credentials; failed login.
    Unauthenticated,
    /// Visible, but the caller lacks the role.
    Forbidden,
    /// Absent, or not visible to the caller.
    NotFound,
    /// Invalid input.
    BadUserInput,
    /// Unique constraint (username taken...).
    Conflict,
    /// Throttled; retry later.
    RateLimited,
    /// Anything else; message masked.
    Internal,
}

impl ErrorCode {
    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Conflict => "CONFLICT",
            Self::RateLimited => "RATE_LIMITED",
            Self::Internal => "INTERNAL",
        }
    }
}

/// An error a client may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Its code.
    pub code: ErrorCode,
    /// A message safe to show.
    pub message: String,
    /// Seconds until a retry may succeed (`RATE_LIMITED`).
    pub retry_after_secs: Option<u64>,
}

// Deliberately no `Display`: async-graphql converts any `Display` error into a GraphQL
// error without a code, so `?` on an `ApiError` would silently drop `extensions.code`.
// Resolvers write `.gql()?` (or `into_graphql()`) instead.

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }
    /// `UNAUTHENTICATED`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }
    /// `FORBIDDEN`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    /// `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    /// `BAD_USER_INPUT`.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadUserInput, message)
    }
    /// `CONFLICT`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
    /// `RATE_LIMITED` with a retry hint.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            code: ErrorCode::RateLimited,
            message: format!("too many attempts; retry in {retry_after_secs} s"),
            retry_after_secs: Some(retry_after_secs),
        }
    }
    /// `INTERNAL`: logs `cause` and returns a masked error.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// Converts to a GraphQL error with `extensions.code` (and `retryAfter`).
    pub fn into_graphql(self) -> async_graphql::Error {
        use async_graphql::ErrorExtensions;
        async_graphql::Error::new(self.message).extend_with(|_, ext| {
            ext.set("code", self.code.as_str());
            if let Some(s) = self.retry_after_secs {
                ext.set("retryAfter", s);
            }
        })
    }
}

/// `result.gql()?` in resolvers: any error convertible to [`ApiError`] becomes a coded
/// GraphQL error.
pub trait GqlResultExt<T> {
    /// Maps the error.
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T, E: Into<ApiError>> GqlResultExt<T> for Result<T, E> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| e.into().into_graphql())
    }
}
