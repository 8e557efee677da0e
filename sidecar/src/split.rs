//! Traffic split decisions: canary by weight (random or sticky on a key), shadow copies by percent.
//!
//! A request goes to the canary when `u * 100 < weight` for a number `u` uniform in [0, 1): a fresh
//! random number, or, when the sticky header is present, a 56-bit BLAKE2b hash of its value
//! (digest size 7, personalisation `modeldeploy`: the same function the Python sidecar used, so
//! keys stay on the revision they were on).

use blake2::digest::core_api::{Buffer, UpdateCore, VariableOutputCore};
use blake2::digest::Output;
use blake2::Blake2bVarCore;

const HASH_BYTES: usize = 7; // 56 bits: exact as a float in [0, 1)
const HASH_SCALE: f64 = (1u64 << 56) as f64;

/// A stable point in [0, 1) for `key`, uniform over keys.
pub fn sticky_point(key: &[u8]) -> f64 {
    // Unkeyed BLAKE2b with a 7-byte digest and a persona, as Python's hashlib.blake2b (the keyed
    // `Blake2bMac` would hash a zero key block even for an empty key).
    let mut core = Blake2bVarCore::new_with_params(&[], b"modeldeploy", 0, HASH_BYTES);
    let mut buffer = Buffer::<Blake2bVarCore>::default();
    buffer.digest_blocks(key, |blocks| core.update_blocks(blocks));
    let mut full = Output::<Blake2bVarCore>::default();
    core.finalize_variable_core(&mut buffer, &mut full);
    let mut value: u64 = 0;
    for byte in full.iter().take(HASH_BYTES) {
        value = (value << 8) | u64::from(*byte);
    }
    value as f64 / HASH_SCALE
}

/// True when `point` in [0, 1) falls in the first `percent` percent of the interval.
pub fn below_percent(point: f64, percent: f64) -> bool {
    point * 100.0 < percent
}

/// Whether this request goes to the canary, given the canary weight in percent.
pub fn choose_canary(weight: f64, sticky_key: Option<&[u8]>, random: impl FnOnce() -> f64) -> bool {
    if weight <= 0.0 {
        return false;
    }
    if weight >= 100.0 {
        return true;
    }
    let point = match sticky_key {
        Some(key) => sticky_point(key),
        None => random(),
    };
    below_percent(point, weight)
}

/// Whether this request is copied to the shadow, given the shadow percent.
pub fn choose_shadow(percent: f64, random: impl FnOnce() -> f64) -> bool {
    if percent <= 0.0 {
        return false;
    }
    if percent >= 100.0 {
        return true;
    }
    below_percent(random(), percent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sticky_points_match_the_python_sidecar() {
        // hashlib.blake2b(key, digest_size=7, person=b"modeldeploy"), big-endian / 2**56
        assert_eq!(sticky_point(b"user-1"), PY_USER_1);
        assert_eq!(sticky_point(b""), PY_EMPTY);
    }

    const PY_USER_1: f64 = 0.5359753038308734;
    const PY_EMPTY: f64 = 0.2577044889459684;

    proptest! {
        #[test]
        fn a_key_on_the_canary_stays_there_when_the_weight_grows(key in ".*", w1 in 0.0f64..100.0, dw in 0.0f64..100.0) {
            let w2 = (w1 + dw).min(100.0);
            if choose_canary(w1, Some(key.as_bytes()), || 0.0) {
                prop_assert!(choose_canary(w2, Some(key.as_bytes()), || 0.0));
            }
        }

        #[test]
        fn points_are_in_the_unit_interval(key in proptest::collection::vec(any::<u8>(), 0..64)) {
            let p = sticky_point(&key);
            prop_assert!((0.0..1.0).contains(&p));
        }

        #[test]
        fn zero_and_full_weights_are_absolute(u in 0.0f64..1.0) {
            prop_assert!(!choose_canary(0.0, None, || u));
            prop_assert!(choose_canary(100.0, None, || u));
            prop_assert!(!choose_shadow(0.0, || u));
            prop_assert!(choose_shadow(100.0, || u));
        }
    }

    proptest! {
        #[test]
        fn a_sticky_key_never_draws_a_random_number(key in ".*", weight in 0.0f64..=100.0) {
            let first = choose_canary(weight, Some(key.as_bytes()), || panic!("drew a number"));
            prop_assert_eq!(first, below_percent(sticky_point(key.as_bytes()), weight) || weight >= 100.0);
        }

        #[test]
        fn below_percent_is_the_interval_test(point in 0.0f64..1.0, percent in 0.0f64..=100.0) {
            prop_assert_eq!(below_percent(point, percent), point * 100.0 < percent);
        }
    }

    /// Within 5 standard deviations of n * p (a false failure about once in 3.5 million runs).
    fn within_binomial(hits: usize, n: usize, p: f64) -> bool {
        let n = n as f64;
        (hits as f64 - n * p).abs() <= 5.0 * (n * p * (1.0 - p)).sqrt() + 1.0
    }

    #[test]
    fn random_split_and_shadow_sampling_match_the_percent() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let n = 20_000;
        for percent in [0.5, 3.0, 25.0, 50.0, 77.7, 99.5] {
            let canary = (0..n)
                .filter(|_| choose_canary(percent, None, || rng.gen::<f64>()))
                .count();
            assert!(
                within_binomial(canary, n, percent / 100.0),
                "{percent}: {canary}"
            );
            let shadow = (0..n)
                .filter(|_| choose_shadow(percent, || rng.gen::<f64>()))
                .count();
            assert!(
                within_binomial(shadow, n, percent / 100.0),
                "{percent}: {shadow}"
            );
        }
    }

    #[test]
    fn sticky_keys_spread_like_the_weight() {
        // Over many distinct keys the sticky split is as fair as the random one.
        let n = 20_000;
        for (weight, prefix) in [(1.0, ""), (10.0, "tenant-"), (50.0, "é"), (99.0, "x")] {
            let hits = (0..n)
                .filter(|i| {
                    let key = format!("{prefix}user-{i}");
                    choose_canary(weight, Some(key.as_bytes()), || panic!("drew a number"))
                })
                .count();
            assert!(within_binomial(hits, n, weight / 100.0), "{weight}: {hits}");
        }
    }

    #[test]
    fn random_split_is_near_the_weight() {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        let n = 100_000;
        let hits = (0..n)
            .filter(|_| choose_canary(10.0, None, || rng.gen::<f64>()))
            .count();
        // 10% of 100k: sd ~95, 6 sd bound
        assert!((9_430..=10_570).contains(&hits), "{hits}");
    }
}
