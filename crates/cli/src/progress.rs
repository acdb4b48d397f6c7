//! Progress of a collection: one bar per volume on a terminal, plain lines otherwise (JSON lines
//! when the result itself is JSON), always on stderr so stdout holds only the result.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use forensnap_preserve::{Progress, SnapshotInfo};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress on stderr.
pub struct TermProgress {
    /// Bars, when stderr is a terminal.
    multi: Option<MultiProgress>,
    /// One bar per volume.
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// Last line printed per volume and stage (to print changes only).
    last: Mutex<HashMap<(String, String), String>>,
    /// Print JSON lines instead of text lines.
    json: bool,
}

impl TermProgress {
    /// Bars on a terminal, lines elsewhere.
    pub fn new(json: bool) -> Self {
        let multi = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        TermProgress {
            multi,
            bars: Mutex::new(HashMap::new()),
            last: Mutex::new(HashMap::new()),
            json,
        }
    }

    /// Clear the bars.
    pub fn finish(&self) {
        if let Ok(bars) = self.bars.lock() {
            for bar in bars.values() {
                bar.finish();
            }
        }
    }

    fn line(&self, text: String) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }
}

impl Progress for TermProgress {
    fn snapshot(&self, volume_id: &str, stage: &str, info: &SnapshotInfo) {
        let percent: u64 = info
            .progress
            .as_deref()
            .and_then(|p| p.trim_end_matches('%').parse().ok())
            .unwrap_or(0);
        if let Some(multi) = &self.multi {
            let Ok(mut bars) = self.bars.lock() else {
                return;
            };
            let bar = bars.entry(volume_id.to_string()).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new(100));
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>22} {bar:30} {pos:>3}% {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_prefix(volume_id.to_string());
                bar
            });
            bar.set_position(percent);
            bar.set_message(format!("{stage} {} {:?}", info.id, info.state));
            return;
        }
        let text = format!("{:?} {percent}%", info.state);
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last
            .insert((volume_id.to_string(), stage.to_string()), text.clone())
            .as_deref()
            != Some(text.as_str())
        {
            if self.json {
                eprintln!(
                    "{}",
                    serde_json::json!({"progress": "snapshot", "volume_id": volume_id, "stage": stage, "snapshot_id": info.id, "state": format!("{:?}", info.state).to_lowercase(), "percent": percent})
                );
            } else {
                eprintln!("  {volume_id} {stage} {} {text}", info.id);
            }
        }
    }

    fn step(&self, message: &str) {
        if self.json {
            eprintln!(
                "{}",
                serde_json::json!({"progress": "step", "message": message})
            );
        } else {
            self.line(format!("- {message}"));
        }
    }
}
