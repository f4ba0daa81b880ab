//! A bounded memory of recently seen ids, for consumers whose effect is not itself
//! idempotent (e.g. pushing to a socket). Durable effects dedupe in their store instead.

use std::collections::{HashSet, VecDeque};

/// Remembers the last `capacity` ids.
#[derive(Debug)]
pub struct SeenIds {
    order: VecDeque<String>,
    set: HashSet<String>,
    capacity: usize,
}

impl SeenIds {
    /// Remembers up to `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            order: VecDeque::new(),
            set: HashSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `id`; true the first time it is seen (within the window).
    pub fn first_time(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.order.push_back(id.to_owned());
        self.set.insert(id.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::SeenIds;

    #[test]
    fn remembers_a_bounded_window() {
        let mut s = SeenIds::new(2);
        assert!(s.first_time("a"));
        assert!(!s.first_time("a"));
        assert!(s.first_time("b"));
        assert!(s.first_time("c"));
        assert!(s.first_time("a"), "a fell out of the window");
        assert!(!s.first_time("c"));
    }
}
