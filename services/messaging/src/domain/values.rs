//! Input values parsed once at the edge (parse, don't validate): each type can only hold a
//! valid value, so the rest of the crate never re-checks.

use super::DomainError;

/// A message text: trimmed, 1..=10,000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    /// Maximum length in characters (after trimming).
    pub const MAX_CHARS: usize = 10_000;

    /// Trims and checks the length.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let t = raw.trim();
        let n = t.chars().count();
        if n == 0 {
            return Err(DomainError::Invalid("body must not be empty".into()));
        }
        if n > Self::MAX_CHARS {
            return Err(DomainError::Invalid(format!(
                "body must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        Ok(Self(t.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The client's idempotency key: 1..=64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessageId(String);

impl ClientMessageId {
    /// Checks the length (no trimming: the key is the client's, byte for byte).
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let n = raw.chars().count();
        if n == 0 || n > 64 || raw.trim().is_empty() {
            return Err(DomainError::Invalid(
                "clientMessageId must be 1 to 64 characters".into(),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A reaction: a non-empty string of at most 16 characters without whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emoji(String);

impl Emoji {
    /// Checks the shape.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let n = raw.chars().count();
        if n == 0 || n > 16 || raw.chars().any(char::is_whitespace) {
            return Err(DomainError::Invalid(
                "emoji must be 1 to 16 characters without whitespace".into(),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The emoji.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A history page size: 1..=200.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistoryLimit(i64);

impl HistoryLimit {
    /// Upper bound of a page.
    pub const MAX: i64 = 200;

    /// Checks the range.
    pub fn parse(raw: i64) -> Result<Self, DomainError> {
        if !(1..=Self::MAX).contains(&raw) {
            return Err(DomainError::Invalid(format!(
                "limit must be between 1 and {}",
                Self::MAX
            )));
        }
        Ok(Self(raw))
    }

    /// The size.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Which slice of a conversation's history to read. Always returned ascending by seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Page {
    /// The latest `limit` messages.
    Latest(HistoryLimit),
    /// The `limit` messages just before seq `before`.
    Before(i64, HistoryLimit),
    /// The `limit` messages just after seq `after`.
    After(i64, HistoryLimit),
    /// The first `limit` messages after `after` and before `before`.
    Between(i64, i64, HistoryLimit),
}

impl Page {
    /// Builds a page from the API's arguments.
    pub fn parse(before: Option<i64>, after: Option<i64>, limit: i64) -> Result<Self, DomainError> {
        let limit = HistoryLimit::parse(limit)?;
        if before.is_some_and(|b| b < 0) || after.is_some_and(|a| a < 0) {
            return Err(DomainError::Invalid(
                "before and after must not be negative".into(),
            ));
        }
        Ok(match (before, after) {
            (None, None) => Self::Latest(limit),
            (Some(b), None) => Self::Before(b, limit),
            (None, Some(a)) => Self::After(a, limit),
            (Some(b), Some(a)) => Self::Between(a, b, limit),
        })
    }

    /// The page size.
    pub fn limit(self) -> i64 {
        match self {
            Self::Latest(l) | Self::Before(_, l) | Self::After(_, l) | Self::Between(_, _, l) => {
                l.get()
            }
        }
    }
}

/// Search words: lower-cased alphanumeric runs, 1..=8 distinct words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerms(Vec<String>);

impl SearchTerms {
    /// Tokenises the query the way message bodies are indexed.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let words = tokens(raw);
        if words.is_empty() {
            return Err(DomainError::Invalid("query must contain a word".into()));
        }
        if words.len() > 8 {
            return Err(DomainError::Invalid(
                "query must have at most 8 words".into(),
            ));
        }
        Ok(Self(words))
    }

    /// The words; every one must occur in a matching message.
    pub fn words(&self) -> &[String] {
        &self.0
    }
}

/// Index terms of a text: distinct lower-cased runs of letters and digits (at most 64
/// characters each, at most 256 per message), in first-seen order.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in text.split(|c: char| !c.is_alphanumeric()) {
        if w.is_empty() || w.chars().count() > 64 {
            continue;
        }
        let w = w.to_lowercase();
        if !out.contains(&w) {
            out.push(w);
            if out.len() == 256 {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_trimmed_and_bounded() {
        assert_eq!(
            MessageBody::parse("  hi ").map(|b| b.0).ok(),
            Some("hi".into())
        );
        assert!(MessageBody::parse("   ").is_err());
        assert!(MessageBody::parse(&"x".repeat(10_000)).is_ok());
        assert!(MessageBody::parse(&"x".repeat(10_001)).is_err());
        assert!(MessageBody::parse(&format!("  {}  ", "é".repeat(10_000))).is_ok());
    }

    #[test]
    fn emoji_and_ids() {
        assert!(Emoji::parse("👍").is_ok());
        assert!(Emoji::parse("").is_err());
        assert!(Emoji::parse("a b").is_err());
        assert!(Emoji::parse(&"x".repeat(17)).is_err());
        assert!(ClientMessageId::parse(&"k".repeat(64)).is_ok());
        assert!(ClientMessageId::parse(&"k".repeat(65)).is_err());
        assert!(ClientMessageId::parse("").is_err());
    }

    #[test]
    fn pages_and_terms() {
        assert!(Page::parse(None, None, 0).is_err());
        assert!(Page::parse(None, None, 201).is_err());
        assert_eq!(Page::parse(Some(5), None, 2).map(Page::limit).ok(), Some(2));
        assert_eq!(tokens("Hello, hello WORLD!"), vec!["hello", "world"]);
        assert!(SearchTerms::parse("  ,, ").is_err());
    }
}
