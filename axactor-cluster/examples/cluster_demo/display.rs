//! Output: a live progress bar on a terminal, plain periodic lines
//! otherwise; events are printed above the bar as they happen.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use tokio::time::Instant;

/// Where the demo writes.
#[derive(Debug)]
pub(crate) enum Out {
    /// A terminal: a progress bar with a status line.
    Bar(ProgressBar),
    /// Not a terminal: a status line every `every`.
    Plain {
        /// When the last status line was printed.
        last: Mutex<Option<Instant>>,
        /// How often.
        every: Duration,
    },
}

impl Out {
    /// A bar for a run of `duration` when stdout is a terminal, plain lines
    /// otherwise.
    pub(crate) fn for_stdout(duration: Duration) -> Out {
        if std::io::stdout().is_terminal() {
            let bar = ProgressBar::new(duration.as_millis() as u64);
            if let Ok(style) = ProgressStyle::with_template("{bar:30} {elapsed:>3} {msg}") {
                bar.set_style(style);
            }
            Out::Bar(bar)
        } else {
            Out::plain()
        }
    }

    /// Plain lines, one status line a second.
    pub(crate) fn plain() -> Out {
        Out::Plain { last: Mutex::new(None), every: Duration::from_secs(1) }
    }

    /// Prints an event line.
    pub(crate) fn event(&self, line: &str) {
        match self {
            Out::Bar(bar) => bar.println(line),
            Out::Plain { .. } => println!("{line}"),
        }
    }

    /// Updates the status: `elapsed` into the traffic phase, and a line.
    pub(crate) fn status(&self, elapsed: Duration, line: &str) {
        match self {
            Out::Bar(bar) => {
                bar.set_position(elapsed.as_millis() as u64);
                bar.set_message(line.to_string());
            }
            Out::Plain { last, every } => {
                let mut last = last.lock();
                if last.is_none_or(|t| t.elapsed() >= *every) {
                    *last = Some(Instant::now());
                    println!("  [{:>5.1} s] {line}", elapsed.as_secs_f64());
                }
            }
        }
    }

    /// Removes the bar (before the summary).
    pub(crate) fn finish(&self) {
        if let Out::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
