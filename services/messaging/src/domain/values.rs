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

    /// The inclusive seq range that holds this page and one more message (to tell whether
    /// there are more) when seqs are dense; `last_seq` is the conversation's latest seq (only
    /// `Latest` needs it). Empty (`lo > hi`) when no seq can match. Saturating: `before` and
    /// `after` come from clients and may be anywhere up to `i64::MAX`.
    pub fn seq_window(self, last_seq: i64) -> (i64, i64) {
        let limit = self.limit();
        match self {
            Self::Latest(_) => (last_seq.saturating_sub(limit).max(1), last_seq),
            Self::Before(b, _) => (
                b.saturating_sub(limit).saturating_sub(1).max(1),
                b.saturating_sub(1),
            ),
            Self::After(a, _) => (
                a.saturating_add(1),
                a.saturating_add(limit).saturating_add(1),
            ),
            Self::Between(a, b, _) => (
                a.saturating_add(1),
                b.saturating_sub(1)
                    .min(a.saturating_add(limit).saturating_add(1)),
            ),
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

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    fn page() -> impl Strategy<Value = Page> {
        let seq = prop_oneof![
            0_i64..1_000,
            Just(i64::MAX),
            Just(i64::MAX - 1),
            0..=i64::MAX
        ];
        (
            prop::option::of(seq.clone()),
            prop::option::of(seq),
            1_i64..=HistoryLimit::MAX,
        )
            .prop_map(|(b, a, l)| Page::parse(b, a, l).expect("valid arguments"))
    }

    proptest! {
        #[test]
        fn bodies_are_trimmed_non_empty_and_at_most_10000_chars(raw in any::<String>()) {
            let trimmed = raw.trim();
            let n = trimmed.chars().count();
            match MessageBody::parse(&raw) {
                Ok(b) => {
                    prop_assert_eq!(b.as_str(), trimmed);
                    prop_assert!((1..=MessageBody::MAX_CHARS).contains(&n));
                    prop_assert_eq!(MessageBody::parse(b.as_str()).ok(), Some(b.clone()), "idempotent");
                }
                Err(_) => prop_assert!(n == 0 || n > MessageBody::MAX_CHARS),
            }
        }

        #[test]
        fn bodies_at_the_length_limit(n in 9_990_usize..10_010, pad in "[ \t\n]{0,4}", c in any::<char>().prop_filter("not space", |c| !c.is_whitespace())) {
            let raw = format!("{pad}{}{pad}", c.to_string().repeat(n));
            prop_assert_eq!(MessageBody::parse(&raw).is_ok(), n <= MessageBody::MAX_CHARS);
        }

        #[test]
        fn client_message_ids_are_kept_byte_for_byte(raw in any::<String>()) {
            let n = raw.chars().count();
            match ClientMessageId::parse(&raw) {
                Ok(k) => {
                    prop_assert_eq!(k.as_str(), raw.as_str());
                    prop_assert!((1..=64).contains(&n) && !raw.trim().is_empty());
                }
                Err(_) => prop_assert!(n == 0 || n > 64 || raw.trim().is_empty()),
            }
        }

        #[test]
        fn emoji_have_no_whitespace(raw in any::<String>()) {
            if let Ok(e) = Emoji::parse(&raw) {
                prop_assert!(!e.as_str().is_empty() && e.as_str().chars().count() <= 16);
                prop_assert!(!e.as_str().chars().any(char::is_whitespace));
            }
        }

        #[test]
        fn page_arguments_are_checked(b in prop::option::of(any::<i64>()), a in prop::option::of(any::<i64>()), l in any::<i64>()) {
            let ok = (1..=HistoryLimit::MAX).contains(&l)
                && b.is_none_or(|b| b >= 0)
                && a.is_none_or(|a| a >= 0);
            let page = Page::parse(b, a, l);
            prop_assert_eq!(page.is_ok(), ok);
            if let Ok(p) = page {
                prop_assert_eq!(p.limit(), l);
            }
        }

        /// Seq arithmetic never overflows, and the window is what a dense history needs:
        /// at most `limit + 1` seqs, starting at 1 or later, strictly inside the bounds.
        #[test]
        fn seq_windows_are_bounded_and_inside_the_page(p in page(), last in prop_oneof![0_i64..1_000, 0..=i64::MAX]) {
            let (lo, hi) = p.seq_window(last);
            let limit = p.limit();
            prop_assert!(lo >= 1);
            if lo <= hi {
                prop_assert!(hi - lo <= limit, "{lo}..={hi} for {p:?}");
            }
            match p {
                Page::Latest(_) => {
                    prop_assert_eq!(hi, last);
                    if last > limit {
                        prop_assert_eq!(hi - lo, limit, "latest: limit + 1 seqs");
                    }
                }
                Page::Before(b, _) => prop_assert!(hi < b || b == 0),
                Page::After(a, _) => {
                    prop_assert!(lo > a || a == i64::MAX);
                    if a < i64::MAX - limit {
                        prop_assert_eq!(hi - lo, limit, "after: limit + 1 seqs");
                    }
                }
                Page::Between(a, b, _) => {
                    prop_assert!(lo > a || a == i64::MAX);
                    prop_assert!(hi < b || b == 0);
                }
            }
        }

        #[test]
        fn search_tokens_are_lower_case_words(raw in any::<String>()) {
            let words = tokens(&raw);
            let mut seen = std::collections::HashSet::new();
            for w in &words {
                prop_assert!(!w.is_empty());
                prop_assert_eq!(w.to_lowercase(), w.clone());
                prop_assert!(seen.insert(w.clone()), "distinct: {w:?}");
            }
            if let Ok(t) = SearchTerms::parse(&raw) {
                prop_assert!((1..=8).contains(&t.words().len()));
            }
        }
    }
}
