//! Progress of a collection: one bar per volume on a terminal, plain lines otherwise (JSON lines
//! when the result itself is JSON), always on stderr so stdout holds only the result.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use std::time::{Duration, Instant};

use forensnap_evidence::ByteProgress;
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
    /// Byte bars of acquisitions and exports, one per snapshot (or item).
    byte_bars: Mutex<HashMap<String, ProgressBar>>,
    /// When a line was last printed per snapshot, and when it started (not a terminal).
    lines: Mutex<HashMap<String, (Instant, Instant)>>,
}

/// Plain progress lines are printed at most this often per volume.
const LINE_EVERY: Duration = Duration::from_secs(5);

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
            byte_bars: Mutex::new(HashMap::new()),
            lines: Mutex::new(HashMap::new()),
        }
    }

    /// Clear the bars.
    pub fn finish(&self) {
        if let Ok(bars) = self.bars.lock() {
            for bar in bars.values() {
                bar.finish();
            }
        }
        if let Ok(bars) = self.byte_bars.lock() {
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

impl ByteProgress for TermProgress {
    fn position(&self, snapshot_id: &str, position: u64, volume_bytes: u64) {
        if let Some(multi) = &self.multi {
            let Ok(mut bars) = self.byte_bars.lock() else {
                return;
            };
            let bar = bars.entry(snapshot_id.to_string()).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new(volume_bytes));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>22} {bar:30} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_prefix(snapshot_id.to_string());
                bar
            });
            bar.set_position(position);
            return;
        }
        let Ok(mut lines) = self.lines.lock() else {
            return;
        };
        let now = Instant::now();
        let (last, started) = lines
            .entry(snapshot_id.to_string())
            .or_insert((now - LINE_EVERY, now));
        let done = position >= volume_bytes;
        if now.duration_since(*last) < LINE_EVERY && !done {
            return;
        }
        *last = now;
        // A rate over less than a second says nothing.
        let seconds = now.duration_since(*started).as_secs_f64().max(1.0);
        let rate = position as f64 / seconds / 1_048_576.0;
        let percent = (position * 100).checked_div(volume_bytes).unwrap_or(100);
        if self.json {
            eprintln!(
                "{}",
                serde_json::json!({"progress": "blocks", "snapshot_id": snapshot_id, "position": position, "volume_bytes": volume_bytes, "percent": percent, "mib_per_second": (rate * 10.0).round() / 10.0})
            );
        } else {
            eprintln!(
                "  {snapshot_id} read {} of {} MiB ({percent}%), {rate:.1} MiB/s",
                position >> 20,
                volume_bytes >> 20
            );
        }
    }
}
