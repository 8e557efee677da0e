//! The routing table's `dataPath` guardrails in force: contract, prediction log, drift histograms.
//!
//! Put in force in two steps so that a bad section rejects the whole table: `prepare` compiles
//! the schema, checks the drift pointers and opens the log's sink; `apply` swaps them in.

use std::sync::{Arc, RwLock};

use crate::contract::{is_body_method, parse_body, Body, Contract, Violation};
use crate::drift::FeatureHistograms;
use crate::metrics::Metrics;
use crate::prediction_log::{open_sink, LogConfig, PredictionLog};
use crate::routing::{DataPathSettings, Policy};

#[derive(Debug, Clone, PartialEq)]
pub struct DataPathError(pub String);

/// What the request path reads (swapped as a whole on a table change).
#[derive(Default)]
pub struct Active {
    pub settings: DataPathSettings,
    pub contract: Option<Arc<Contract>>,
    pub log: Option<Arc<LogConfig>>,
}

pub struct Prepared(Active);

pub struct DataPath {
    metrics: Arc<Metrics>,
    pub drift: FeatureHistograms,
    pub predictions: PredictionLog,
    active: RwLock<Arc<Active>>,
}

impl DataPath {
    pub fn new(
        metrics: Arc<Metrics>,
        drift: FeatureHistograms,
        predictions: PredictionLog,
    ) -> Self {
        DataPath {
            metrics,
            drift,
            predictions,
            active: RwLock::default(),
        }
    }

    pub fn active(&self) -> Arc<Active> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Everything `settings` needs, ready to apply; None when it is the section in force.
    pub fn prepare(&self, settings: &DataPathSettings) -> Result<Option<Prepared>, DataPathError> {
        let current = self.active();
        if current.settings == *settings {
            return Ok(None);
        }
        let contract = match &settings.contract {
            None => None,
            Some(c) => match &current.contract {
                Some(existing) if existing.settings == *c => Some(existing.clone()),
                _ => Some(Arc::new(
                    Contract::new(c.clone()).map_err(|e| DataPathError(e.0))?,
                )),
            },
        };
        FeatureHistograms::validate(settings.drift.as_ref()).map_err(|e| DataPathError(e.0))?;
        let log = match &settings.prediction_log {
            None => None,
            Some(s) => {
                let sink = open_sink(s, current.log.as_deref()).map_err(|e| DataPathError(e.0))?;
                Some(Arc::new(LogConfig {
                    settings: s.clone(),
                    sink,
                }))
            }
        };
        Ok(Some(Prepared(Active {
            settings: settings.clone(),
            contract,
            log,
        })))
    }

    pub fn apply(&self, prepared: Option<Prepared>) {
        let Some(Prepared(active)) = prepared else {
            return;
        };
        self.drift.configure(active.settings.drift.as_ref());
        let s = &active.settings;
        crate::info!(
            "modeldeploy.sidecar.datapath",
            "data path in force: contract={} prediction log={} drift features={}",
            s.contract
                .as_ref()
                .map_or("off", |c| if c.policy == Policy::Reject {
                    "reject"
                } else {
                    "observe"
                }),
            s.prediction_log
                .as_ref()
                .map_or("off".to_string(), |l| format!(
                    "{} to {}",
                    l.sample_rate,
                    l.path.clone().unwrap_or_else(|| "stdout".into())
                )),
            s.drift.as_ref().map_or("none".to_string(), |d| d
                .features
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(","))
        );
        if active.contract.is_some() {
            self.metrics.announce_contract();
        }
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(active);
    }

