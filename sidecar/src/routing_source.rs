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
