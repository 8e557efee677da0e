//! The fast guard: stop sending traffic to a failing canary before the operator reacts.
//!
//! The outcomes of the last `window` canary-forwarded requests are kept. Once at least
//! `min_requests` are known and failures / known exceeds `max_error_ratio`, the guard trips and
//! stays tripped (a latch) for this canary revision.

use std::collections::VecDeque;

use crate::routing::GuardSettings;

#[derive(Debug, Clone)]
pub struct CanaryGuard {
    settings: GuardSettings,
    outcomes: VecDeque<bool>,
    failures: usize,
    tripped: bool,
}

impl CanaryGuard {
    pub fn new(settings: GuardSettings) -> Self {
        let capacity = settings.window.min(4096) as usize;
        CanaryGuard {
            settings,
            outcomes: VecDeque::with_capacity(capacity),
            failures: 0,
            tripped: false,
        }
    }

    pub fn settings(&self) -> &GuardSettings {
        &self.settings
    }

    pub fn tripped(&self) -> bool {
        self.tripped
    }

    /// Outcomes currently in the window.
    pub fn observed(&self) -> usize {
        self.outcomes.len()
    }

    /// Failures currently in the window.
    pub fn failures(&self) -> usize {
        self.failures
    }

    pub fn error_ratio(&self) -> f64 {
        if self.outcomes.is_empty() {
            0.0
        } else {
            self.failures as f64 / self.outcomes.len() as f64
        }
    }

    /// Add one canary outcome. Returns true exactly when this outcome trips the guard.
    pub fn record(&mut self, failed: bool) -> bool {
        if self.tripped {
            return false;
        }
        if self.outcomes.len() as u64 >= self.settings.window {
            if let Some(true) = self.outcomes.pop_front() {
                self.failures -= 1;
            }
        }
        self.outcomes.push_back(failed);
        if failed {
            self.failures += 1;
        }
        if self.outcomes.len() as u64 >= self.settings.min_requests
            && self.error_ratio() > self.settings.max_error_ratio
        {
            self.tripped = true;
            return true;
        }
        false
    }

    /// New limits for the same canary, keeping the latest outcomes and the latch.
    pub fn reconfigure(&mut self, settings: GuardSettings) {
        if settings == self.settings {
            return;
        }
        while self.outcomes.len() as u64 > settings.window {
            self.outcomes.pop_front();
        }
        self.failures = self.outcomes.iter().filter(|f| **f).count();
        self.settings = settings;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings(window: u64, ratio: f64, min: u64) -> GuardSettings {
        GuardSettings {
            window,
            max_error_ratio: ratio,
            min_requests: min,
        }
    }

    #[test]
    fn trips_once_enough_failures_are_known() {
        let mut g = CanaryGuard::new(settings(10, 0.5, 4));
        assert!(!g.record(true));
        assert!(!g.record(true));
        assert!(!g.record(true));
        assert!(g.record(true));
        assert!(g.tripped());
        assert!(!g.record(true), "the trip is reported once");
    }

    #[test]
    fn ratio_one_never_trips() {
        let mut g = CanaryGuard::new(settings(5, 1.0, 1));
        for _ in 0..100 {
            assert!(!g.record(true));
        }
    }

    fn arb_settings() -> impl Strategy<Value = GuardSettings> {
        (1u64..30, 0.0f64..=1.0, 0.0f64..1.0).prop_map(|(window, ratio, min_frac)| {
            settings(window, ratio, ((window as f64 * min_frac) as u64).max(1))
        })
    }

    proptest! {
        #[test]
        fn reconfiguring_keeps_the_latest_outcomes_and_the_latch(
            first in arb_settings(), second in arb_settings(),
            before in proptest::collection::vec(any::<bool>(), 0..40),
        ) {
            let mut g = CanaryGuard::new(first.clone());
            let mut recorded = Vec::new();
            for failed in before {
                if g.tripped() { break; }
                g.record(failed);
                recorded.push(failed);
            }
            let was_tripped = g.tripped();
            g.reconfigure(second.clone());
            prop_assert_eq!(g.tripped(), was_tripped);
            let keep = first.window.min(second.window) as usize;
            let window = &recorded[recorded.len().saturating_sub(keep)..];
            prop_assert_eq!(g.observed(), window.len());
            prop_assert_eq!(g.failures(), window.iter().filter(|f| **f).count());
            prop_assert_eq!(g.settings(), &second);
        }

        #[test]
        fn a_tripped_guard_stays_tripped(s in arb_settings(), after in proptest::collection::vec(any::<bool>(), 0..40)) {
            let mut g = CanaryGuard::new(s.clone());
            if s.max_error_ratio >= 1.0 {
                prop_assert!(!(0..s.window * 2).any(|_| g.record(true)));
                return Ok(());
            }
            while !g.tripped() {
                g.record(true);
            }
            prop_assert!(!after.iter().any(|f| g.record(*f)));
            prop_assert!(g.tripped());
        }

        #[test]
        fn window_matches_a_model(outcomes in proptest::collection::vec(any::<bool>(), 0..200),
                                  window in 1u64..30, ratio in 0.0f64..1.0, min_frac in 0.0f64..1.0) {
            let min = ((window as f64 * min_frac) as u64).max(1);
            let mut g = CanaryGuard::new(settings(window, ratio, min));
            let mut tripped_at = None;
            for (i, failed) in outcomes.iter().enumerate() {
                let before = g.tripped();
                let t = g.record(*failed);
                if !before {
                    let start = (i + 1).saturating_sub(window as usize);
                    let seen = &outcomes[start..=i];
                    let fails = seen.iter().filter(|f| **f).count();
                    prop_assert_eq!(g.observed(), seen.len());
                    prop_assert_eq!(g.failures(), fails);
                    let expect = seen.len() as u64 >= min && fails as f64 / seen.len() as f64 > ratio;
                    prop_assert_eq!(t, expect);
                    if t { tripped_at = Some(i); }
                } else {
                    prop_assert!(!t);
                }
            }
            prop_assert_eq!(g.tripped(), tripped_at.is_some());
        }
    }
}
