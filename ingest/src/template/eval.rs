//! Grouping accuracy (GA) and a loader for Loghub `*_structured.csv` files,
//! to measure the miner against labelled data (`examples/template_ga.rs`
//! and the regression test in `tests.rs`).

use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};

/// Environment variable naming the folder of Loghub datasets.
pub const EVAL_DIR_ENV: &str = "LOGWARDEN_EVAL_DIR";

/// The development datasets, each `<dir>/<Name>/<Name>_2k.log_structured.csv`.
pub const DEV_DATASETS: [&str; 4] = ["Apache", "HDFS", "Linux", "OpenSSH"];

/// One labelled line.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledLine {
    /// The free-text message fed to the miner.
    pub content: String,
    /// The ground-truth template id.
    pub event_id: String,
    /// The ground-truth template text.
    pub event_template: String,
}

/// Failure to read a labelled dataset.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
}

/// The fraction of lines whose predicted group (lines sharing its predicted
/// id) is exactly its true group (lines sharing its true id). 1.0 for no lines.
///
/// # Panics
/// If the slices have different lengths.
pub fn grouping_accuracy<P, T>(pred: &[P], truth: &[T]) -> f64
where
    P: Eq + Hash,
    T: Eq + Hash,
{
    assert_eq!(pred.len(), truth.len(), "one prediction per line");
    if pred.is_empty() {
        return 1.0;
    }
    let mut pred_size: HashMap<&P, usize> = HashMap::new();
    let mut true_size: HashMap<&T, usize> = HashMap::new();
    let mut pair_size: HashMap<(&P, &T), usize> = HashMap::new();
    for (p, t) in pred.iter().zip(truth) {
        *pred_size.entry(p).or_default() += 1;
        *true_size.entry(t).or_default() += 1;
        *pair_size.entry((p, t)).or_default() += 1;
    }
    // A line is right when its (pred, true) cell holds its whole predicted
    // group and its whole true group.
    let correct: usize = pair_size
        .iter()
        .filter(|((p, t), &n)| pred_size[p] == n && true_size[t] == n)
        .map(|(_, &n)| n)
        .sum();
    correct as f64 / pred.len() as f64
}

/// Parses RFC 4180 CSV: `,` separators, `"` quoting with `""` escapes,
/// newlines allowed inside quotes, `\n` or `\r\n` line ends.
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                in_quotes = true;
                at_field_start = false;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                at_field_start = true;
            }
            _ => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if in_quotes {
        return Err("unterminated quoted field".to_owned());
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// Loads the `Content`, `EventId` and `EventTemplate` columns of a Loghub
/// structured CSV, in file order.
pub fn load_structured_csv(path: &Path) -> Result<Vec<LabeledLine>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_owned(),
        source,
    })?;
    let format = |reason: String| EvalError::Format {
        path: path.to_owned(),
        reason,
    };
    let rows = parse_csv(&text).map_err(format)?;
    let mut rows = rows.into_iter();
    let header = rows.next().ok_or_else(|| format("empty file".to_owned()))?;
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}') == name)
            .ok_or_else(|| format(format!("no `{name}` column")))
    };
    let (content, event_id, template) = (col("Content")?, col("EventId")?, col("EventTemplate")?);
    rows.enumerate()
        .filter(|(_, r)| !(r.len() == 1 && r[0].is_empty()))
        .map(|(i, mut r)| {
            if r.len() != header.len() {
                return Err(format(format!(
                    "row {}: {} fields, header has {}",
                    i + 2,
                    r.len(),
                    header.len()
                )));
            }
            Ok(LabeledLine {
                content: std::mem::take(&mut r[content]),
                event_id: std::mem::take(&mut r[event_id]),
                event_template: std::mem::take(&mut r[template]),
            })
        })
        .collect()
}

/// The folder of Loghub datasets: `$LOGWARDEN_EVAL_DIR`, else
/// `shared/eval/loghub-dev` beside the repository.
pub fn eval_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(EVAL_DIR_ENV) {
        return PathBuf::from(dir);
    }
    // CARGO_MANIFEST_DIR is <repo>/ingest; the shared folder sits beside <repo>.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/eval/loghub-dev")
}

