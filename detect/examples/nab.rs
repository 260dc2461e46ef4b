//! NAB (Numenta Anomaly Benchmark) bench: scores per-row anomaly scores with
//! [`logwarden_detect::nab`] (standard profile).
//!
//! ```text
//! cargo run --release -p logwarden-detect --example nab -- [--data DIR] [--scores DIR] [--detector numeric|gaussian]
//! ```
//!
//! `--data` (default /work/shared/eval/nab-dev) holds `<category>/<file>.csv`
//! with `timestamp,value` and `windows.json`. With `--scores DIR`, the scores
//! are read from `DIR/<category>/<file>.csv` as written by `logwarden
//! backtest --field value --scores-out` (`timestamp,value,anomaly_score,alert`)
//! and judged twice: with the best single threshold on `anomaly_score`, and
//! with the product's own `alert` flag as the detection. Without it the
//! scores are computed in process by `--detector`: `numeric` (the product's
//! scorer with its default configuration) or `gaussian` (the windowed
//! Gaussian baseline NAB publishes, reimplemented here for comparison).

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};

use logwarden_detect::nab::{LabelledFile, Nab, NabScore};
use logwarden_detect::numeric::{NumericConfig, NumericScorer};
use statrs::distribution::{ContinuousCDF, Normal};

fn read_csv_columns(path: &Path) -> Result<Vec<Vec<String>>, Box<dyn Error>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|c| c.trim().to_string()).collect())
        .collect())
}

/// NAB's windowed Gaussian detector: the tail probability of the mean of
/// the last `STEP` values under a Gaussian fitted to the preceding `WINDOW`
/// values (NAB `windowedGaussian`, window 6400, step 100), reported as
/// 1 - Q-function.
fn windowed_gaussian(values: &[f64]) -> Vec<f64> {
    const WINDOW: usize = 6400;
    const STEP: usize = 100;
    let normal = Normal::standard();
    let mut window: Vec<f64> = Vec::new();
    let mut buffer: Vec<f64> = Vec::new();
    let (mut mean, mut sd) = (0.0f64, 1.0f64);
    values
        .iter()
        .map(|&v| {
            let v = if v.is_finite() { v } else { 0.0 };
            let mut score = 0.0;
            if window.len() >= 2 {
                let z = (v - mean) / sd.max(1e-12);
                score = 1.0 - normal.sf(z.abs()) * 2.0;
            }
            window.push(v);
            if window.len() > WINDOW {
                window.remove(0);
            }
            buffer.push(v);
            if buffer.len() >= STEP || window.len() < STEP {
                buffer.clear();
                let n = window.len() as f64;
                mean = window.iter().sum::<f64>() / n;
                let var = window.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
                sd = var.sqrt();
            }
            score.clamp(0.0, 1.0)
        })
        .collect()
}

fn print(title: &str, r: &NabScore) {
    println!("\n{title}");
    println!(
        "{:<55} {:>6} {:>4} {:>4} {:>4} {:>8}",
        "file", "rows", "win", "hit", "fp", "raw"
    );
    for f in &r.files {
        println!(
            "{:<55} {:>6} {:>4} {:>4} {:>4} {:>8.3}",
            f.name, f.rows, f.windows, f.detected, f.false_positives, f.raw
        );
    }
    println!(
        "threshold {:.4}  raw {:.3}  null {:.1}  perfect {:.1}  NAB standard score {:.1}",
        r.threshold, r.raw, r.null, r.perfect, r.normalized
    );
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut data = PathBuf::from("/work/shared/eval/nab-dev");
    let mut scores_dir: Option<PathBuf> = None;
    let mut detector = "numeric".to_string();
    // Tuning aid: a JSON object of NumericConfig overrides.
    let mut numeric_cfg = NumericConfig::default();
    let mut write: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--data" => data = args.next().ok_or("--data DIR")?.into(),
            "--scores" => scores_dir = Some(args.next().ok_or("--scores DIR")?.into()),
            "--detector" => detector = args.next().ok_or("--detector NAME")?,
            "--write" => write = Some(args.next().ok_or("--write DIR")?.into()),
            "--numeric-config" => {
                numeric_cfg = serde_json::from_str(&args.next().ok_or("--numeric-config JSON")?)?
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let raw: BTreeMap<String, Vec<Vec<String>>> =
        serde_json::from_str(&std::fs::read_to_string(data.join("windows.json"))?)?;
    let mut files = Vec::new();
    let mut scores = Vec::new();
    let mut flags = Vec::new();
    for (name, ws) in raw {
        let rows = read_csv_columns(&data.join(&name))?;
        let timestamps: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
        let values: Vec<f64> = rows
            .iter()
            .map(|r| r.get(1).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN))
            .collect();
        let windows = ws
            .into_iter()
            .filter_map(|w| match w.as_slice() {
                [a, b] => Some((a.clone(), b.clone())),
                _ => None,
            })
            .collect();
        match &scores_dir {
            Some(dir) => {
                let out = read_csv_columns(&dir.join(&name))?;
                if out.len() != rows.len() {
                    return Err(format!(
                        "{name}: {} score rows for {} input rows",
                        out.len(),
                        rows.len()
                    )
                    .into());
                }
                let col = |r: &Vec<String>, i: usize| -> f64 {
                    r.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0)
                };
                scores.push(out.iter().map(|r| col(r, 2)).collect());
                flags.push(out.iter().map(|r| col(r, 3)).collect());
            }
            None => {
                let s: Vec<f64> = match detector.as_str() {
                    "gaussian" => windowed_gaussian(&values),
                    "numeric" => {
                        let mut sc = NumericScorer::new(numeric_cfg.clone());
                        values
                            .iter()
                            .zip(&timestamps)
                            .map(|(v, t)| sc.score_at(parse_ts(t), *v).score)
                            .collect()
                    }
                    other => return Err(format!("unknown detector {other}").into()),
                };
                if let Some(dir) = &write {
                    let path = dir.join(&name);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    let mut text = String::from("timestamp,value,anomaly_score\n");
                    for ((t, v), x) in timestamps.iter().zip(&values).zip(&s) {
                        text.push_str(&format!("{t},{v},{x}\n"));
                    }
                    std::fs::write(path, text)?;
                }
                scores.push(s);
            }
        }
        files.push(LabelledFile {
            name,
            timestamps,
            windows,
        });
    }
    let best = Nab::new(&files, &scores).best();
    print(&format!("{detector}: best threshold"), &best);
    if !flags.is_empty() {
        let flag = Nab::new(&files, &flags).at(0.5);
        print("alert flag as the detection", &flag);
    }
    Ok(())
}

fn parse_ts(t: &str) -> Option<i64> {
    logwarden_detect::numeric::parse_timestamp_us(t)
}
