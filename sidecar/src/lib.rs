//! modeldeploy's data plane: the serving sidecar in front of each model server (docs/serving.md).
//!
//! Split by concern the way docs/serving.md is: settings, routing table and its sources (file,
//! ConfigMap watch), split, guard, router, upstream clients, proxy, shadow + compare, data path
//! (contract, prediction log, drift), metrics, errors, server (listeners, health, drain).

#[macro_use]
pub mod log;
pub mod compare;
pub mod configmap;
pub mod contract;
pub mod data_path;
pub mod drift;
pub mod errors;
pub mod guard;
pub mod json_pointer;
pub mod local_pool;
pub mod metrics;
pub mod prediction_log;
pub mod prediction_record;
pub mod proxy;
pub mod router;
pub mod routing;
pub mod routing_source;
pub mod server;
pub mod settings;
pub mod shadow;
pub mod split;
pub mod timefmt;
pub mod upstream;
