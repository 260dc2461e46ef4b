//! NAB (Numenta Anomaly Benchmark) evaluator for the numeric scorer.
//!
//! `cargo run --release -p logwarden-detect --example nab -- [DIR]`
//! (DIR defaults to /work/shared/eval/nab-dev: `<category>/<file>.csv` with
//! `timestamp,value`, and `windows.json`).
//!
//! Scoring follows NAB's `sweeper.py`, standard profile: probation of
//! min(floor(15% of rows), 750) rows left unscored; inside a window only the
//! earliest detection counts, weighted by the scaled sigmoid of its position
//! and normalized by its maximum; each detection outside every window costs
//! the scaled sigmoid of its distance past the previous window (-1 before
//! the first window or 3+ window widths past one) times A_FP = 0.11; a
//! missed window costs A_FN = 1. One threshold for all files, the one that
//! maximizes the total; the total is normalized to 0 (null detector: every
//! window missed) .. 100 (perfect: every window caught at its first row).
//!
//! Result with the default `NumericConfig` on nab-dev (24 files, 34 windows):
//! 41.4 at threshold 0.52 (the windowed-Gaussian baseline scores 39.6 on the
//! full benchmark; this is a development subset, not directly comparable).

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};

use logwarden_detect::numeric::{NumericConfig, NumericScorer};

const TP_WEIGHT: f64 = 1.0;
const FP_WEIGHT: f64 = 0.11;
const FN_WEIGHT: f64 = 1.0;
const PROBATION_PERCENT: f64 = 0.15;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn scaled_sigmoid(pos: f64) -> f64 {
    if pos >= 3.0 {
        -1.0
    } else {
        2.0 * sigmoid(-5.0 * pos) - 1.0
    }
}

/// Where a row sits for scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Label {
    Probation,
    Outside,
    /// Global window index.
    Window(usize),
}

#[derive(Debug, Clone, Copy)]
struct Point {
    score: f64,
    sweep: f64,
    label: Label,
    file: usize,
}

struct FileResult {
    name: String,
    rows: usize,
    windows: Vec<usize>,
}

/// `2014-04-10 07:15:00.000000` and `2014-04-10 07:15:00` compare equal.
fn norm_ts(s: &str) -> String {
    s.trim().chars().take(19).collect()
}

fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<f64>), Box<dyn Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut ts = Vec::new();
    let mut vals = Vec::new();
    for line in text.lines().skip(1) {
        let Some((t, v)) = line.split_once(',') else {
            continue;
        };
        ts.push(norm_ts(t));
        // A bad value stays a row (NAB scores every row) and scores as NaN.
        vals.push(v.trim().parse::<f64>().unwrap_or(f64::NAN));
    }
    Ok((ts, vals))
}

/// NAB's `calcSweepScore` for one file.
fn sweep(
    ts: &[String],
    scores: &[f64],
    windows: &[(String, String)],
    first_window_id: usize,
    file: usize,
) -> Vec<Point> {
    let max_tp = scaled_sigmoid(-1.0);
    let probation = (PROBATION_PERCENT * ts.len() as f64)
        .floor()
        .min(PROBATION_PERCENT * 5000.0);
    let index = |t: &str| ts.iter().position(|x| x == t);
    let mut pending = windows.iter().enumerate().peekable();
    let mut cur: Option<(usize, usize, f64, &str)> = None; // (id, right, width, end)
    let mut prev: Option<(usize, f64)> = None; // (right, width)
    let mut out = Vec::with_capacity(ts.len());
    for (i, (t, s)) in ts.iter().zip(scores).enumerate() {
        if let Some((k, (start, end))) = pending.peek().copied() {
            if t == start {
                pending.next();
                if let (Some(l), Some(r)) = (index(start), index(end)) {
                    cur = Some((first_window_id + k, r, (r - l + 1) as f64, end.as_str()));
                }
            }
        }
        let (sweep, label) = match cur {
            Some((id, right, width, _)) => {
                let pos = -((right as f64) - i as f64 + 1.0) / width;
                (scaled_sigmoid(pos) * TP_WEIGHT / max_tp, Label::Window(id))
            }
            None => {
                let pos = match prev {
                    None => 3.0,
                    Some((right, width)) => (right as f64 - i as f64).abs() / (width - 1.0),
                };
                (scaled_sigmoid(pos) * FP_WEIGHT, Label::Outside)
            }
        };
        let label = if (i as f64) >= probation {
            label
        } else {
            Label::Probation
        };
        out.push(Point {
            score: *s,
            sweep,
            label,
            file,
        });
        if let Some((_, right, width, end)) = cur {
            if t == end {
                prev = Some((right, width));
                cur = None;
            }
        }
    }
    out
}

