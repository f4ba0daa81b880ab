//! Values parsed once at the edge (parse, don't validate). Each constructor is the only
//! way in, so code holding one never re-checks it.

use std::fmt;

/// Why an input was refused; the message is safe to show (`BAD_USER_INPUT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInput(pub String);

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

fn invalid<T>(message: impl Into<String>) -> Result<T, InvalidInput> {
    Err(InvalidInput(message.into()))
}

/// Longest id accepted; ids are opaque, but a lookup key of megabytes is an attack.
const MAX_ID_CHARS: usize = 128;

/// An opaque user id (auth assigns them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Non-empty, at most 128 characters, no whitespace or control characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.is_empty() || raw.chars().count() > MAX_ID_CHARS {
            return invalid(format!("a user id has 1 to {MAX_ID_CHARS} characters"));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid("a user id has no spaces or control characters");
        }
        Ok(Self(raw.to_owned()))
    }
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters of a display name, after trimming.
pub const DISPLAY_NAME_MAX: usize = 64;
/// Characters of a bio.
pub const BIO_MAX: usize = 500;
/// Bytes of an avatar URL.
pub const AVATAR_URL_MAX: usize = 2048;

/// 1..=64 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses a display name.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let s = raw.trim();
        let n = s.chars().count();
        if n == 0 || n > DISPLAY_NAME_MAX {
            return invalid(format!(
                "displayName must have 1 to {DISPLAY_NAME_MAX} characters"
            ));
        }
        if s.chars().any(char::is_control) {
            return invalid("displayName must not contain control characters");
        }
        Ok(Self(s.to_owned()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The name, owned.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// At most 500 characters; line breaks and tabs allowed, other control characters not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bio(String);

impl Bio {
    /// Parses a bio; an empty (or blank) one means "no bio".
    pub fn parse(raw: &str) -> Result<Option<Self>, InvalidInput> {
        if raw.chars().count() > BIO_MAX {
            return invalid(format!("bio must have at most {BIO_MAX} characters"));
        }
        if raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return invalid("bio must not contain control characters");
        }
        let s = raw.trim();
        Ok((!s.is_empty()).then(|| Self(s.to_owned())))
    }
    /// The text.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An absolute `https` URL with a host, at most 2,048 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvatarUrl(String);

impl AvatarUrl {
    /// Parses an avatar URL; an empty string means "no avatar".
    pub fn parse(raw: &str) -> Result<Option<Self>, InvalidInput> {
        if raw.is_empty() {
            return Ok(None);
        }
        if raw.len() > AVATAR_URL_MAX {
            return invalid(format!(
                "avatarUrl must have at most {AVATAR_URL_MAX} bytes"
            ));
        }
        // The parser is lenient about surrounding spaces and tabs; a stored URL must be
        // exactly what was checked.
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid("avatarUrl must not contain spaces or control characters");
        }
        // The WHATWG parser repairs `https:/x`, `https:///x` and backslashes; a stored URL
        // must already be in the plain form clients will read.
        let plain = raw
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
            && !raw[8..].starts_with('/')
            && !raw.contains('\\');
        if !plain {
            return invalid("avatarUrl must be an https URL (https://host/...)");
        }
        let url =
            url::Url::parse(raw).map_err(|_| InvalidInput("avatarUrl must be a URL".into()))?;
        if url.scheme() != "https" {
            return invalid("avatarUrl must be an https URL");
        }
        if url.host_str().is_none_or(str::is_empty) {
            return invalid("avatarUrl must name a host");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return invalid("avatarUrl must not carry credentials");
        }
        Ok(Some(Self(raw.to_owned())))
    }
    /// The URL as given.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// What `updateProfile` changes; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileChanges {
    /// New display name.
    pub display_name: Option<DisplayName>,
    /// New avatar (or none).
    pub avatar_url: Option<Option<AvatarUrl>>,
    /// New bio (or none).
    pub bio: Option<Option<Bio>>,
}

impl ProfileChanges {
    /// Parses the three optional inputs; any invalid one refuses the whole change.
    pub fn parse(
        display_name: Option<&str>,
        avatar_url: Option<&str>,
        bio: Option<&str>,
    ) -> Result<Self, InvalidInput> {
        Ok(Self {
            display_name: display_name.map(DisplayName::parse).transpose()?,
            avatar_url: avatar_url.map(AvatarUrl::parse).transpose()?,
            bio: bio.map(Bio::parse).transpose()?,
        })
    }
}

/// Characters of a search query.
pub const SEARCH_QUERY_MAX: usize = 64;

/// A search prefix: trimmed, lower-cased, 1..=64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery(String);

impl SearchQuery {
    /// Parses a query.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let s = fold_case(raw.trim());
        let n = s.chars().count();
        if n == 0 || n > SEARCH_QUERY_MAX {
            return invalid(format!(
                "query must have 1 to {SEARCH_QUERY_MAX} characters"
            ));
        }
        if s.chars().any(char::is_control) {
            return invalid("query must not contain control characters");
        }
        Ok(Self(s))
    }
    /// The lower-cased prefix.
    pub fn prefix(&self) -> &str {
        &self.0
    }
    /// The exclusive upper bound of the index range holding every string that starts with
    /// the prefix: no character sorts after U+10FFFF, in UTF-8 byte order as in code points.
    pub fn upper_bound(&self) -> String {
        format!("{}\u{10FFFF}", self.0)
    }
}