/// The structured CSV of dataset `name` under `dir`.
pub fn dataset_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name).join(format!("{name}_2k.log_structured.csv"))
}

/// Every labelled dataset under `dir`, by name: each folder holding a
/// structured CSV, `<Name>_2k.log_structured.csv` (Loghub's layout) or
/// else the first by name of its files ending in `_structured.csv` (as
/// Loghub-2.0's `<Name>_full.log_structured.csv`). Folders without one are
/// skipped, so the same evaluator runs on the dev subset and on a whole
/// benchmark.
pub fn datasets_in(dir: &Path) -> Result<Vec<(String, PathBuf)>, EvalError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| EvalError::Io { path, source }
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let folder = entry.path();
        // Follows symlinks: a benchmark assembled from linked folders counts.
        if !std::fs::metadata(&folder).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let usual = dataset_path(dir, &name);
        if usual.is_file() {
            found.push((name, usual));
            continue;
        }
        let mut csvs = Vec::new();
        for file in std::fs::read_dir(&folder).map_err(io(&folder))? {
            let path = file.map_err(io(&folder))?.path();
            if path.is_file()
                && path
                    .file_name()
                    .is_some_and(|f| f.to_string_lossy().ends_with("_structured.csv"))
            {
                csvs.push(path);
            }
        }
        csvs.sort();
        if let Some(first) = csvs.into_iter().next() {
            found.push((name, first));
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ga_counts_exact_groups_only() {
        // Truth groups {0,1}, {2}, {3}; prediction merges 2 and 3.
        let truth = ["a", "a", "b", "c"];
        assert_eq!(grouping_accuracy(&[1, 1, 2, 2], &truth), 0.5);
        assert_eq!(grouping_accuracy(&[7, 7, 8, 9], &truth), 1.0);
        // Splitting a group makes all its lines wrong.
        assert_eq!(grouping_accuracy(&[1, 2, 3, 4], &truth), 0.5);
        assert_eq!(grouping_accuracy::<u8, u8>(&[], &[]), 1.0);
    }

    #[test]
    fn every_folder_with_a_structured_csv_is_a_dataset() {
        let dir = std::env::temp_dir().join(format!("logwarden-eval-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = |rel: &str| {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&p, "Content,EventId,EventTemplate\n").expect("write");
        };
        file("Zeta/Zeta_2k.log_structured.csv");
        file("Zeta/Zeta_1k.log_structured.csv");
        file("Alpha/Alpha_full.log_structured.csv");
        file("Alpha/Alpha_full.log_templates.csv");
        file("Empty/notes.txt");
        file("Loose_2k.log_structured.csv");
        file("elsewhere/Linked/Linked_2k.log_structured.csv");
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.join("elsewhere/Linked"), dir.join("Linked"))
            .expect("symlink");
        let found = datasets_in(&dir).expect("listed");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            found,
            vec![
                (
                    "Alpha".to_owned(),
                    dir.join("Alpha/Alpha_full.log_structured.csv")
                ),
                #[cfg(unix)]
                (
                    "Linked".to_owned(),
                    dir.join("Linked/Linked_2k.log_structured.csv")
                ),
                (
                    "Zeta".to_owned(),
                    dir.join("Zeta/Zeta_2k.log_structured.csv")
                ),
            ]
        );
        assert!(datasets_in(&dir).is_err(), "a missing folder is an error");
    }

    #[test]
    fn csv_handles_quotes_and_newlines() {
        let rows =
            parse_csv("a,b,c\n1,\"x, \"\"y\"\"\",\"two\nlines\"\r\n2,,z").expect("valid csv");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1], vec!["1", "x, \"y\"", "two\nlines"]);
        assert_eq!(rows[2], vec!["2", "", "z"]);
        assert!(parse_csv("\"open").is_err());
    }
}
