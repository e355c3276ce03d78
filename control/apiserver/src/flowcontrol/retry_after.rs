//! The `Retry-After` of a 429 (upstream's `dropped_requests_tracker.go`): per priority level,
//! one second while few requests are dropped; doubled (up to 32) when in the last
//! `Retry-After` seconds at least three times that many were, and brought down a second at a
//! time once drops are fewer than it. Clients that honour it (client-go does) spread out the
//! retries of an overloaded level instead of hammering it.

use std::collections::HashMap;

use parking_lot::Mutex;

const MAX_RETRY_AFTER: i64 = 32;

struct Stats {
    /// (second, drops) of past seconds, oldest first.
    history: Vec<(i64, i64)>,
    current_second: i64,
    current_count: i64,
    retry_after: i64,
    updated_at: i64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            history: Vec::new(),
            current_second: 0,
            current_count: 0,
            retry_after: 1,
            updated_at: 0,
        }
    }

    fn record(&mut self, now: i64) {
        if self.current_second == now {
            self.current_count += 1;
            return;
        }
        self.push_history(self.current_second, self.current_count);
        self.current_second = now;
        self.current_count = 1;
        self.update(now);
    }

    fn push_history(&mut self, second: i64, count: i64) {
        self.history.push((second, count));
        let keep = (2 * self.retry_after).min(MAX_RETRY_AFTER);
        let start = self
            .history
            .iter()
            .position(|(s, _)| second - s <= keep)
            .unwrap_or(self.history.len());
        self.history.drain(..start);
    }

    fn update(&mut self, now: i64) {
        let mut dropped = 0;
        for &(second, count) in self.history.iter().rev() {
            if now - second > self.retry_after {
                break;
            }
            if second < now {
                dropped += count;
            }
        }
        if now - self.updated_at >= self.retry_after && dropped >= 3 * self.retry_after {
            self.retry_after = (self.retry_after * 2).min(MAX_RETRY_AFTER);
            self.updated_at = now;
            return;
        }
        if dropped < self.retry_after && self.retry_after > 1 {
            self.retry_after -= 1;
        }
    }
}

#[derive(Default)]
pub struct DroppedRequests {
    levels: Mutex<HashMap<String, Stats>>,
}

impl DroppedRequests {
    /// A request of `level` was refused at `now` (Unix seconds).
    pub fn record(&self, level: &str, now: i64) {
        self.levels
            .lock()
            .entry(level.to_string())
            .or_insert_with(Stats::new)
            .record(now);
    }

    /// The seconds to send in `Retry-After`.
    pub fn retry_after(&self, level: &str) -> i64 {
        self.levels.lock().get(level).map_or(1, |s| s.retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_under_sustained_drops_and_recovers() {
        let d = DroppedRequests::default();
        assert_eq!(d.retry_after("l"), 1);
        // Ten drops a second: after the first second's are seen, 1 → 2 → 4 → 8 as each window
        // of the current value holds three times as many.
        let mut now = 1000;
        for _ in 0..10 {
            for _ in 0..10 {
                d.record("l", now);
            }
            now += 1;
        }
        let high = d.retry_after("l");
        assert!(high >= 4, "{high}");
        assert!(high <= MAX_RETRY_AFTER);
        // One drop every other second: fewer than it in its window, so back down a second
        // at a time (one drop every second would hold it where it is, as upstream's does).
        for _ in 0..80 {
            now += 2;
            d.record("l", now);
        }
        assert_eq!(d.retry_after("l"), 1);
        assert_eq!(d.retry_after("other"), 1);
    }
}
