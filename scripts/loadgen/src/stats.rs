//! Latency recording (HdrHistogram in microseconds), process memory from `/proc`, the
//! machine's load average, and the open-loop schedule.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Highest latency a histogram holds (longer values are clamped to it): 5 minutes.
const MAX_MICROS: u64 = 300_000_000;

/// A histogram shared by many tasks.
#[derive(Clone)]
pub(crate) struct Recorder(Arc<Mutex<Histogram<u64>>>);

impl Recorder {
    pub(crate) fn new() -> Self {
        let h = Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds");
        Self(Arc::new(Mutex::new(h)))
    }

    /// Records `d` (at least 1 us, at most [`MAX_MICROS`]).
    pub(crate) fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        let mut h = self.0.lock().expect("histogram lock");
        let _ = h.record(us);
    }

    /// Records the time from `intended` until now.
    pub(crate) fn record_since(&self, intended: Instant) {
        self.record(Instant::now().saturating_duration_since(intended));
    }

    pub(crate) fn summary(&self) -> Latency {
        let h = self.0.lock().expect("histogram lock");
        Latency::of(&h)
    }
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Latency {
    pub(crate) count: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) mean_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }

    /// `"<p50> / <p99>"`, as the report's tables and summary show a latency.
    pub(crate) fn p50_p99(&self) -> String {
        format!("{} / {}", fmt_ms(self.p50_ms), fmt_ms(self.p99_ms))
    }
}

/// Formats milliseconds with a sensible number of digits.
pub(crate) fn fmt_ms(ms: f64) -> String {
    if ms.is_nan() {
        "-".into()
    } else if ms < 1.0 {
        format!("{ms:.3} ms")
    } else if ms < 100.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// `VmRSS` of a process in KiB (`/proc/<pid>/status`).
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// A `... kB` field of `/proc/<pid>/status`.
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let s = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read {path} (is the process running?): {e}"))?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{path} has no {field}"))
}

/// A `... kB` field of `/proc/meminfo`.
pub(crate) fn proc_meminfo_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The soft limit of open files of a process (`/proc/<pid>/limits`).
pub(crate) fn open_files_limit(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Open file descriptors of a process.
pub(crate) fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn load_average() -> [f64; 3] {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = s.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN));
    [
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
        it.next().unwrap_or(f64::NAN),
    ]
}

/// An open-loop schedule: event `k` is due at `start + k / rate`, whatever happened to
/// earlier events. Latency is measured from the due time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub(crate) start: Instant,
    pub(crate) rate: f64,
}

impl Schedule {
    pub(crate) fn new(rate: f64) -> Self {
        // A little in the future so the first events are not already late.
        Self {
            start: Instant::now() + Duration::from_millis(20),
            rate,
        }
    }

    pub(crate) fn due(&self, k: u64) -> Instant {
        self.start + Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// Events in `duration`.
    pub(crate) fn count(&self, duration: Duration) -> u64 {
        (self.rate * duration.as_secs_f64()).round().max(1.0) as u64
    }
}

/// Starts `make(k, due)` for each `k < n` at its due time, at most `max_in_flight` at once,
/// and returns when all have finished. The pacing runs on its own thread with the OS's
/// sleep (~0.1 ms late at most) rather than on the runtime's 1 ms timer wheel, so the
/// generator adds as little as it can to latencies measured from the due time.
pub(crate) async fn paced<F, Fut>(
    schedule: Schedule,
    n: u64,
    max_in_flight: usize,
    make: F,
) -> anyhow::Result<()>
where
    F: Fn(u64, Instant) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let permits = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let slots = permits.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for k in 0..n {
            let due = schedule.due(k);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let permit = handle.block_on(slots.clone().acquire_owned())?;
            let work = make(k, due);
            handle.spawn(async move {
                work.await;
                drop(permit);
            });
        }
        Ok(())
    })
    .await??;
    let _all = permits.acquire_many(max_in_flight as u32).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let r = Recorder::new();
        for ms in 1..=100 {
            r.record(Duration::from_millis(ms));
        }
        let s = r.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 100.0).abs() < 0.1, "{s:?}");
    }

    #[test]
    fn schedule_is_independent_of_replies() {
        let s = Schedule::new(1000.0);
        assert_eq!(s.due(1000) - s.due(0), Duration::from_secs(1));
        assert_eq!(s.count(Duration::from_secs(2)), 2000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paced_calls_start_at_their_due_times() {
        let late = Recorder::new();
        let schedule = Schedule::new(1000.0);
        let r = late.clone();
        let started = std::time::Instant::now();
        paced(schedule, 200, 16, move |_, due| {
            let r = r.clone();
            async move { r.record_since(due) }
        })
        .await
        .expect("paced");
        let s = late.summary();
        assert_eq!(s.count, 200);
        // Spread over the schedule (199 ms), not fired at once; and on time, with room
        // for a loaded CI machine.
        assert!(started.elapsed() >= Duration::from_millis(199));
        assert!(s.p50_ms < 20.0, "{s:?}");
    }

    #[test]
    fn own_rss_is_readable() {
        assert!(rss_kib(std::process::id()).expect("VmRSS") > 0);
        assert!(open_files_limit(std::process::id()).is_some());
    }
}
