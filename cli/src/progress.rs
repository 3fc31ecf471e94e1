//! Progress indicators for long operations, on stderr and only when stderr is a terminal and
//! stdout is not (a result going to a file or a pipe). On a terminal the result itself shows
//! progress, and in pipes and logs an indicator would only be noise. Backups and restores
//! print one line when they end, so their spinners show whenever stderr is a terminal.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner or bar, or nothing when progress is not shown.
#[derive(Debug)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// No indicator.
    pub fn none() -> Self {
        Progress(None)
    }

    /// A spinner counting rows received.
    pub fn rows(enabled: bool) -> Self {
        Self::styled(enabled, "{spinner} {human_pos} rows received ({elapsed})")
    }

    /// A spinner counting `what` ("rows exported") whose position the caller sets, for
    /// transfers whose total is unknown until they end.
    pub fn counter(enabled: bool, what: &str) -> Self {
        Self::styled(
            enabled,
            &format!("{{spinner}} {{human_pos}} {what} ({{elapsed}})"),
        )
    }

    /// A spinner with the time elapsed, for a call that reports nothing until it ends:
    /// `{what} ({elapsed})`.
    pub fn spinner(enabled: bool, what: &str) -> Self {
        Self::styled(enabled, &format!("{{spinner}} {what} ({{elapsed}})"))
    }

    /// A spinner showing a byte count the caller sets, with the time elapsed:
    /// `{what} 1.50 MiB ({elapsed})`.
    pub fn bytes(enabled: bool, what: &str) -> Self {
        Self::styled(
            enabled,
            &format!("{{spinner}} {what} {{binary_bytes}} ({{elapsed}})"),
        )
    }

    /// A spinner drawn with `template` (indicatif's), ticking on its own.
    fn styled(enabled: bool, template: &str) -> Self {
        if !enabled {
            return Self::none();
        }
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(pb))
    }

    /// Whether an indicator is drawn.
    pub fn shown(&self) -> bool {
        self.0.is_some()
    }

    /// Sets the count to `n`.
    pub fn set(&self, n: u64) {
        if let Some(pb) = &self.0 {
            pb.set_position(n);
        }
    }

    /// A bar to `total` items.
    pub fn bar(enabled: bool, total: u64, what: &str) -> Self {
        if !enabled {
            return Self::none();
        }
        let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let template = format!("{{bar:30}} {{human_pos}}/{{human_len}} {what} ({{eta}} left)");
        pb.set_style(
            ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("█▌ "),
        );
        Progress(Some(pb))
    }

    /// Counts `n` more.
    pub fn inc(&self, n: u64) {
        if let Some(pb) = &self.0 {
            pb.inc(n);
        }
    }

    /// Removes the indicator from the screen.
    pub fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An error or Ctrl-C must not leave a half-drawn indicator above the message.
        self.finish();
    }
}
