//! Values that can only hold valid data: ids, titles, roles, page sizes and cursors.
//! Input is parsed into these once, at the API edge.

use std::collections::HashSet;
use std::fmt;

use base64::Engine;
use chrono::{DateTime, Utc};

use super::Error;

/// Longest id accepted from clients (ids are UUIDs today; this leaves room).
const MAX_ID_CHARS: usize = 64;

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_CHARS
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A syntactically valid ", $what, " id (1..=64 of `[A-Za-z0-9._:-]`).")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Parses a ", $what, " id.")]
            pub fn parse(s: &str) -> Option<Self> {
                valid_id(s).then(|| Self(s.to_owned()))
            }
            /// The id.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Wraps an id read back from the store (it was valid when written).
            pub fn trusted(s: String) -> Self {
                Self(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(UserId, "user");
id_type!(ConversationId, "conversation");

impl ConversationId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

/// A group title: trimmed, 1..=[`Title::MAX_CHARS`] characters, no control characters
/// (titles are one line in every client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// Longest title, in characters (Unicode scalar values).
    pub const MAX_CHARS: usize = 200;

    /// Parses a title.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        // Checked on the raw length first so a 1 MB title is refused without scanning it.
        if raw.len() > Self::MAX_CHARS * 4 {
            return Err(Error::bad_input(format!(
                "title must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        let t = raw.trim();
        if t.is_empty() {
            return Err(Error::bad_input("title must not be empty"));
        }
        if t.chars().count() > Self::MAX_CHARS {
            return Err(Error::bad_input(format!(
                "title must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if t.chars().any(char::is_control) {
            return Err(Error::bad_input(
                "title must not contain control characters",
            ));
        }
        Ok(Self(t.to_owned()))
    }

    /// The title.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The owned title.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A list of distinct, syntactically valid user ids (at most `max`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIds(Vec<UserId>);

impl UserIds {
    /// Parses ids; duplicates, bad ids and lists longer than `max` are refused.
    pub fn parse(raw: &[String], max: usize) -> Result<Self, Error> {
        if raw.len() > max {
            return Err(Error::bad_input(format!("at most {max} user ids at once")));
        }
        let mut seen = HashSet::with_capacity(raw.len());
        let mut ids = Vec::with_capacity(raw.len());
        for r in raw {
            let id = UserId::parse(r)
                .ok_or_else(|| Error::bad_input(format!("not a user id: {}", clip(r))))?;
            if !seen.insert(id.clone()) {
                return Err(Error::bad_input(format!("duplicate user id: {id}")));
            }
            ids.push(id);
        }
        Ok(Self(ids))
    }

    /// The ids, in input order.
    pub fn as_slice(&self) -> &[UserId] {
        &self.0
    }

    /// Drops `id` if present.
    pub fn without(mut self, id: &UserId) -> Self {
        self.0.retain(|x| x != id);
        self
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A member's role (api.md `MemberRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Created the group; the only role that changes roles.
    Owner,
    /// Manages members and the title.
    Admin,
    /// Reads and writes.
    Member,
}

impl Role {
    /// Storage / wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "OWNER",
            Self::Admin => "ADMIN",
            Self::Member => "MEMBER",
        }
    }
    /// From the storage name.
    pub fn from_str_opt(s: &str) -> Option<Self> {
        match s {
            "OWNER" => Some(Self::Owner),
            "ADMIN" => Some(Self::Admin),
            "MEMBER" => Some(Self::Member),
            _ => None,
        }
    }
    /// True for OWNER and ADMIN: may add/remove members and rename.
    pub fn manages_members(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }
}

/// Direct (two users, fixed) or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Exactly two users, both `MEMBER`; membership never changes.
    Direct,
    /// Titled, with roles.
    Group,
}

impl Kind {
    /// Storage / wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "DIRECT",
            Self::Group => "GROUP",
        }
    }
    /// From the storage name.
    pub fn from_str_opt(s: &str) -> Option<Self> {
        match s {
            "DIRECT" => Some(Self::Direct),
            "GROUP" => Some(Self::Group),
            _ => None,
        }
    }
}

/// A page size: 1..=[`PageSize::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(usize);

impl PageSize {
    /// Largest page.
    pub const MAX: usize = 100;

    /// Parses `first`.
    pub fn parse(first: i32) -> Result<Self, Error> {
        match usize::try_from(first) {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(Error::bad_input(format!(
                "first must be between 1 and {}",
                Self::MAX
            ))),
        }
    }
    /// The size.
    pub fn get(self) -> usize {
        self.0
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Position in a user's conversation list (most recently active first): the last
/// conversation's activity time and id, so equal times still order totally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityCursor {
    /// Activity time of the last item (ms since the epoch).
    pub activity_ms: i64,
    /// Its id.
    pub conversation_id: ConversationId,
}

impl ActivityCursor {
    /// Opaque form.
    pub fn encode(&self) -> String {
        B64.encode(format!("a|{}|{}", self.activity_ms, self.conversation_id))
    }
    /// Parses the opaque form.
    pub fn decode(s: &str) -> Result<Self, Error> {
        let bad = || Error::bad_input("invalid cursor");
        let raw = String::from_utf8(B64.decode(s).map_err(|_| bad())?).map_err(|_| bad())?;
        let mut parts = raw.splitn(3, '|');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("a"), Some(ms), Some(id)) => Ok(Self {
                activity_ms: ms.parse().map_err(|_| bad())?,
                conversation_id: ConversationId::parse(id).ok_or_else(bad)?,
            }),
            _ => Err(bad()),
        }
    }
}

/// Position in a member list (ordered by user id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberCursor(pub UserId);

impl MemberCursor {
    /// Opaque form.
    pub fn encode(&self) -> String {
        B64.encode(format!("m|{}", self.0))
    }
    /// Parses the opaque form.
    pub fn decode(s: &str) -> Result<Self, Error> {
        let bad = || Error::bad_input("invalid cursor");
        let raw = String::from_utf8(B64.decode(s).map_err(|_| bad())?).map_err(|_| bad())?;
        raw.strip_prefix("m|")
            .and_then(UserId::parse)
            .map(Self)
            .ok_or_else(bad)
    }
}

/// Milliseconds since the epoch.
pub fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_titles_and_lists() {
        assert!(UserId::parse("0193a5b2-7c1d-7e2f-8a9b-0c1d2e3f4a5b").is_some());
        assert!(UserId::parse("").is_none());
        assert!(UserId::parse("a b").is_none());
        assert!(UserId::parse(&"x".repeat(65)).is_none());
        assert_eq!(Title::parse("  Team  ").unwrap().as_str(), "Team");
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"é".repeat(200)).is_ok());
        assert!(Title::parse(&"é".repeat(201)).is_err());
        assert!(Title::parse(&"x".repeat(1 << 20)).is_err());
        assert!(Title::parse("a\nb").is_err());
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(UserIds::parse(&ids(&["a", "b"]), 10).is_ok());
        assert!(UserIds::parse(&ids(&["a", "a"]), 10).is_err());
        assert!(UserIds::parse(&ids(&["a", "b"]), 1).is_err());
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = ActivityCursor {
            activity_ms: 1_700_000_000_123,
            conversation_id: ConversationId::generate(),
        };
        assert_eq!(ActivityCursor::decode(&c.encode()).unwrap(), c);
        let m = MemberCursor(UserId::parse("u-1").unwrap());
        assert_eq!(MemberCursor::decode(&m.encode()).unwrap(), m);
        assert!(ActivityCursor::decode("nope!").is_err());
        assert!(MemberCursor::decode(&c.encode()).is_err());
        assert!(PageSize::parse(0).is_err());
        assert!(PageSize::parse(101).is_err());
        assert_eq!(PageSize::parse(50).unwrap().get(), 50);
    }
}

