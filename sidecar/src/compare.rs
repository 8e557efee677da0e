//! Comparison of a shadow response with the primary response.
//!
//! Status codes must be equal. Bodies that both parse as JSON are compared structurally: `exact`
//! (JSON equality; 1 == 1.0) or `numeric` (numbers within an absolute tolerance, everything else
//! equal); other bodies byte for byte.

use serde_json::{Number, Value};

use crate::routing::CompareMode;

/// The label values of `modeldeploy_shadow_requests_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    Mismatch,
    Error,
    Dropped,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Verdict::Match,
        Verdict::Mismatch,
        Verdict::Error,
        Verdict::Dropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::Mismatch => "mismatch",
            Verdict::Error => "error",
            Verdict::Dropped => "dropped",
        }
    }
}

fn numbers_equal(a: &Number, b: &Number, mode: CompareMode, tolerance: f64) -> bool {
    if mode == CompareMode::Exact {
        if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
            return x == y;
        }
        if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
            return x == y;
        }
        return a.as_f64() == b.as_f64();
    }
    let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
        return false;
    };
    if x.is_infinite() || y.is_infinite() {
        return x == y;
    }
    (x - y).abs() <= tolerance
}

/// Structural equality of two parsed JSON values, numbers within `tolerance` in numeric mode.
pub fn json_equal(a: &Value, b: &Value, mode: CompareMode, tolerance: f64) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => numbers_equal(x, y, mode, tolerance),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w, mode, tolerance)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(v, w)| json_equal(v, w, mode, tolerance))
        }
        _ => a == b,
    }
}

/// Match or Mismatch for two (status, body) pairs (a failed shadow is the caller's Error).
pub fn compare_responses(
    primary: (u16, &[u8]),
    shadow: (u16, &[u8]),
    mode: CompareMode,
    tolerance: f64,
) -> Verdict {
    if primary.0 != shadow.0 {
        return Verdict::Mismatch;
    }
    if primary.1 == shadow.1 {
        return Verdict::Match;
    }
    let (Ok(p), Ok(s)) = (
        serde_json::from_slice::<Value>(primary.1),
        serde_json::from_slice::<Value>(shadow.1),
    ) else {
        return Verdict::Mismatch;
    };
    if json_equal(&p, &s, mode, tolerance) {
        Verdict::Match
    } else {
        Verdict::Mismatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn exact_and_numeric() {
        assert!(json_equal(&json!(1), &json!(1.0), CompareMode::Exact, 0.0));
        assert!(!json_equal(
            &json!([0.1]),
            &json!([0.1000001]),
            CompareMode::Exact,
            1.0
        ));
        assert!(json_equal(
            &json!({"p": [0.1]}),
            &json!({"p": [0.1000001]}),
            CompareMode::Numeric,
            1e-6
        ));
        assert!(!json_equal(
            &json!({"p": [0.1]}),
            &json!({"p": [0.2]}),
            CompareMode::Numeric,
            1e-6
        ));
        assert!(!json_equal(
            &json!(true),
            &json!(1),
            CompareMode::Numeric,
            1.0
        ));
        assert!(!json_equal(
            &json!({"a": 1}),
            &json!({"b": 1}),
            CompareMode::Exact,
            0.0
        ));
    }

    #[test]
    fn responses() {
        assert_eq!(
            compare_responses((200, b"x"), (500, b"x"), CompareMode::Exact, 0.0),
            Verdict::Mismatch
        );
        assert_eq!(
            compare_responses((200, b"abc"), (200, b"abc"), CompareMode::Exact, 0.0),
            Verdict::Match
        );
        assert_eq!(
            compare_responses((200, b"abc"), (200, b"abd"), CompareMode::Exact, 0.0),
            Verdict::Mismatch
        );
        assert_eq!(
            compare_responses(
                (200, b"[1.0, 2]"),
                (200, b"[1,2.0]"),
                CompareMode::Exact,
                0.0
            ),
            Verdict::Match
        );
    }

    #[test]
    fn json_bodies_are_compared_structurally_and_other_bodies_as_bytes() {
        let primary = br#"[[0.98, 0.02]]"#;
        let shadow = b"[\n  [\n    0.9800000001,\n    0.0199999999\n  ]\n]";
        let numeric =
            |a: &[u8], b: &[u8]| compare_responses((200, a), (200, b), CompareMode::Numeric, 1e-6);
        assert_eq!(numeric(primary, shadow), Verdict::Match);
        assert_eq!(
            compare_responses((200, primary), (200, shadow), CompareMode::Exact, 1e-6),
            Verdict::Mismatch
        );
        assert_eq!(numeric(b"ok", b"ok"), Verdict::Match);
        assert_eq!(numeric(b"ok", b"OK"), Verdict::Mismatch);
        // One side JSON, the other not even UTF-8: never equal.
        assert_eq!(numeric(b"[1]", b"\xff"), Verdict::Mismatch);
        assert_eq!(
            compare_responses((200, b"[1]"), (400, b"[1]"), CompareMode::Exact, 0.0),
            Verdict::Mismatch
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-1e6f64..1e6).prop_map(|f| json!(f)),
            any::<i32>().prop_map(|i| json!(i)),
            "[a-z]{0,5}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-c]", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn equality_is_reflexive_and_symmetric(a in arb_json(), b in arb_json(), tol in 0.0f64..1.0) {
            prop_assert!(json_equal(&a, &a, CompareMode::Exact, 0.0));
            prop_assert!(json_equal(&a, &a, CompareMode::Numeric, tol));
            prop_assert_eq!(json_equal(&a, &b, CompareMode::Numeric, tol), json_equal(&b, &a, CompareMode::Numeric, tol));
            if json_equal(&a, &b, CompareMode::Exact, 0.0) {
                prop_assert!(json_equal(&a, &b, CompareMode::Numeric, tol));
            }
        }
    }
}
