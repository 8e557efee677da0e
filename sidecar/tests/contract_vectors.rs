//! The shared contract vectors (`contract/vectors/`, also loaded by the Python tests in
//! tests/unit/contract): every valid table is accepted, every invalid one is refused and the
//! refusal names the vector's `errorField` (the dotted wire path), as the pydantic model does.

use std::fs;
use std::path::{Path, PathBuf};

use modeldeploy_sidecar::routing::RoutingTable;
use serde_json::Value;

fn vectors(kind: &str) -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contract/vectors")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no vectors in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let text = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let value =
                serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, value)
        })
        .collect()
}

#[test]
fn every_valid_vector_is_accepted() {
    for (path, table) in vectors("valid") {
        if let Err(e) = RoutingTable::from_value(&table) {
            panic!("{} refused: {e}", path.display());
        }
    }
}

#[test]
fn every_invalid_vector_is_refused_at_its_field() {
    let mut wrong = Vec::new();
    for (path, vector) in vectors("invalid") {
        let field = vector["errorField"]
            .as_str()
            .expect("errorField is a string");
        match RoutingTable::from_value(&vector["table"]) {
            Ok(_) => wrong.push(format!("{}: accepted", path.display())),
            Err(e) => {
                if !e.0.iter().any(|error| error.field == field) {
                    wrong.push(format!("{}: want {field}, got {e}", path.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
