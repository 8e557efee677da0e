//! The sidecar's own log: one line per event on stderr, `<time> <LEVEL> <logger>: <message>`.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 10,
    Info = 20,
    Warning = 30,
    Error = 40,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        match text.to_ascii_uppercase().as_str() {
            "DEBUG" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARNING" => Some(Level::Warning),
            "ERROR" => Some(Level::Error),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

pub fn write(level: Level, logger: &str, message: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let line = format!(
        "{} {} {}: {}\n",
        crate::timefmt::now_log(),
        level.name(),
        logger,
        message
    );
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[macro_export]
macro_rules! log_at {
    ($level:expr, $logger:expr, $($arg:tt)*) => {
        if $crate::log::enabled($level) {
            $crate::log::write($level, $logger, format_args!($($arg)*))
        }
    };
}
#[macro_export]
macro_rules! info { ($logger:expr, $($arg:tt)*) => { $crate::log_at!($crate::log::Level::Info, $logger, $($arg)*) }; }
#[macro_export]
macro_rules! warn { ($logger:expr, $($arg:tt)*) => { $crate::log_at!($crate::log::Level::Warning, $logger, $($arg)*) }; }
#[macro_export]
macro_rules! error { ($logger:expr, $($arg:tt)*) => { $crate::log_at!($crate::log::Level::Error, $logger, $($arg)*) }; }
#[macro_export]
macro_rules! debug { ($logger:expr, $($arg:tt)*) => { $crate::log_at!($crate::log::Level::Debug, $logger, $($arg)*) }; }
