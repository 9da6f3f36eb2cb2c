//! Open-loop schedule: request k of a connection is due at `start + offset + k * interval`.
//! Latency is measured from the due time, so a stalled server is charged for every request
//! that should have been sent meanwhile (no coordinated omission).

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Schedule {
    start: Instant,
    offset_s: f64,
    interval_s: f64,
    next: u64,
}

impl Schedule {
    /// Schedule of connection `index` out of `connections` sharing `rate` requests/s in total.
    /// Connections are staggered evenly so that the aggregate is smooth.
    pub fn new(start: Instant, rate: f64, connections: usize, index: usize) -> Self {
        let per_conn = rate / connections as f64;
        Schedule {
            start,
            offset_s: index as f64 / rate,
            interval_s: 1.0 / per_conn,
            next: 0,
        }
    }

    /// Due time of the k-th request.
    pub fn due(&self, k: u64) -> Instant {
        self.start + Duration::from_secs_f64(self.offset_s + k as f64 * self.interval_s)
    }

    /// Due time of the next request; advances the schedule.
    pub fn next_due(&mut self) -> Instant {
        let t = self.due(self.next);
        self.next += 1;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_connection_is_evenly_spaced() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, 100.0, 1, 0);
        assert_eq!(s.next_due(), t0);
        assert_eq!(s.next_due() - t0, Duration::from_millis(10));
        assert_eq!(s.next_due() - t0, Duration::from_millis(20));
        assert_eq!(s.due(100) - t0, Duration::from_secs(1));
    }

    #[test]
    fn connections_share_the_rate_and_are_staggered() {
        let t0 = Instant::now();
        let conns = 4;
        let rate = 1000.0;
        let mut all = Vec::new();
        for i in 0..conns {
            let mut s = Schedule::new(t0, rate, conns, i);
            for _ in 0..250 {
                all.push(s.next_due() - t0);
            }
        }
        all.sort();
        // 1000 requests due within one second, 1 ms apart.
        assert_eq!(all.len(), 1000);
        for (k, d) in all.iter().enumerate() {
            let want = Duration::from_micros(k as u64 * 1000);
            let diff = d.abs_diff(want);
            assert!(diff < Duration::from_micros(2), "k={k} d={d:?}");
        }
        assert!(all[999] < Duration::from_secs(1));
    }
}
