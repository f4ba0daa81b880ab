//! Refresh tokens (RFC 9700 §4.14): 256 random bits given to the client once, stored only
//! as their SHA-256, so a database leak yields no usable token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::AuthError;

/// Length of the encoded token (32 bytes, base64url without padding).
const ENCODED_LEN: usize = 43;

/// An opaque refresh token.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

impl RefreshToken {
    /// A fresh token from the OS-seeded CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0_u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts only the shape this service issues; anything else is simply invalid.
    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        let ok = raw.len() == ENCODED_LEN
            && URL_SAFE_NO_PAD
                .decode(raw)
                .is_ok_and(|bytes| bytes.len() == 32);
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(AuthError::InvalidRefreshToken)
        }
    }

    /// What the client receives.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps (hex SHA-256).
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_shape() {
        let t = RefreshToken::generate();
        assert_eq!(t.expose().len(), ENCODED_LEN);
        let back = RefreshToken::parse(t.expose()).expect("own token parses");
        assert_eq!(back.hash(), t.hash());
        assert_eq!(t.hash().len(), 64);
        assert_ne!(RefreshToken::generate(), t);
        assert!(RefreshToken::parse("garbage").is_err());
        assert!(RefreshToken::parse(&"!".repeat(ENCODED_LEN)).is_err());
    }
}