#[cfg(test)]
mod proptests {
    use base64::Engine;
    use proptest::prelude::*;

    use super::*;

    fn id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._:-]{1,64}"
    }

    proptest! {
        #[test]
        fn activity_cursors_round_trip(ms in any::<i64>(), id in id()) {
            let c = ActivityCursor {
                activity_ms: ms,
                conversation_id: ConversationId::parse(&id).ok_or_else(|| TestCaseError::fail("valid id"))?,
            };
            prop_assert_eq!(ActivityCursor::decode(&c.encode()).ok(), Some(c));
        }

        #[test]
        fn member_cursors_round_trip(id in id()) {
            let c = MemberCursor(UserId::parse(&id).ok_or_else(|| TestCaseError::fail("valid id"))?);
            prop_assert_eq!(MemberCursor::decode(&c.encode()).ok(), Some(c.clone()));
            prop_assert!(ActivityCursor::decode(&c.encode()).is_err(), "one kind is never taken for the other");
        }

        /// Garbage of every kind — any text, any bytes in base64, near-misses of the real
        /// shape — is refused with an error, never a panic, never a cursor with an invalid id.
        #[test]
        fn garbage_cursors_are_refused_without_panicking(
            text in any::<String>(),
            bytes in prop::collection::vec(any::<u8>(), 0..200),
            ms in ".{0,30}",
            tail in ".{0,80}",
        ) {
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            for s in [
                text.clone(),
                b64.encode(&bytes),
                b64.encode(format!("a|{ms}|{tail}")),
                b64.encode(format!("m|{tail}")),
                base64::engine::general_purpose::STANDARD.encode(&bytes),
            ] {
                if let Ok(c) = ActivityCursor::decode(&s) {
                    prop_assert!(valid_id(c.conversation_id.as_str()));
                    prop_assert_eq!(ActivityCursor::decode(&c.encode()).ok(), Some(c));
                }
                if let Ok(c) = MemberCursor::decode(&s) {
                    prop_assert!(valid_id(c.0.as_str()));
                }
            }
        }

        #[test]
        fn ids_follow_the_rule(s in any::<String>()) {
            let ok = (1..=64).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
            prop_assert_eq!(UserId::parse(&s).is_some(), ok);
            prop_assert_eq!(ConversationId::parse(&s).is_some(), ok);
        }

        #[test]
        fn titles_are_one_trimmed_line_of_at_most_200_chars(raw in any::<String>()) {
            if let Ok(t) = Title::parse(&raw) {
                prop_assert_eq!(t.as_str(), raw.trim());
                prop_assert!((1..=Title::MAX_CHARS).contains(&t.as_str().chars().count()));
                prop_assert!(!t.as_str().chars().any(char::is_control));
            }
        }

        #[test]
        fn page_sizes_are_1_to_100(n in any::<i32>()) {
            prop_assert_eq!(PageSize::parse(n).is_ok(), (1..=100).contains(&n));
        }
    }
}