    /// Contract check and drift observation of a body served locally; the Violation to reject.
    pub fn inspect(&self, method: &http::Method, body: &[u8]) -> Option<Violation> {
        let active = self.active();
        if (active.contract.is_none() && !self.drift.active()) || !is_body_method(method) {
            return None;
        }
        let document = parse_body(body);
        if let Some(contract) = &active.contract {
            let violation = contract.check(&document);
            self.metrics
                .observe_contract(violation.as_ref().map(|v| v.field.as_str()));
            if violation.is_some() && contract.policy() == Policy::Reject {
                return violation;
            }
        }
        if let Body::Json(doc) = &document {
            if self.drift.active() {
                self.drift.observe(doc);
            }
        } else if self.drift.active() {
            self.drift.observe(&serde_json::Value::Null);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Base;
    use crate::routing::RoutingTable;
    use serde_json::json;

    fn data_path(metrics: &Arc<Metrics>) -> DataPath {
        DataPath::new(
            metrics.clone(),
            FeatureHistograms::new(Base {
                model: "iris".into(),
                namespace: "ml".into(),
                revision: "aaaa".into(),
            }),
            PredictionLog::start("iris".into(), "ml".into(), metrics.clone(), 4),
        )
    }

    /// A `dataPath` section, parsed as the routing table parses it.
    fn section(data_path: serde_json::Value) -> DataPathSettings {
        let table = json!({
            "model": "iris", "namespace": "ml",
            "stable": {"revision": "aaaa", "url": "http://iris-aaaa.ml.svc:8080"},
            "dataPath": data_path,
        });
        RoutingTable::from_json(table.to_string().as_bytes())
            .unwrap()
            .data_path
    }

    const SCHEMA: &str = r#"{"type": "object", "required": ["features"]}"#;

    fn contract(policy: &str) -> serde_json::Value {
        json!({"schema": serde_json::from_str::<serde_json::Value>(SCHEMA).unwrap(), "policy": policy})
    }

    #[test]
    fn the_contract_is_compiled_once_per_change() {
        let metrics = Arc::new(Metrics::new("iris", "ml", "aaaa"));
        let dp = data_path(&metrics);
        let reject = section(json!({"contract": contract("reject")}));
        dp.apply(dp.prepare(&reject).unwrap());
        let compiled = dp.active().contract.clone().expect("a contract in force");
        assert!(
            dp.prepare(&reject).unwrap().is_none(),
            "the same section: nothing to do"
        );
        let with_log =
            section(json!({"contract": contract("reject"), "predictionLog": {"sampleRate": 0.5}}));
        dp.apply(dp.prepare(&with_log).unwrap());
        let kept = dp.active().contract.clone().unwrap();
        assert!(
            Arc::ptr_eq(&kept, &compiled),
            "an unchanged contract is not recompiled"
        );
        let post = http::Method::POST;
        assert!(dp.inspect(&post, br#"{"rows": 1}"#).is_some());
        assert!(
            dp.inspect(&http::Method::GET, b"").is_none(),
            "no body to check"
        );
        let observe = section(json!({"contract": contract("observe")}));
        dp.apply(dp.prepare(&observe).unwrap());
        assert!(!Arc::ptr_eq(
            dp.active().contract.as_ref().unwrap(),
            &compiled
        ));
        assert!(
            dp.inspect(&post, br#"{"rows": 1}"#).is_none(),
            "observe: counted, passed on"
        );
        let text = metrics.encode();
        let checks = |result: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("modeldeploy_contract_checks_total{")
                        && l.contains(&format!("result=\"{result}\""))
                })
                .map(|l| l.rsplit(' ').next().unwrap().to_string())
        };
        assert_eq!(checks("pass").as_deref(), Some("0"));
        assert_eq!(checks("violation").as_deref(), Some("2"));
        dp.apply(dp.prepare(&section(json!({}))).unwrap());
        assert!(dp.active().contract.is_none() && dp.active().log.is_none());
        dp.predictions.close(std::time::Duration::from_secs(1));
    }

    #[test]
    fn an_unusable_section_is_refused_and_the_one_in_force_stays() {
        let metrics = Arc::new(Metrics::new("iris", "ml", "aaaa"));
        let dp = data_path(&metrics);
        let good = section(json!({"contract": contract("reject")}));
        dp.apply(dp.prepare(&good).unwrap());
        let dir = std::env::temp_dir().join(format!("md-datapath-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("file"), "").unwrap();
        let path = dir.join("file/p.jsonl").display().to_string();
        let bad =
            section(json!({"predictionLog": {"sampleRate": 1, "sink": "file", "path": path}}));
        let Err(err) = dp.prepare(&bad) else {
            panic!("a log file under a regular file was accepted")
        };
        assert!(
            err.0.contains("cannot open prediction log file"),
            "{}",
            err.0
        );
        assert_eq!(dp.active().settings, good);
        dp.predictions.close(std::time::Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(dir);
    }
}
