//! Where routing tables come from: a file (polled) or the ConfigMap watch (configmap.rs); both
//! hand the bytes to `apply_routing`, which keeps the last good table on bad input.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::proxy::App;
use crate::routing::RoutingTable;

const LOG: &str = "modeldeploy.sidecar.routing";

/// Parse, check and put a table in force; an invalid one is logged and counted, never applied.
pub fn apply_routing(app: &App, content: &[u8], source: &str) {
    let result = RoutingTable::from_json(content)
        .map_err(|e| e.to_string())
        .and_then(|table| app.router.check(&table).map(|_| table).map_err(|e| e.0))
        .and_then(|table| {
            let prepared = app.data_path.prepare(&table.data_path).map_err(|e| e.0)?;
            Ok((table, prepared))
        });
    match result {
        Ok((table, prepared)) => {
            app.router.apply(table);
            app.data_path.apply(prepared);
        }
        Err(e) => {
            app.metrics.routing_errors.inc();
            crate::error!(
                LOG,
                "routing table from {source} rejected, keeping the one in force: {e}"
            );
        }
    }
}

/// Polls a routing file; applies its content when the bytes change.
pub struct FileWatcher {
    path: PathBuf,
    last: Option<Vec<u8>>,
    missing_logged: bool,
}

impl FileWatcher {
    pub fn new(path: PathBuf) -> Self {
        FileWatcher {
            path,
            last: None,
            missing_logged: false,
        }
    }

    pub fn check(&mut self, app: &App) {
        let content = match std::fs::read(&self.path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.missing_logged {
                    crate::warn!(
                        LOG,
                        "routing file {} does not exist (yet); keeping the table in force",
                        self.path.display()
                    );
                    self.missing_logged = true;
                }
                return;
            }
            Err(e) => {
                crate::error!(LOG, "cannot read routing file {}: {e}", self.path.display());
                return;
            }
        };
        self.missing_logged = false;
        if self.last.as_deref() == Some(&content[..]) {
            return;
        }
        apply_routing(app, &content, &format!("file {}", self.path.display()));
        self.last = Some(content);
    }

    pub async fn run(mut self, app: Arc<App>, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            self.check(&app);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use serde_json::{json, Value};

    use super::*;
    use crate::server::build_app;
    use crate::settings::{load, Loaded};

    pub(crate) fn app() -> Arc<App> {
        let env: HashMap<String, String> = [
            ("MODELDEPLOY_MODEL", "iris"),
            ("MODELDEPLOY_NAMESPACE", "ml"),
            ("MODELDEPLOY_REVISION", "aaaa"),
            ("MODELDEPLOY_UPSTREAM", "http://127.0.0.1:3000"),
            ("MODELDEPLOY_ROUTING_CONFIGMAP", "iris-routing"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let Loaded::Ready(settings) = load(&[], &env) else {
            panic!("settings refused")
        };
        build_app(*settings)
    }

    pub(crate) fn good() -> Value {
        json!({
            "model": "iris", "namespace": "ml", "generation": 3,
            "stable": {"revision": "aaaa", "url": "http://iris-aaaa.ml.svc:8080"},
            "canary": {"revision": "bbbb", "url": "http://iris-bbbb.ml.svc:8080", "weight": 10},
            "shadow": {"revision": "cccc", "url": "http://iris-cccc.ml.svc:8080", "percent": 50},
            "dataPath": {"contract": {"schema": {"type": "object"}, "policy": "reject"}},
        })
    }

    fn with(key: &str, value: Value) -> Vec<u8> {
        let mut doc = good();
        doc[key] = value;
        doc.to_string().into_bytes()
    }

    /// Every content that must not replace the table in force, with why.
    fn bad_contents() -> Vec<(String, Vec<u8>)> {
        let good_text = good().to_string().into_bytes();
        let mut out = vec![
            ("empty".to_string(), vec![]),
            ("not JSON".into(), b"{not json".to_vec()),
            ("not UTF-8".into(), vec![0xff, 0xfe, 0x00]),
            (
                "cut short".into(),
                good_text[..good_text.len() / 2].to_vec(),
            ),
            (
                "nested deeply".into(),
                [b"[".repeat(5000), b"]".repeat(5000)].concat(),
            ),
            ("a list".into(), b"[]".to_vec()),
            ("another model".into(), with("model", json!("other"))),
            ("another namespace".into(), with("namespace", json!("prod"))),
            (
                "a log file that cannot be opened".into(),
                with(
                    "dataPath",
                    json!({"predictionLog": {"sampleRate": 1, "sink": "file", "path": "/proc/version/p.jsonl"}}),
                ),
            ),
        ];
        let vectors =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contract/vectors/invalid");
        for entry in std::fs::read_dir(vectors).unwrap() {
            let path = entry.unwrap().path();
            let vector: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            out.push((
                path.display().to_string(),
                vector["table"].to_string().into_bytes(),
            ));
        }
        out
    }

    #[test]
    fn bad_content_is_counted_and_the_last_good_table_stays() {
        for (why, content) in bad_contents() {
            let app = app();
            apply_routing(&app, good().to_string().as_bytes(), "test");
            let in_force = app.router.table().expect("the good table is in force");
            assert_eq!(app.metrics.routing_errors.get(), 0);
            apply_routing(&app, &content, "test");
            assert_eq!(app.metrics.routing_errors.get(), 1, "{why}");
            let after = app.router.table().unwrap();
            assert!(Arc::ptr_eq(&after, &in_force), "{why}: the table changed");
            assert!(
                app.data_path.active().contract.is_some(),
                "{why}: the data path changed"
            );
        }
    }

    #[test]
    fn a_good_table_replaces_the_one_in_force() {
        let app = app();
        apply_routing(&app, good().to_string().as_bytes(), "test");
        apply_routing(&app, &with("generation", json!(4)), "test");
        assert_eq!(app.router.table().unwrap().generation, 4);
        apply_routing(&app, &with("dataPath", json!({})), "test");
        assert!(app.data_path.active().contract.is_none());
        assert_eq!(app.metrics.routing_errors.get(), 0);
    }
}
