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
