//! Retry delays with decorrelated jitter: after a server restart, agents
//! that failed together retry at scattered times instead of in lockstep.
//!
//! Each delay is drawn uniformly from `[min, 3 × previous delay]`, capped at
//! `max` (the "decorrelated jitter" of the AWS architecture blog's
//! "Exponential Backoff And Jitter"). The `backon` crate's jitter adds up to
//! the whole delay on top of it (so its cap is not a bound) and is neither
//! full nor decorrelated, hence these few lines over `fastrand`.

use std::time::Duration;

/// A sequence of jittered retry delays, from `min` up to at most `max`;
/// [`Backoff::reset`] after a success starts it over.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    previous: Duration,
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// Delays between `min` and `max` (`max` is raised to `min` if below
    /// it), randomly seeded.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff::with_rng(min, max, fastrand::Rng::new())
    }

    /// The same with a fixed seed: the same seed gives the same delays.
    pub fn with_seed(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff::with_rng(min, max, fastrand::Rng::with_seed(seed))
    }

    fn with_rng(min: Duration, max: Duration, rng: fastrand::Rng) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            previous: min,
            failures: 0,
            rng,
        }
    }

    /// The delay before the next attempt, after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let low = self.min.as_secs_f64();
        let high = (self.previous.as_secs_f64() * 3.0).min(self.max.as_secs_f64());
        let delay = Duration::from_secs_f64(low + (high - low).max(0.0) * self.rng.f64());
        self.previous = delay.clamp(self.min, self.max);
        self.previous
    }

    /// Failures since the last [`Backoff::reset`].
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// After a success: the next delay is drawn from `[min, 3 × min]` again.
    pub fn reset(&mut self) {
        self.previous = self.min;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    #[test]
    fn delays_stay_within_min_and_max_and_reach_the_cap() {
        let mut reached_half_the_cap = 0;
        for seed in 0..200 {
            let mut b = Backoff::with_seed(MIN, MAX, seed);
            let delays: Vec<Duration> = (0..60).map(|_| b.next_delay()).collect();
            assert!(delays.iter().all(|d| (MIN..=MAX).contains(d)), "{delays:?}");
            assert!(delays[0] <= MIN * 3, "first delay {:?}", delays[0]);
            assert_eq!(b.failures(), 60);
            if delays.iter().any(|d| *d > MAX / 2) {
                reached_half_the_cap += 1;
            }
        }
        // The delays grow (a random walk drifting up, not a doubling).
        assert!(reached_half_the_cap > 150, "{reached_half_the_cap} of 200");
    }

    #[test]
    fn different_agents_draw_different_delays() {
        let firsts: Vec<Vec<Duration>> = (0..50)
            .map(|seed| {
                let mut b = Backoff::with_seed(MIN, MAX, seed);
                (0..5).map(|_| b.next_delay()).collect()
            })
            .collect();
        let mut distinct = firsts.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), firsts.len(), "two seeds in lockstep");
        // Spread over the first draw's range, not bunched at one end.
        let first: Vec<f64> = firsts.iter().map(|d| d[0].as_secs_f64()).collect();
        let lowest = first.iter().copied().fold(f64::MAX, f64::min);
        let highest = first.iter().copied().fold(0.0, f64::max);
        assert!(lowest < 0.15 && highest > 0.25, "{first:?}");
        // Randomly seeded ones differ too.
        let a: Vec<Duration> = {
            let mut b = Backoff::new(MIN, MAX);
            (0..5).map(|_| b.next_delay()).collect()
        };
        let b: Vec<Duration> = {
            let mut b = Backoff::new(MIN, MAX);
            (0..5).map(|_| b.next_delay()).collect()
        };
        assert_ne!(a, b);
    }

    #[test]
    fn reset_starts_over_from_the_minimum() {
        for seed in 0..100 {
            let mut b = Backoff::with_seed(MIN, MAX, seed);
            for _ in 0..30 {
                b.next_delay();
            }
            b.reset();
            assert_eq!(b.failures(), 0);
            let d = b.next_delay();
            assert!((MIN..=MIN * 3).contains(&d), "seed {seed}: {d:?}");
            assert_eq!(b.failures(), 1);
        }
    }

    #[test]
    fn max_below_min_means_a_constant_delay() {
        let mut b = Backoff::with_seed(MAX, MIN, 7);
        assert!((0..10).all(|_| b.next_delay() == MAX));
    }
}
