//! A token bucket per socket: one client flooding frames is closed instead of eating the
//! replica's CPU (the 10,000 frames/s case).

use std::time::Instant;

/// Frames a client may still send.
#[derive(Debug)]
pub struct FrameBudget {
    tokens: f32,
    per_sec: f32,
    burst: f32,
    last: Instant,
}

impl FrameBudget {
    /// `per_sec` sustained, twice that as burst.
    pub fn new(per_sec: u32) -> Self {
        let per_sec = per_sec.max(1) as f32;
        Self {
            tokens: per_sec * 2.0,
            per_sec,
            burst: per_sec * 2.0,
            last: Instant::now(),
        }
    }

    /// Spends one frame; false when the budget is exhausted.
    pub fn spend(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f32() * self.per_sec;
        self.last = now;
        self.tokens = (self.tokens + refill).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_and_a_flood_does_not() {
        let mut b = FrameBudget::new(50);
        assert!((0..100).all(|_| b.spend()));
        assert!(!(0..10).all(|_| b.spend()));
    }
}
