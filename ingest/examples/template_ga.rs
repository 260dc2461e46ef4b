//! Grouping accuracy and speed of the template miner on labelled Loghub
//! datasets: every folder of DIR holding a structured CSV (see
//! `eval::datasets_in`), so the dev subset and a whole benchmark run alike.
//!
//! `cargo run --release -p logwarden-ingest --example template_ga [DIR]`
//! (DIR defaults to `$LOGWARDEN_EVAL_DIR`, then `../shared/eval/loghub-dev`).
//! GA is computed on the ids assigned online, as each line arrives. Speed is
//! the best of several passes of a fresh miner over the dataset's lines.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use logwarden_ingest::template::eval::{
    datasets_in, eval_dir, grouping_accuracy, load_structured_csv,
};
use logwarden_ingest::template::{TemplateConfig, TemplateMiner};

/// Timed passes per dataset; the fastest is reported.
const SPEED_PASSES: usize = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(eval_dir, PathBuf::from);
    let cfg = TemplateConfig::default();
    let verbose = std::env::var_os("TEMPLATE_GA_VERBOSE").is_some();
    println!(
        "{:<10} {:>6} {:>10} {:>9} {:>7} {:>12}  file",
        "dataset", "lines", "templates", "true", "GA", "lines/s"
    );
    let (mut ga_sum, mut n) = (0.0, 0);
    let datasets = datasets_in(&dir)?;
    if datasets.is_empty() {
        return Err(format!("no labelled datasets under {}", dir.display()).into());
    }
    for (name, path) in &datasets {
        let lines = match load_structured_csv(path) {
            Ok(l) => l,
            Err(e) => {
                // Not a table row: the table stays parseable.
                eprintln!("{name}: skipped: {e}");
                continue;
            }
        };
        let mut miner = TemplateMiner::new(&cfg)?;
        let pred: Vec<u64> = lines.iter().map(|l| miner.observe(&l.content).0).collect();
        let truth: Vec<&str> = lines.iter().map(|l| l.event_id.as_str()).collect();
        let ga = grouping_accuracy(&pred, &truth);
        let found = pred.iter().collect::<HashSet<_>>().len();
        let true_n = truth.iter().collect::<HashSet<_>>().len();

        let mut best = f64::MAX;
        for _ in 0..SPEED_PASSES {
            let mut m = TemplateMiner::new(&cfg)?;
            let t = Instant::now();
            for l in &lines {
                std::hint::black_box(m.observe(&l.content));
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        let rate = lines.len() as f64 / best;
        println!(
            "{name:<10} {:>6} {found:>10} {true_n:>9} {ga:>7.3} {rate:>12.0}  {}",
            lines.len(),
            path.display()
        );
        if verbose {
            report_errors(&lines, &pred, &miner);
        }
        ga_sum += ga;
        n += 1;
    }
    if n > 0 {
        println!("average GA {:.3} over {n} datasets", ga_sum / f64::from(n));
    }
    Ok(())
}

/// With `TEMPLATE_GA_VERBOSE`: the true templates whose lines were grouped
/// wrongly, with the predicted templates they were mixed into.
fn report_errors(
    lines: &[logwarden_ingest::template::eval::LabeledLine],
    pred: &[u64],
    miner: &TemplateMiner,
) {
    use std::collections::HashMap;
    let text: HashMap<u64, &str> = miner.templates().map(|(id, t, _)| (id, t)).collect();
    let mut by_true: HashMap<&str, HashSet<u64>> = HashMap::new();
    let mut by_pred: HashMap<u64, HashSet<&str>> = HashMap::new();
    let mut size: HashMap<&str, usize> = HashMap::new();
    for (l, &p) in lines.iter().zip(pred) {
        by_true.entry(&l.event_template).or_default().insert(p);
        by_pred.entry(p).or_default().insert(&l.event_template);
        *size.entry(&l.event_template).or_default() += 1;
    }
    let mut bad: Vec<_> = by_true
        .iter()
        .filter(|(_, ps)| ps.len() > 1 || ps.iter().any(|p| by_pred[p].len() > 1))
        .collect();
    bad.sort_by_key(|(t, _)| std::cmp::Reverse(size[*t]));
    for (t, ps) in bad {
        println!("  wrong {:>4} x {t}", size[t]);
        for p in ps {
            println!(
                "        -> {:016x} {} (mixes {} true)",
                p,
                text.get(p).copied().unwrap_or("?"),
                by_pred[p].len()
            );
        }
    }
}
