//! Showing what instances report: progress bars on a terminal, plain
//! `[id] message` lines otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::{LogLevel, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Progress bars (stderr is a terminal).
    Bars,
    /// Plain lines on stderr.
    Plain,
    /// Errors only.
    Quiet,
}

/// The CLI's reporter.
pub struct CliReporter {
    mode: Mode,
    bars: MultiProgress,
    by_instance: Mutex<HashMap<String, ProgressBar>>,
    /// The session is over: its summary is the last word, so what a task
    /// still winding down reports (a request cut when its instance ended)
    /// is not shown after it.
    closed: AtomicBool,
}

/// A reporter rendering in `mode`.
pub fn reporter(mode: Mode) -> Arc<CliReporter> {
    let bars = MultiProgress::with_draw_target(if mode == Mode::Bars {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    Arc::new(CliReporter {
        mode,
        bars,
        by_instance: Mutex::new(HashMap::new()),
        closed: AtomicBool::new(false),
    })
}

impl CliReporter {
    /// Clears the bars once the session is over; nothing is shown after.
    pub fn finish(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Ok(bars) = self.by_instance.lock() {
            for bar in bars.values() {
                bar.finish_and_clear();
            }
        }
    }

    fn line(&self, text: String) {
        if self.mode == Mode::Bars {
            let _ = self.bars.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

impl Reporter for CliReporter {
    fn log(&self, id: &str, level: LogLevel, message: &str) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let show = match self.mode {
            Mode::Quiet => level >= LogLevel::Warn,
            _ => level >= LogLevel::Info,
        };
        if !show {
            return;
        }
        let tag = match level {
            LogLevel::Debug => "debug: ",
            LogLevel::Info => "",
            LogLevel::Warn => "warning: ",
            LogLevel::Error => "error: ",
        };
        self.line(format!("[{id}] {tag}{message}"));
    }

    fn progress(&self, id: &str, label: &str, current: u64, total: u64) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => {
                if total > 0 && current == total {
                    self.line(format!("[{id}] {label}: {current}/{total}"));
                }
            }
            Mode::Bars => {
                let Ok(mut bars) = self.by_instance.lock() else {
                    return;
                };
                let bar = bars.entry(id.to_string()).or_insert_with(|| {
                    let bar = self.bars.add(ProgressBar::new(total));
                    if let Ok(style) =
                        ProgressStyle::with_template("[{prefix}] {bar:30} {pos}/{len} {msg}")
                    {
                        bar.set_style(style);
                    }
                    bar.set_prefix(id.to_string());
                    bar
                });
                bar.set_length(total);
                bar.set_position(current);
                bar.set_message(label.to_string());
            }
        }
    }
}
