//! Sampled prediction logging, off the request path: a bounded queue and one writer thread.
//!
//! The request path draws the sample (one random number) and, when sampled, hands the raw bytes
//! to `submit`, which never waits: when the queue is full the line is dropped and counted. The
//! writer thread gathers lines for up to 50 ms, formats them (prediction_record.rs) and writes
//! each batch with one write, so a slow disk or a full stdout pipe never stalls a request.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::Metrics;
use crate::prediction_record::{format_line, Prediction};
use crate::routing::{PredictionLogSettings, SinkKind};

pub const BATCH_LINES: usize = 256;
pub const GATHER: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, PartialEq)]
pub struct PredictionLogError(pub String);

/// Where lines go: the container log or an appended file.
#[derive(Debug)]
pub enum Sink {
    Stdout,
    File(Mutex<File>),
}

impl Sink {
    fn write(&self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(data)?;
                out.flush()
            }
            Sink::File(f) => {
                let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                f.write_all(data)?;
                f.flush()
            }
        }
    }
}

/// The settings in force with their opened sink.
#[derive(Debug)]
pub struct LogConfig {
    pub settings: PredictionLogSettings,
    pub sink: Arc<Sink>,
}

fn sink_key(s: &PredictionLogSettings) -> (SinkKind, Option<&str>) {
    (
        s.sink,
        if s.sink == SinkKind::File {
            s.path.as_deref()
        } else {
            None
        },
    )
}

/// The sink for `settings`: the one in force when it is the same, else opened now.
pub fn open_sink(
    settings: &PredictionLogSettings,
    current: Option<&LogConfig>,
) -> Result<Arc<Sink>, PredictionLogError> {
    if let Some(c) = current {
        if sink_key(&c.settings) == sink_key(settings) {
            return Ok(c.sink.clone());
        }
    }
    match settings.sink {
        SinkKind::Stdout => Ok(Arc::new(Sink::Stdout)),
        SinkKind::File => {
            let path = Path::new(settings.path.as_deref().unwrap_or(""));
            let open = || -> std::io::Result<File> {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                OpenOptions::new().create(true).append(true).open(path)
            };
            open()
                .map(|f| Arc::new(Sink::File(Mutex::new(f))))
                .map_err(|e| {
                    PredictionLogError(format!(
                        "cannot open prediction log file {}: {e}",
                        path.display()
                    ))
                })
        }
    }
}

/// Whether a request is logged at `rate` (0 to 1); draws a number only for a rate strictly between.
pub fn sampled(rate: f64, random: impl FnOnce() -> f64) -> bool {
    rate >= 1.0 || (rate > 0.0 && random() < rate)
}

type Entry = (Prediction, Arc<LogConfig>);

/// The queue's sending side (cheap to clone) and the writer thread.
pub struct PredictionLog {
    sender: Mutex<Option<SyncSender<Entry>>>,
    metrics: Arc<Metrics>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl PredictionLog {
    pub fn start(model: String, namespace: String, metrics: Arc<Metrics>, queue: usize) -> Self {
        let (sender, receiver) = sync_channel::<Entry>(queue);
        let m = metrics.clone();
        let writer = std::thread::Builder::new()
            .name("prediction-log".into())
            .spawn(move || run_writer(receiver, model, namespace, m))
            .ok();
        PredictionLog {
            sender: Mutex::new(Some(sender)),
            metrics,
            writer: Mutex::new(writer),
        }
    }

    /// Queue one line; never waits. False (counted as dropped) when the queue is full.
    pub fn submit(&self, prediction: Prediction, config: Arc<LogConfig>) -> bool {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(sender) = sender else { return false };
        self.metrics.prediction_log_pending.inc();
        match sender.try_send((prediction, config)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.prediction_log_pending.dec();
                self.metrics.prediction_log_dropped.inc();
                false
            }
        }
    }

    /// Write what is queued (up to `grace`), then stop the writer.
    pub fn close(&self, grace: Duration) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
        let deadline = Instant::now() + grace;
        while self.metrics.prediction_log_pending.get() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.metrics.prediction_log_pending.get() <= 0 {
            if let Some(handle) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = handle.join();
            }
        }
    }
}

