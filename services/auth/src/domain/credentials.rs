//! Parse, don't validate: values that can only hold what the rules allow. The API converts
//! its input into these once; the rest of the crate never re-checks.

use std::fmt;

use super::AuthError;

/// Allowed lengths, in characters.
const USERNAME_CHARS: std::ops::RangeInclusive<usize> = 3..=32;
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;
const LABEL_CHARS: usize = 64;

/// A lower-case username of 3..=32 characters of `[a-z0-9_.]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Lower-cases and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        // Cheap bound first so a huge input costs nothing more.
        if raw.len() > *USERNAME_CHARS.end() * 4 {
            return Err(bad("username must be 3 to 32 characters"));
        }
        let lower = raw.to_ascii_lowercase();
        if !USERNAME_CHARS.contains(&lower.chars().count()) {
            return Err(bad("username must be 3 to 32 characters"));
        }
        let allowed =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.';
        if !lower.chars().all(allowed) {
            return Err(bad("username may contain only a-z, 0-9, _ and ."));
        }
        Ok(Self(lower))
    }

    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 8..=128 characters. Never printed.
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    /// Checks the length before anything else touches it (a 1 MB password is refused at once).
    pub fn parse(raw: String) -> Result<Self, AuthError> {
        if raw.len() > PASSWORD_CHARS.end() * 4 || !PASSWORD_CHARS.contains(&raw.chars().count()) {
            return Err(bad("password must be 8 to 128 characters"));
        }
        Ok(Self(raw))
    }

    /// The secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

/// A password presented to log in (or as the current password): 1..=128 characters, so
/// an account created under an older, looser rule can still log in, and nothing huge is hashed.
#[derive(Clone)]
pub struct PresentedPassword(String);

impl PresentedPassword {
    /// Checks the bounds.
    pub fn parse(raw: String) -> Result<Self, AuthError> {
        if raw.is_empty() || raw.len() > PASSWORD_CHARS.end() * 4 || raw.chars().count() > 128 {
            return Err(bad("password must be 1 to 128 characters"));
        }
        Ok(Self(raw))
    }

    /// The secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PresentedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresentedPassword(<redacted>)")
    }
}

/// An optional short label (display name, device name): trimmed, at most 64 characters,
/// no control characters; blank means absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label(String);

impl Label {
    /// `None` when absent or blank.
    pub fn parse_optional(raw: Option<&str>, what: &str) -> Result<Option<Self>, AuthError> {
        let Some(raw) = raw else { return Ok(None) };
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > LABEL_CHARS || trimmed.chars().any(char::is_control) {
            return Err(bad(&format!(
                "{what} must be at most {LABEL_CHARS} printable characters"
            )));
        }
        Ok(Some(Self(trimmed.to_owned())))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What `register` needs, valid.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The username.
    pub username: Username,
    /// The password.
    pub password: NewPassword,
    /// Display name for the profile.
    pub display_name: Option<Label>,
}

impl Registration {
    /// Parses the raw input.
    pub fn parse(
        username: &str,
        password: String,
        display_name: Option<&str>,
    ) -> Result<Self, AuthError> {
        Ok(Self {
            username: Username::parse(username)?,
            password: NewPassword::parse(password)?,
            display_name: Label::parse_optional(display_name, "displayName")?,
        })
    }
}

/// What `login` needs, valid.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    /// The username.
    pub username: Username,
    /// The presented password.
    pub password: PresentedPassword,
    /// Device label for the session.
    pub device_name: Option<Label>,
}

impl LoginAttempt {
    /// Parses the raw input.
    pub fn parse(
        username: &str,
        password: String,
        device_name: Option<&str>,
    ) -> Result<Self, AuthError> {
        Ok(Self {
            username: Username::parse(username)?,
            password: PresentedPassword::parse(password)?,
            device_name: Label::parse_optional(device_name, "deviceName")?,
        })
    }
}

