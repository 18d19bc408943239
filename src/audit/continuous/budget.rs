//! The audit's API request budget: at most `rate` requests per second, evenly spaced, so
//! a full pass over 50,000 Secrets never shows up as a burst on the API server.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

pub struct Budget {
    ticks: Interval,
}

/// The slowest rate accepted: one request a minute.
const MIN_RATE: f64 = 1.0 / 60.0;

impl Budget {
    pub fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() {
            rate.max(MIN_RATE)
        } else {
            MIN_RATE
        };
        let mut ticks =
            tokio::time::interval_at(Instant::now(), Duration::from_secs_f64(1.0 / rate));
        // After a quiet spell, requests resume at the rate: no burst to catch up.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { ticks }
    }

    /// Waits until one more request is allowed.
    pub async fn take(&mut self) {
        self.ticks.tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_at_the_rate_without_bursts() {
        let mut budget = Budget::new(4.0);
        let start = Instant::now();
        for _ in 0..9 {
            budget.take().await;
        }
        // The first is immediate, then one every 250 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(2_000));
        tokio::time::sleep(Duration::from_secs(10)).await;
        let quiet = Instant::now();
        for _ in 0..3 {
            budget.take().await;
        }
        assert!(
            quiet.elapsed() >= Duration::from_millis(500),
            "{:?}",
            quiet.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nonsense_rates_mean_one_request_a_minute() {
        for rate in [0.0, -1.0, f64::NAN] {
            let mut budget = Budget::new(rate);
            budget.take().await;
            let start = Instant::now();
            budget.take().await;
            assert_eq!(start.elapsed(), Duration::from_secs(60));
        }
    }
}