fn run_writer(receiver: Receiver<Entry>, model: String, namespace: String, metrics: Arc<Metrics>) {
    loop {
        let first = match receiver.recv() {
            Ok(e) => e,
            Err(_) => return,
        };
        let mut batch = vec![first];
        let gather_until = Instant::now() + GATHER;
        while batch.len() < BATCH_LINES {
            let left = gather_until.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(left) {
                Ok(e) => batch.push(e),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // Consecutive lines for the same sink are joined into one write, order kept.
        let mut groups: Vec<(Arc<Sink>, String, u64)> = Vec::new();
        for (prediction, config) in &batch {
            let s = &config.settings;
            let line = format_line(
                prediction,
                &model,
                &namespace,
                &s.redact,
                s.max_body_bytes as usize,
            );
            match groups.last_mut() {
                Some((sink, text, n)) if Arc::ptr_eq(sink, &config.sink) => {
                    text.push_str(&line);
                    *n += 1;
                }
                _ => groups.push((config.sink.clone(), line, 1)),
            }
        }
        for (sink, text, lines) in groups {
            match sink.write(text.as_bytes()) {
                Ok(()) => {
                    metrics.prediction_log_lines.inc_by(lines);
                }
                Err(e) => {
                    metrics.prediction_log_dropped.inc_by(lines);
                    crate::error!(
                        "modeldeploy.sidecar.predictions",
                        "prediction log: {lines} lines lost: {e}"
                    );
                }
            }
            metrics.prediction_log_pending.dec_by(lines as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("md-plog-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn file_settings(path: &Path) -> PredictionLogSettings {
        PredictionLogSettings {
            sample_rate: 1.0,
            sink: SinkKind::File,
            path: Some(path.display().to_string()),
            max_body_bytes: 4096,
            redact: vec![],
        }
    }

    fn config(settings: PredictionLogSettings, current: Option<&LogConfig>) -> Arc<LogConfig> {
        let sink = open_sink(&settings, current).unwrap();
        Arc::new(LogConfig { settings, sink })
    }

    fn prediction(i: usize) -> Prediction {
        Prediction {
            arrived: std::time::SystemTime::UNIX_EPOCH,
            revision: "aaaa".into(),
            route: "local",
            latency_seconds: 0.001,
            status: 200,
            trace_id: format!("t{i}"),
            request: bytes::Bytes::from_static(br#"{"features": [[1, 2, 3, 4]]}"#),
            response: Some(bytes::Bytes::from_static(b"[0]")),
        }
    }

    fn trace_ids(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["traceId"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn sample(metrics: &Metrics, name: &str) -> String {
        let text = metrics.encode();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .unwrap();
        line.rsplit(' ').next().unwrap().to_string()
    }

    #[test]
    fn the_sampling_rate_holds_within_a_binomial_interval() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let n = 20_000;
        for rate in [0.0, 0.01, 0.1, 0.5, 1.0] {
            let hits = (0..n)
                .filter(|_| sampled(rate, || rng.gen::<f64>()))
                .count() as f64;
            let (mean, sd) = (n as f64 * rate, (n as f64 * rate * (1.0 - rate)).sqrt());
            assert!((hits - mean).abs() <= 5.0 * sd, "{rate}: {hits}");
        }
        assert!(!sampled(0.0, || panic!("drew a number")));
        assert!(sampled(1.0, || panic!("drew a number")));
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_accepted_lines_are_written_in_order() {
        let dir = scratch("full");
        let path = dir.join("logs/p.jsonl"); // the directory is created
        let metrics = Arc::new(Metrics::new("iris", "ml", "aaaa"));
        let log = PredictionLog::start("iris".into(), "ml".into(), metrics.clone(), 5);
        let cfg = config(file_settings(&path), None);
        let Sink::File(file) = cfg.sink.as_ref() else {
            panic!("a file sink")
        };
        // Hold the file: the writer blocks on its first batch, so the queue fills up.
        let held = file.lock().unwrap();
        let mut accepted = Vec::new();
        let mut refused = 0;
        for i in 0..100_000 {
            if log.submit(prediction(i), cfg.clone()) {
                accepted.push(format!("t{i}"));
            } else {
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
        }
        assert_eq!(
            refused, 3,
            "a queue of 5 behind a blocked writer must fill up"
        );
        assert_eq!(
            sample(&metrics, "modeldeploy_prediction_log_dropped_total"),
            "3"
        );
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(10);
        while metrics.prediction_log_pending.get() > 0 {
            assert!(Instant::now() < deadline, "the writer did not catch up");
            std::thread::sleep(Duration::from_millis(5));
        }
        // With room again, every line gets through.
        for i in [200_000, 200_001, 200_002, 200_003, 200_004] {
            assert!(log.submit(prediction(i), cfg.clone()));
            accepted.push(format!("t{i}"));
        }
        log.close(Duration::from_secs(10));
        assert_eq!(trace_ids(&path), accepted);
        assert_eq!(
            sample(&metrics, "modeldeploy_prediction_log_lines_total"),
            accepted.len().to_string()
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn switching_files_keeps_each_line_in_its_file_and_the_same_file_reuses_its_sink() {
        let dir = scratch("switch");
        let metrics = Arc::new(Metrics::new("iris", "ml", "aaaa"));
        let log = PredictionLog::start("iris".into(), "ml".into(), metrics, 100);
        let first = config(file_settings(&dir.join("a.jsonl")), None);
        assert!(log.submit(prediction(1), first.clone()));
        let second = config(file_settings(&dir.join("b.jsonl")), Some(&first));
        assert!(!Arc::ptr_eq(&first.sink, &second.sink));
        assert!(log.submit(prediction(2), second.clone()));
        let same_file = PredictionLogSettings {
            sample_rate: 0.5,
            redact: vec!["x".into()],
            ..file_settings(&dir.join("b.jsonl"))
        };
        assert!(Arc::ptr_eq(
            &open_sink(&same_file, Some(&second)).unwrap(),
            &second.sink
        ));
        log.close(Duration::from_secs(10));
        assert_eq!(trace_ids(&dir.join("a.jsonl")), ["t1"]);
        assert_eq!(trace_ids(&dir.join("b.jsonl")), ["t2"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_refused_with_the_path() {
        let dir = scratch("refused");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("file"), "").unwrap();
        let err = open_sink(&file_settings(&dir.join("file/p.jsonl")), None).unwrap_err();
        assert!(
            err.0.starts_with("cannot open prediction log file "),
            "{}",
            err.0
        );
        assert!(err.0.contains("file/p.jsonl"), "{}", err.0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
