//! `modeldeploy-sidecar`: exit 0 after a graceful drain, 2 for invalid configuration (one line per
//! problem), 1 when the sidecar cannot start (port in use, no Kubernetes credentials).
//! `--check-config` prints the settings in force as one JSON object and exits 0 (2 when invalid).

use std::collections::HashMap;
use std::process::ExitCode;

use modeldeploy_sidecar::settings::{load, Loaded};
use modeldeploy_sidecar::{log, server};

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    let check_only = argv.iter().any(|a| a == "--check-config");
    argv.retain(|a| a != "--check-config");
    let environ: HashMap<String, String> = std::env::vars().collect();
    let settings = match load(&argv, &environ) {
        Loaded::Ready(s) if check_only => {
            println!("{}", s.summary());
            return ExitCode::SUCCESS;
        }
        Loaded::Ready(s) => *s,
        Loaded::Help(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Loaded::Invalid(lines) => {
            eprintln!(
                "modeldeploy-sidecar: invalid sidecar configuration:\n  {}",
                lines.join("\n  ")
            );
            return ExitCode::from(2);
        }
    };
    log::set_level(settings.log_level);
    // The main thread's event loop: the first traffic worker, the metrics port, the routing
    // source, the drain (server::run starts the other traffic workers, one event loop each).
    let runtime = match server::event_loop() {
        Ok(r) => r,
        Err(e) => {
            modeldeploy_sidecar::error!("modeldeploy.sidecar", "cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        let app = server::build_app(settings);
        server::run(app).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            modeldeploy_sidecar::error!("modeldeploy.sidecar", "cannot start: {e}");
            ExitCode::from(1)
        }
    }
}
