//! Progress on a terminal: one line per certificate with the state of its order, drawn on
//! stderr with indicatif while the order runs. With no terminal (cron), with -q or -v, it
//! draws nothing, so logs and results stay as they are. The ACME code reports its steps
//! through `step`, which reaches the line of the order it runs in (a task-local scope).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::log::Verbosity;

tokio::task_local! {
    static LINE: Line;
}

/// The progress display of one run; disabled unless stderr is a terminal.
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    pub fn new(verbosity: Verbosity) -> Self {
        let on = verbosity == Verbosity::Normal && std::io::stderr().is_terminal();
        Self {
            multi: on.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// A line for certificate `name`, spinning until finished.
    pub fn line(&self, name: &str) -> Line {
        let Some(multi) = &self.multi else {
            return Line(None);
        };
        let bar = multi.add(ProgressBar::new_spinner());
        let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(name.to_owned());
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_millis(120));
        Line(Some(bar))
    }
}

/// One certificate's line; a no-op when progress is off.
#[derive(Clone)]
pub struct Line(Option<ProgressBar>);

impl Line {
    pub fn set(&self, state: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(state.to_owned());
        }
    }

    /// Stops the spinner and leaves `outcome` on the line.
    pub fn finish(&self, outcome: &str) {
        if let Some(bar) = &self.0 {
            bar.set_style(
                ProgressStyle::with_template("  {prefix:.bold} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.finish_with_message(outcome.to_owned());
        }
    }

    /// Runs `fut` with this line as the target of `step`.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        LINE.scope(self, fut).await
    }
}

/// Reports the current step of the order running in this scope, if any shows progress.
pub fn step(state: &str) {
    let _ = LINE.try_with(|line| line.set(state));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_terminal_nothing_is_drawn_and_steps_are_harmless() {
        let progress = Progress::new(Verbosity::Quiet);
        let line = progress.line("a.fr");
        assert!(line.0.is_none());
        step("outside any scope");
        line.clone()
            .scope(async { step("waiting for validation") })
            .await;
        line.finish("issued");
    }
}