/// Score parts at `threshold` per file: (raw score, windows hit, FPs).
fn score_at(
    points: &[Point],
    n_files: usize,
    n_windows: usize,
    threshold: f64,
) -> Vec<(f64, usize, usize)> {
    let mut win: Vec<Option<f64>> = vec![None; n_windows];
    let mut win_file = vec![usize::MAX; n_windows];
    let mut per = vec![(0.0, 0usize, 0usize); n_files];
    for p in points {
        match p.label {
            Label::Probation => {}
            Label::Outside => {
                if p.score >= threshold {
                    per[p.file].0 += p.sweep;
                    per[p.file].2 += 1;
                }
            }
            Label::Window(id) => {
                win_file[id] = p.file;
                let w = win[id].get_or_insert(-FN_WEIGHT);
                if p.score >= threshold && p.sweep > *w {
                    *w = p.sweep;
                }
            }
        }
    }
    for (id, w) in win.iter().enumerate() {
        if let Some(w) = w {
            let f = win_file[id];
            per[f].0 += w;
            if *w > -FN_WEIGHT {
                per[f].1 += 1;
            }
        }
    }
    per
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/work/shared/eval/nab-dev".to_string()),
    );
    let labels: BTreeMap<String, Vec<(String, String)>> = {
        let raw: BTreeMap<String, Vec<Vec<String>>> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("windows.json"))?)?;
        raw.into_iter()
            .map(|(k, ws)| {
                let ws = ws
                    .into_iter()
                    .filter_map(|w| match w.as_slice() {
                        [a, b] => Some((norm_ts(a), norm_ts(b))),
                        _ => None,
                    })
                    .collect();
                (k, ws)
            })
            .collect()
    };

    let mut points = Vec::new();
    let mut files = Vec::new();
    let mut n_windows = 0;
    for (name, windows) in &labels {
        let (ts, vals) = read_csv(&dir.join(name))?;
        let mut scorer = NumericScorer::new(NumericConfig::default());
        let scores: Vec<f64> = vals.iter().map(|v| scorer.score(*v)).collect();
        let file = files.len();
        let pts = sweep(&ts, &scores, windows, n_windows, file);
        // Only windows with scorable rows count (NAB drops probation rows).
        let ids: Vec<usize> = (n_windows..n_windows + windows.len()).collect();
        n_windows += windows.len();
        points.extend(pts);
        files.push(FileResult {
            name: name.clone(),
            rows: ts.len(),
            windows: ids,
        });
    }

    let mut best = (f64::NEG_INFINITY, 1.1);
    // Best single threshold over all files: every distinct score, swept
    // downwards with running totals as in NAB's calcScoreByThreshold.
    let mut sorted: Vec<&Point> = points
        .iter()
        .filter(|p| p.label != Label::Probation)
        .collect();
    sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut win: Vec<Option<f64>> = vec![None; n_windows];
    for p in &sorted {
        if let Label::Window(id) = p.label {
            win[id] = Some(-FN_WEIGHT);
        }
    }
    let scorable_windows = win.iter().filter(|w| w.is_some()).count();
    let mut fp = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let thr = sorted[i].score;
        while i < sorted.len() && sorted[i].score == thr {
            match sorted[i].label {
                Label::Outside => fp += sorted[i].sweep,
                Label::Window(id) => {
                    if let Some(w) = win[id].as_mut() {
                        *w = w.max(sorted[i].sweep);
                    }
                }
                Label::Probation => {}
            }
            i += 1;
        }
        let total = fp + win.iter().flatten().sum::<f64>();
        if total > best.0 {
            best = (total, thr);
        }
    }
    let null = -FN_WEIGHT * scorable_windows as f64;
    let perfect = TP_WEIGHT * scorable_windows as f64;
    if best.0 < null {
        best = (null, 1.1);
    }
    let threshold = best.1;
    let per = score_at(&points, files.len(), n_windows, threshold);

    println!(
        "{:<55} {:>6} {:>4} {:>4} {:>4} {:>8}",
        "file", "rows", "win", "hit", "fp", "raw"
    );
    for (f, (raw, hit, fps)) in files.iter().zip(&per) {
        println!(
            "{:<55} {:>6} {:>4} {:>4} {:>4} {:>8.3}",
            f.name,
            f.rows,
            f.windows.len(),
            hit,
            fps,
            raw
        );
    }
    let raw_total: f64 = per.iter().map(|p| p.0).sum();
    let normalized = 100.0 * (raw_total - null) / (perfect - null);
    println!(
        "threshold {threshold:.4}  raw {raw_total:.3}  null {null:.1}  perfect {perfect:.1}  \
         NAB standard score {normalized:.1}"
    );
    Ok(())
}
