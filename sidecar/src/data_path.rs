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
