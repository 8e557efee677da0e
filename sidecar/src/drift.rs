//! Per-feature input histograms for drift analysis: `modeldeploy_input_feature_value`.
//!
//! Every drift feature has its own buckets (from the routing table), so this is a collector of its
//! own registered in the metrics registry: a Prometheus histogram per feature, labels model,
//! namespace, revision (this sidecar's) and feature, plus
//! `modeldeploy_input_feature_skipped_total{feature, reason=missing|non_numeric}`.
//! A table that changes a feature's buckets or path starts its series afresh; a feature dropped
//! from the table disappears from the exposition.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use serde_json::Value;

use crate::json_pointer::{parse_pointer, select};
use crate::metrics::Base;
use crate::routing::{DriftFeature, DriftSettings};

pub const METRIC: &str = "modeldeploy_input_feature_value";
pub const SKIPPED_METRIC: &str = "modeldeploy_input_feature_skipped";

#[derive(Debug, Clone, PartialEq)]
pub struct DriftConfigError(pub String);

/// A JSON number as a finite f64 (booleans are not numbers).
pub fn numeric(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        _ => None,
    }
}

#[derive(Debug)]
struct Series {
    feature: DriftFeature,
    segments: Vec<String>,
    counts: Vec<u64>, // per bucket, not cumulative; the last is +Inf
    total: f64,
    missing: u64,
    non_numeric: u64,
}

impl Series {
    fn new(feature: DriftFeature, segments: Vec<String>) -> Self {
        let counts = vec![0; feature.buckets.len() + 1];
        Series {
            feature,
            segments,
            counts,
            total: 0.0,
            missing: 0,
            non_numeric: 0,
        }
    }

