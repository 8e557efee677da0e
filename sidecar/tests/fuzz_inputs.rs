//! Bounded fuzzing (proptest, a fixed number of cases per run) of the two inputs an outsider
//! controls: routing tables (the ConfigMap) and request bodies checked by a contract. Nothing may
//! panic; an accepted table must survive its own serialisation.

use modeldeploy_sidecar::contract::{parse_body, Contract};
use modeldeploy_sidecar::routing::{ContractSettings, Policy, RoutingTable};
use proptest::prelude::*;
use serde_json::{json, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<i64>().prop_map(|i| json!(i)),
        "[ -~]{0,12}".prop_map(Value::String),
        Just(json!("http://x:1")),
        Just(json!("aaaa")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("model".to_string()),
                    Just("namespace".to_string()),
                    Just("stable".to_string()),
                    Just("canary".to_string()),
                    Just("shadow".to_string()),
                    Just("revision".to_string()),
                    Just("url".to_string()),
                    Just("weight".to_string()),
                    Just("percent".to_string()),
                    Just("guard".to_string()),
                    Just("window".to_string()),
                    Just("minRequests".to_string()),
                    Just("dataPath".to_string()),
                    Just("contract".to_string()),
                    Just("schema".to_string()),
                    Just("drift".to_string()),
                    Just("features".to_string()),
                    Just("buckets".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn valid_table() -> Value {
    json!({
        "model": "iris", "namespace": "ml", "generation": 7,
        "stable": {"revision": "aaaa", "url": "http://iris-aaaa.ml.svc:8080"},
        "canary": {"revision": "bbbb", "url": "http://iris-bbbb.ml.svc:8080", "weight": 10},
        "shadow": {"revision": "cccc", "url": "http://iris-cccc.ml.svc:8080", "percent": 50},
        "stickyHeader": "x-modeldeploy-key",
        "comparison": {"mode": "numeric", "tolerance": 1e-6},
        "guard": {"window": 20, "maxErrorRatio": 0.5, "minRequests": 5},
        "dataPath": {
            "contract": {"schema": {"type": "object", "required": ["features"]}, "policy": "reject"},
            "predictionLog": {"sampleRate": 0.5, "sink": "stdout", "redact": ["ssn"]},
            "drift": {"features": [{"name": "sl", "path": "/features/*/0", "buckets": [4.5, 5, 5.5]}]}
        }
    })
}

/// Replace the value at a random path of the valid table by an arbitrary one.
fn mutate(node: &mut Value, path: &[usize], replacement: Value) {
    let Some((step, rest)) = path.split_first() else {
        *node = replacement;
        return;
    };
    match node {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(step % m.len()).cloned().unwrap_or_default();
            if let Some(child) = m.get_mut(&key) {
                mutate(child, rest, replacement);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let len = a.len();
            mutate(&mut a[step % len], rest, replacement);
        }
        other => *other = replacement,
    }
}

fn round_trips(value: &Value) -> Result<(), TestCaseError> {
    let text = serde_json::to_vec(value).unwrap();
    if let Ok(table) = RoutingTable::from_json(&text) {
        let again = serde_json::to_vec(&table).unwrap();
        let reparsed = RoutingTable::from_json(&again);
        prop_assert_eq!(
            reparsed.as_ref().ok(),
            Some(&table),
            "{}",
            String::from_utf8_lossy(&again)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = RoutingTable::from_json(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        round_trips(&value)?;
    }

    #[test]
    fn mutated_valid_tables_are_parsed_or_refused_with_a_field(
        path in proptest::collection::vec(any::<usize>(), 0..5),
        replacement in arb_json(),
    ) {
        let mut value = valid_table();
        mutate(&mut value, &path, replacement);
        match RoutingTable::from_json(&serde_json::to_vec(&value).unwrap()) {
            Ok(_) => round_trips(&value)?,
            Err(e) => prop_assert!(!e.0.is_empty()),
        }
    }

    #[test]
    fn arbitrary_schemas_and_bodies_never_panic(schema in arb_json(), body in arb_json()) {
        if let Value::Object(schema) = schema {
            if let Ok(contract) = Contract::new(ContractSettings { schema, policy: Policy::Reject }) {
                let text = serde_json::to_vec(&body).unwrap();
                let _ = contract.check(&parse_body(&text));
            }
        }
    }
}

#[test]
fn the_valid_table_parses() {
    let table = RoutingTable::from_json(&serde_json::to_vec(&valid_table()).unwrap()).unwrap();
    assert_eq!(table.canary.unwrap().weight, 10.0);
    assert_eq!(
        table.data_path.drift.unwrap().features[0].buckets,
        vec![4.5, 5.0, 5.5]
    );
}