/// The largest `first` of `searchUsers`.
pub const SEARCH_LIMIT_MAX: i32 = 50;

/// How many results `searchUsers` returns: 1..=50.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchLimit(usize);

impl SearchLimit {
    /// Parses `first`.
    pub fn parse(first: i32) -> Result<Self, InvalidInput> {
        if !(1..=SEARCH_LIMIT_MAX).contains(&first) {
            return invalid(format!("first must be between 1 and {SEARCH_LIMIT_MAX}"));
        }
        Ok(Self(usize::try_from(first).unwrap_or(1)))
    }
    /// The limit.
    pub fn get(self) -> usize {
        self.0
    }
}

/// The case folding used for the search columns and queries (one definition, so stored
/// keys and queries always agree).
pub fn fold_case(s: &str) -> String {
    s.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        assert_eq!(DisplayName::parse("  Ada ").unwrap().as_str(), "Ada");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"é".repeat(64)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(65)).is_err());
        assert!(DisplayName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn bios() {
        assert_eq!(Bio::parse("").unwrap(), None);
        assert!(Bio::parse("line\nline").unwrap().is_some());
        assert!(Bio::parse(&"x".repeat(500)).unwrap().is_some());
        assert!(Bio::parse(&"x".repeat(501)).is_err());
        assert!(Bio::parse("bell\u{7}").is_err());
    }

    #[test]
    fn avatar_urls() {
        assert!(
            AvatarUrl::parse("https://cdn.example.com/a.png")
                .unwrap()
                .is_some()
        );
        assert_eq!(AvatarUrl::parse("").unwrap(), None);
        for bad in [
            "http://cdn.example.com/a.png",
            "javascript:alert(1)",
            "https://",
            "https:///path",
            "https:/example.com",
            "https:\\\\example.com",
            "not a url",
            " https://example.com",
            "https://user:pw@example.com/",
            "data:image/png;base64,AAAA",
        ] {
            assert!(AvatarUrl::parse(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(2048 - 20));
        assert_eq!(long.len(), 2048);
        assert!(AvatarUrl::parse(&long).unwrap().is_some());
        assert!(AvatarUrl::parse(&format!("{long}a")).is_err());
    }

    #[test]
    fn search_inputs() {
        let q = SearchQuery::parse("  ÅDa ").unwrap();
        assert_eq!(q.prefix(), "åda");
        assert!(q.upper_bound().as_str() > "ådazzz");
        assert!(q.upper_bound().as_str() > "åda\u{10FFFE}");
        assert!(SearchQuery::parse(" ").is_err());
        assert!(SearchLimit::parse(0).is_err());
        assert!(SearchLimit::parse(51).is_err());
        assert_eq!(SearchLimit::parse(50).unwrap().get(), 50);
    }

    #[test]
    fn ids() {
        assert!(UserId::parse("0190b7c2-aaaa").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse(&"x".repeat(129)).is_err());
    }
}