fn bad(message: &str) -> AuthError {
    AuthError::BadInput(message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(
            Username::parse("Alice_1.x").map(|u| u.0).ok(),
            Some("alice_1.x".into())
        );
        for bad in [
            "",
            "ab",
            &"a".repeat(33),
            "bad name",
            "émile",
            "a-b",
            "x\u{0}y",
            &"a".repeat(10_000),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Username::parse(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn passwords() {
        assert!(NewPassword::parse("1234567".into()).is_err());
        assert!(NewPassword::parse("12345678".into()).is_ok());
        assert!(
            NewPassword::parse("é".repeat(128)).is_ok(),
            "characters, not bytes"
        );
        assert!(NewPassword::parse("x".repeat(129)).is_err());
        assert!(NewPassword::parse("x".repeat(1 << 20)).is_err());
        assert!(PresentedPassword::parse(String::new()).is_err());
        assert!(PresentedPassword::parse("x".into()).is_ok());
        assert_eq!(
            format!("{:?}", NewPassword::parse("secret-secret".into()).ok()),
            "Some(NewPassword(<redacted>))"
        );
    }

    #[test]
    fn labels() {
        assert_eq!(Label::parse_optional(Some("  "), "x").ok(), Some(None));
        assert_eq!(
            Label::parse_optional(Some(" Ada "), "x")
                .ok()
                .flatten()
                .map(|l| l.0),
            Some("Ada".into())
        );
        assert!(Label::parse_optional(Some(&"x".repeat(65)), "x").is_err());
        assert!(Label::parse_optional(Some("a\nb"), "x").is_err());
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// The rule of api.md, written independently of the parser: 3-32 of `[a-z0-9_.]`
    /// once lower-cased.
    fn valid(raw: &str) -> bool {
        let lower = raw.to_ascii_lowercase();
        (3..=32).contains(&lower.chars().count())
            && lower
                .chars()
                .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '.'))
    }

    proptest! {
        #[test]
        fn usernames_follow_the_rule_whatever_the_input(raw in any::<String>()) {
            match Username::parse(&raw) {
                Ok(u) => {
                    prop_assert!(valid(&raw), "{raw:?} accepted");
                    prop_assert_eq!(u.as_str(), raw.to_ascii_lowercase());
                }
                Err(_) => prop_assert!(!valid(&raw), "{raw:?} refused"),
            }
        }

        #[test]
        fn usernames_near_the_rule_are_judged_exactly(raw in "[a-zA-Z0-9_.é -]{0,40}") {
            prop_assert_eq!(Username::parse(&raw).is_ok(), valid(&raw), "{:?}", raw);
        }

        #[test]
        fn a_parsed_username_parses_to_itself(raw in "[a-zA-Z0-9_.]{3,32}") {
            let once = Username::parse(&raw).map_err(|_| TestCaseError::fail("valid"))?;
            let twice = Username::parse(once.as_str()).map_err(|_| TestCaseError::fail("stable"))?;
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn huge_usernames_are_refused(n in 33_usize..100_000) {
            prop_assert!(Username::parse(&"a".repeat(n)).is_err());
        }

        #[test]
        fn passwords_are_bounded_in_characters_not_bytes(raw in any::<String>()) {
            let chars = raw.chars().count();
            prop_assert_eq!(NewPassword::parse(raw.clone()).is_ok(), (8..=128).contains(&chars) && raw.len() <= 512);
            prop_assert_eq!(PresentedPassword::parse(raw.clone()).is_ok(), (1..=128).contains(&chars) && raw.len() <= 512);
        }

        #[test]
        fn labels_are_trimmed_printable_and_short(raw in any::<String>()) {
            if let Ok(Some(l)) = Label::parse_optional(Some(&raw), "displayName") {
                prop_assert_eq!(l.as_str(), raw.trim());
                prop_assert!(l.as_str().chars().count() <= 64);
                prop_assert!(!l.as_str().chars().any(char::is_control));
                prop_assert!(!l.as_str().is_empty());
            }
        }
    }
}
