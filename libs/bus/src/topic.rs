//! AMQP topic matching: `*` is exactly one word, `#` zero or more words.

/// True when `routing_key` matches the binding `pattern`.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = routing_key.split('.').collect();
    matches(&p, &k)
}

fn matches(p: &[&str], k: &[&str]) -> bool {
    match p.split_first() {
        None => k.is_empty(),
        Some((&"#", rest)) => (0..=k.len()).any(|i| matches(rest, &k[i..])),
        Some((&w, rest)) => match k.split_first() {
            Some((&kw, krest)) => (w == "*" || w == kw) && matches(rest, krest),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches as m;

    #[test]
    fn words_and_wildcards() {
        assert!(m("conv.c1", "conv.c1"));
        assert!(!m("conv.c1", "conv.c2"));
        assert!(m("conv.*", "conv.c2"));
        assert!(!m("conv.*", "conv.c2.x"));
        assert!(m("#", "a.b.c"));
        assert!(m("messaging.#", "messaging.message.created.v1"));
        assert!(m("*.message.*.v1", "messaging.message.edited.v1"));
        assert!(m("a.#.z", "a.z"));
        assert!(!m("a.#.z", "a.b.y"));
    }
}
