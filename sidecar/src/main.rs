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
    // One worker thread: the main thread is the event loop (tokio's current-thread scheduler, no
    // work-stealing machinery); more: tokio's multi-thread scheduler, one worker per CPU.
    let mut builder = if worker_threads(&environ) == Some(1) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
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

/// The worker threads tokio's multi-thread runtime would start: `TOKIO_WORKER_THREADS`, else one
/// per CPU the process may use. None when the variable is not a number (tokio refuses it).
fn worker_threads(environ: &HashMap<String, String>) -> Option<usize> {
    match environ.get("TOKIO_WORKER_THREADS") {
        Some(n) => n.parse().ok(),
        None => Some(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_as_tokio_counts_them() {
        let env = |v: &str| HashMap::from([("TOKIO_WORKER_THREADS".to_string(), v.to_string())]);
        assert_eq!(worker_threads(&env("1")), Some(1));
        assert_eq!(worker_threads(&env("2")), Some(2));
        assert_eq!(worker_threads(&env("x")), None);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(worker_threads(&HashMap::new()), Some(cpus));
    }
}