    fn observe(&mut self, document: &Value) {
        let mut found = Vec::new();
        select(document, &self.segments, &mut found);
        if found.is_empty() {
            self.missing += 1;
        }
        for value in found {
            match numeric(value) {
                None => self.non_numeric += 1,
                Some(x) => {
                    // le semantics: the first bound >= x
                    let i = self.feature.buckets.partition_point(|b| *b < x);
                    self.counts[i] += 1;
                    self.total += x;
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    series: Vec<(String, Series)>,
}

/// The drift histograms of one sidecar: `configure` per table, `observe` per request.
#[derive(Debug, Clone)]
pub struct FeatureHistograms {
    base: Base,
    state: Arc<Mutex<State>>,
}

impl FeatureHistograms {
    pub fn new(base: Base) -> Self {
        FeatureHistograms {
            base,
            state: Arc::default(),
        }
    }

    /// DriftConfigError for a bad pointer or a duplicate name.
    pub fn validate(settings: Option<&DriftSettings>) -> Result<(), DriftConfigError> {
        let mut names = std::collections::HashSet::new();
        for feature in settings.map(|s| s.features.as_slice()).unwrap_or(&[]) {
            if !names.insert(feature.name.as_str()) {
                return Err(DriftConfigError(format!(
                    "dataPath.drift: feature name {} appears twice",
                    crate::routing::py_str(&feature.name)
                )));
            }
            parse_pointer(&feature.path).map_err(|e| {
                DriftConfigError(format!(
                    "dataPath.drift feature {}: {}",
                    crate::routing::py_str(&feature.name),
                    e.0
                ))
            })?;
        }
        Ok(())
    }

    /// Follow the table: keep series whose feature is unchanged, start changed ones afresh.
    pub fn configure(&self, settings: Option<&DriftSettings>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut old: Vec<(String, Series)> = std::mem::take(&mut state.series);
        for feature in settings.map(|s| s.features.as_slice()).unwrap_or(&[]) {
            let kept = old
                .iter()
                .position(|(n, s)| *n == feature.name && s.feature == *feature);
            let series = match kept {
                Some(i) => old.swap_remove(i).1,
                None => Series::new(
                    feature.clone(),
                    parse_pointer(&feature.path).unwrap_or_default(),
                ),
            };
            state.series.push((feature.name.clone(), series));
        }
    }

    pub fn active(&self) -> bool {
        !self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .series
            .is_empty()
    }

    pub fn observe(&self, document: &Value) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (_, series) in state.series.iter_mut() {
            series.observe(document);
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct FeatureLabels {
    model: String,
    namespace: String,
    revision: String,
    feature: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct SkippedLabels {
    model: String,
    namespace: String,
    revision: String,
    feature: String,
    reason: String,
}

impl Collector for FeatureHistograms {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.series.is_empty() {
            return Ok(());
        }
        let labels = |name: &str| FeatureLabels {
            model: self.base.model.clone(),
            namespace: self.base.namespace.clone(),
            revision: self.base.revision.clone(),
            feature: name.to_string(),
        };
        {
            let mut family = encoder.encode_descriptor(
                METRIC,
                "Numeric input values of the drift features (per-feature buckets) in requests served here.",
                None,
                MetricType::Histogram,
            )?;
            for (name, series) in &state.series {
                let label_set = labels(name);
                let metric = family.encode_family(&label_set)?;
                let mut buckets: Vec<(f64, u64)> = series
                    .feature
                    .buckets
                    .iter()
                    .copied()
                    .zip(series.counts.iter().copied())
                    .collect();
                buckets.push((f64::MAX, *series.counts.last().unwrap_or(&0)));
                let count = series.counts.iter().sum();
                let mut metric = metric;
                metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    series.total,
                    count,
                    &buckets,
                    None,
                )?;
            }
        }
        let mut family = encoder.encode_descriptor(
            SKIPPED_METRIC,
            "Drift feature values not observed: missing at the path, or not a finite number.",
            None,
            MetricType::Counter,
        )?;
        for (name, series) in &state.series {
            for (reason, value) in [
                ("missing", series.missing),
                ("non_numeric", series.non_numeric),
            ] {
                let label_set = SkippedLabels {
                    model: self.base.model.clone(),
                    namespace: self.base.namespace.clone(),
                    revision: self.base.revision.clone(),
                    feature: name.clone(),
                    reason: reason.to_string(),
                };
                let metric = family.encode_family(&label_set)?;
                ConstCounter::new(value).encode(metric)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn feature(name: &str, path: &str, buckets: &[f64]) -> DriftFeature {
        DriftFeature {
            name: name.into(),
            path: path.into(),
            buckets: buckets.to_vec(),
        }
    }

    #[test]
    fn buckets_are_cumulative_and_skips_counted() {
        let base = Base {
            model: "iris".into(),
            namespace: "ml".into(),
            revision: "a".into(),
        };
        let h = FeatureHistograms::new(base);
        let settings = DriftSettings {
            features: vec![feature("sl", "/features/*/0", &[5.0, 6.0])],
        };
        h.configure(Some(&settings));
        h.observe(&json!({"features": [[4.0], [5.0], [5.5], [7], ["x"], [true]]}));
        h.observe(&json!({"other": 1}));
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(h.clone()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(r#"modeldeploy_input_feature_value_bucket{le="5.0",model="iris",namespace="ml",revision="a",feature="sl"} 2"#) || text.contains(r#"feature="sl",le="5.0"} 2"#), "{text}");
        assert!(text.contains("modeldeploy_input_feature_value_count{model=\"iris\",namespace=\"ml\",revision=\"a\",feature=\"sl\"} 4"), "{text}");
        assert!(text.contains("modeldeploy_input_feature_value_sum{model=\"iris\",namespace=\"ml\",revision=\"a\",feature=\"sl\"} 21.5"), "{text}");
        assert!(text.contains(r#"reason="non_numeric"} 2"#), "{text}");
        assert!(text.contains(r#"reason="missing"} 1"#), "{text}");
        h.configure(None);
        assert!(!h.active());
    }

    fn exposition(h: &FeatureHistograms) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(h.clone()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    /// The value of the one sample `name{...}` whose labels include every one of `labels`.
    fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
        let found: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .filter(|l| labels.iter().all(|label| l.contains(label)))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(
            found.len() <= 1,
            "{name} {labels:?} is ambiguous in\n{text}"
        );
        found.first().copied()
    }

    #[test]
    fn only_finite_numbers_are_numeric() {
        assert_eq!(numeric(&json!(3)), Some(3.0));
        assert_eq!(numeric(&json!(2.5)), Some(2.5));
        for value in [
            json!(true),
            json!("1"),
            Value::Null,
            json!([1]),
            json!({"x": 1}),
        ] {
            assert_eq!(numeric(&value), None, "{value}");
        }
    }

    #[test]
    fn a_changed_feature_restarts_and_an_unchanged_one_keeps_counting() {
        let h = FeatureHistograms::new(Base {
            model: "iris".into(),
            namespace: "ml".into(),
            revision: "aaaa".into(),
        });
        let sepal = feature("sepal_length", "/features/*/0", &[4.5, 5.0, 5.5, 6.0]);
        h.configure(Some(&DriftSettings {
            features: vec![
                sepal.clone(),
                feature("petal_width", "/features/*/3", &[0.5, 1.5]),
            ],
        }));
        h.observe(&json!({"features": [[5.1, 3, 1, 0.2]]}));
        h.observe(&json!({"features": []}));
        let text = exposition(&h);
        let count = "modeldeploy_input_feature_value_count";
        let skipped = "modeldeploy_input_feature_skipped_total";
        assert_eq!(
            sample(&text, count, &[r#"feature="sepal_length""#]),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                skipped,
                &[r#"feature="sepal_length""#, r#"reason="missing""#]
            ),
            Some(1.0),
            "an empty list holds no value: missing"
        );
        h.configure(Some(&DriftSettings {
            features: vec![sepal, feature("petal_width", "/features/*/3", &[1.0])],
        }));
        let text = exposition(&h);
        assert_eq!(
            sample(&text, count, &[r#"feature="sepal_length""#]),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, count, &[r#"feature="petal_width""#]),
            Some(0.0)
        );
        let bucket = "modeldeploy_input_feature_value_bucket";
        assert_eq!(
            sample(&text, bucket, &[r#"feature="petal_width""#, r#"le="1.0""#]),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, bucket, &[r#"feature="petal_width""#, r#"le="0.5""#]),
            None
        );
        h.configure(None);
        assert!(!h.active());
        assert!(!exposition(&h).contains("modeldeploy_input_feature"));
    }

    #[test]
    fn bad_features_are_refused() {
        let dup = DriftSettings {
            features: vec![feature("a", "/x", &[1.0]), feature("a", "/y", &[1.0])],
        };
        assert!(FeatureHistograms::validate(Some(&dup)).is_err());
        let bad = DriftSettings {
            features: vec![feature("a", "x", &[1.0])],
        };
        assert!(FeatureHistograms::validate(Some(&bad)).is_err());
    }
}
