//! Crash points for fault-injection tests (the `failpoints` feature; without it [`hit`]
//! is an empty inline function and no release build can crash on purpose).
//!
//! A test arms points through `MINUTE_FAILPOINTS` when it starts a process:
//! `name[=text][@n]`, comma-separated — abort the process (`std::process::abort`, as a
//! `kill -9` would end it: no unwinding, no flush, no graceful shutdown) the `n`-th time
//! (default 1) the point is reached with a detail containing `text`. Read here rather than
//! in a `config.rs` because it is test machinery, not a setting.
//!
//! Points: `messaging.relay.before_publish` (an outbox item read from the database, not
//! yet published; detail: the routing keys), `bus.consumer.before_handle` (a delivery
//! taken from a durable queue, not yet handled nor acked; detail: the routing key).

#[cfg(feature = "failpoints")]
mod armed {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Point {
        name: String,
        text: String,
        nth: u64,
        hits: AtomicU64,
    }

    fn parse(spec: &str) -> Vec<Point> {
        spec.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let (rest, nth) = match s.rsplit_once('@') {
                    Some((r, n)) => (r, n.trim().parse().unwrap_or(1)),
                    None => (s, 1),
                };
                let (name, text) = rest.split_once('=').unwrap_or((rest, ""));
                Point {
                    name: name.trim().to_owned(),
                    text: text.trim().to_owned(),
                    nth: nth.max(1),
                    hits: AtomicU64::new(0),
                }
            })
            .collect()
    }

    fn points() -> &'static [Point] {
        static POINTS: OnceLock<Vec<Point>> = OnceLock::new();
        POINTS.get_or_init(|| parse(&std::env::var("MINUTE_FAILPOINTS").unwrap_or_default()))
    }

    pub(super) fn hit(name: &str, detail: &str) {
        for p in points() {
            if p.name == name
                && detail.contains(p.text.as_str())
                && p.hits.fetch_add(1, Ordering::SeqCst) + 1 == p.nth
            {
                eprintln!("failpoint {name} ({detail}): aborting the process");
                std::process::abort();
            }
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn specs_parse() {
            let p = super::parse("a.b=conv.@3, c");
            assert_eq!(
                (p[0].name.as_str(), p[0].text.as_str(), p[0].nth),
                ("a.b", "conv.", 3)
            );
            assert_eq!(
                (p[1].name.as_str(), p[1].text.as_str(), p[1].nth),
                ("c", "", 1)
            );
        }
    }
}

/// Aborts the process when the point `name` is armed for this `detail` (feature
/// `failpoints` only).
#[cfg(feature = "failpoints")]
pub fn hit(name: &str, detail: &str) {
    armed::hit(name, detail);
}

/// Does nothing: built without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str, _detail: &str) {}
