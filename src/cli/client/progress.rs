//! Progress bars: one per file and one overall, with rate and time left (indicatif).
//! Drawn on standard error, and only when standard output is a terminal and `--json` is
//! off, so a script's output is never interleaved with bars.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of one run.
#[derive(Debug, Clone)]
pub struct Bars {
    multi: Option<MultiProgress>,
    /// The overall bar (hidden when bars are off).
    pub total: ProgressBar,
}

impl Bars {
    /// Bars for a run of `files` files; hidden unless stdout is a terminal and not `json`.
    pub fn new(json: bool, files: usize) -> Self {
        if json || !std::io::stdout().is_terminal() {
            return Self {
                multi: None,
                total: ProgressBar::hidden(),
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let total = multi.add(ProgressBar::new(0));
        total.set_style(style(
            "{prefix:>12} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ));
        total.set_prefix(format!("{files} files"));
        Self {
            multi: Some(multi),
            total,
        }
    }

    /// A bar for one file (`label` is what the user named it by).
    pub fn file(&self, label: &str) -> ProgressBar {
        let Some(multi) = &self.multi else {
            return ProgressBar::hidden();
        };
        let bar = multi.insert_before(&self.total, ProgressBar::new(0));
        bar.set_style(style(
            "{prefix:>12} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        ));
        let short: String = label
            .chars()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bar.set_prefix(short);
        bar
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}
