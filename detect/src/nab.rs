//! Scoring rules of the Numenta Anomaly Benchmark (NAB), standard profile,
//! to judge per-record anomaly scores against labelled anomaly windows.
//!
//! Follows NAB's `sweeper.py`: the first `min(floor(15% of rows), 750)` rows
//! of a file are a probation period and not scored; inside a window only
//! the earliest detection counts, worth the scaled sigmoid of its position
//! (about +1 at the window's start, about 0 at its end); a window with no
//! detection costs [`FN_WEIGHT`]; a detection outside every window costs
//! [`FP_WEIGHT`] times the scaled sigmoid of its distance past the previous
//! window (the full amount before the first window or three window widths
//! after one). One threshold for all files, the one that maximizes the total,
//! which is normalized to 0 for the null detector (never fires) and 100 for
//! a perfect one.

/// Reward weight of a detection at a window's start (standard profile).
pub const TP_WEIGHT: f64 = 1.0;
/// Cost weight of a false positive (standard profile).
pub const FP_WEIGHT: f64 = 0.11;
/// Cost of a missed window (standard profile).
pub const FN_WEIGHT: f64 = 1.0;
/// Share of each file that is probation.
pub const PROBATION_SHARE: f64 = 0.15;
/// Longest probation, in rows.
pub const MAX_PROBATION_ROWS: f64 = 750.0;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// NAB's scaled sigmoid: +1 far before 0, -1 at 3 and beyond.
pub fn scaled_sigmoid(pos: f64) -> f64 {
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
    /// What a detection on this row is worth.
    weight: f64,
    label: Label,
    file: usize,
}

/// One labelled file: its timestamps (as written in the data, compared
/// after [`norm_ts`]) and its anomaly windows `(start, end)`, inclusive.
#[derive(Debug, Clone)]
pub struct LabelledFile {
    pub name: String,
    pub timestamps: Vec<String>,
    pub windows: Vec<(String, String)>,
}

/// The result of one file at the chosen threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct FileScore {
    pub name: String,
    pub rows: usize,
    pub windows: usize,
    /// Windows with at least one detection.
    pub detected: usize,
    /// Detections outside every window (probation excluded).
    pub false_positives: usize,
    /// Raw (unnormalized) score of the file.
    pub raw: f64,
}

/// The benchmark outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct NabScore {
    pub threshold: f64,
    pub raw: f64,
    /// Score of the null detector (every window missed).
    pub null: f64,
    /// Score of the perfect detector.
    pub perfect: f64,
    /// 100 * (raw - null) / (perfect - null).
    pub normalized: f64,
    pub files: Vec<FileScore>,
}

/// `2014-04-10 07:15:00.000000`, `2014-04-10T07:15:00` and
/// `2014-04-10 07:15:00` compare equal: the first 19 characters with `T`
/// read as a space.
pub fn norm_ts(s: &str) -> String {
    s.trim()
        .chars()
        .take(19)
        .map(|c| if c == 'T' { ' ' } else { c })
        .collect()
}

/// The benchmark over a set of files and their per-row scores.
pub struct Nab {
    points: Vec<Point>,
    files: Vec<(String, usize, usize)>,
    n_windows: usize,
}

impl Nab {
    /// Labels every row of every file; `scores[i]` are file `i`'s per-row
    /// scores (missing rows score 0, non-finite scores count as 0).
    pub fn new(files: &[LabelledFile], scores: &[Vec<f64>]) -> Self {
        let mut points = Vec::new();
        let mut meta = Vec::new();
        let mut n_windows = 0;
        for (fi, f) in files.iter().enumerate() {
            let s = scores.get(fi).map(Vec::as_slice).unwrap_or(&[]);
            let pts = label_file(f, s, n_windows, fi);
            n_windows += f.windows.len();
            points.extend(pts);
            meta.push((f.name.clone(), f.timestamps.len(), f.windows.len()));
        }
        Self {
            points,
            files: meta,
            n_windows,
        }
    }

    /// The score with the single threshold that maximizes it: every
    /// distinct score is tried, swept downwards with running totals.
    pub fn best(&self) -> NabScore {
        let mut sorted: Vec<&Point> = self
            .points
            .iter()
            .filter(|p| p.label != Label::Probation)
            .collect();
        sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut win: Vec<Option<f64>> = vec![None; self.n_windows];
        for p in &sorted {
            if let Label::Window(id) = p.label {
                win[id] = Some(-FN_WEIGHT);
            }
        }
        let mut win_total: f64 = win.iter().flatten().sum();
        let null = win_total;
        // Above every score: the null detector.
        let mut best = (null, f64::INFINITY);
        let mut fp = 0.0;
        let mut i = 0;
        while i < sorted.len() {
            let thr = sorted[i].score;
            while i < sorted.len() && sorted[i].score == thr {
                match sorted[i].label {
                    Label::Outside => fp += sorted[i].weight,
                    Label::Window(id) => {
                        if let Some(w) = win[id].as_mut() {
                            if sorted[i].weight > *w {
                                win_total += sorted[i].weight - *w;
                                *w = sorted[i].weight;
                            }
                        }
                    }
                    Label::Probation => {}
                }
                i += 1;
            }
            let total = fp + win_total;
            if total > best.0 {
                best = (total, thr);
            }
        }
        self.at(best.1)
    }

    /// The score when every row scoring at least `threshold` is a detection.
    pub fn at(&self, threshold: f64) -> NabScore {
        let mut win: Vec<Option<f64>> = vec![None; self.n_windows];
        let mut win_file = vec![usize::MAX; self.n_windows];
        let mut per: Vec<FileScore> = self
            .files
            .iter()
            .map(|(name, rows, windows)| FileScore {
                name: name.clone(),
                rows: *rows,
                windows: *windows,
                detected: 0,
                false_positives: 0,
                raw: 0.0,
            })
            .collect();
        for p in &self.points {
            match p.label {
                Label::Probation => {}
                Label::Outside => {
                    if p.score >= threshold {
                        per[p.file].raw += p.weight;
                        per[p.file].false_positives += 1;
                    }
                }
                Label::Window(id) => {
                    win_file[id] = p.file;
                    let w = win[id].get_or_insert(-FN_WEIGHT);
                    if p.score >= threshold && p.weight > *w {
                        *w = p.weight;
                    }
                }
            }
        }
        let mut scorable = 0usize;
        for (id, w) in win.iter().enumerate() {
            if let Some(w) = w {
                scorable += 1;
                let f = &mut per[win_file[id]];
                f.raw += w;
                if *w > -FN_WEIGHT {
                    f.detected += 1;
                }
            }
        }
        let null = -FN_WEIGHT * scorable as f64;
        let perfect = TP_WEIGHT * scorable as f64;
        let raw: f64 = per.iter().map(|f| f.raw).sum();
        let normalized = if perfect > null {
            100.0 * (raw - null) / (perfect - null)
        } else {
            0.0
        };
        NabScore {
            threshold,
            raw,
            null,
            perfect,
            normalized,
            files: per,
        }
    }
}

/// NAB's `calcSweepScore` labelling of one file.
fn label_file(f: &LabelledFile, scores: &[f64], first_window_id: usize, file: usize) -> Vec<Point> {
    let ts: Vec<String> = f.timestamps.iter().map(|t| norm_ts(t)).collect();
    let max_tp = scaled_sigmoid(-1.0);
    let probation = (PROBATION_SHARE * ts.len() as f64)
        .floor()
        .min(MAX_PROBATION_ROWS);
    let index = |t: &str| ts.iter().position(|x| x == t);
    // Windows as row ranges, in order.
    let mut wins: Vec<(usize, usize, usize)> = f
        .windows
        .iter()
        .enumerate()
        .filter_map(|(k, (a, b))| {
            let (l, r) = (index(&norm_ts(a))?, index(&norm_ts(b))?);
            Some((first_window_id + k, l, r))
        })
        .collect();
    wins.sort_by_key(|w| w.1);
    let mut out = Vec::with_capacity(ts.len());
    let mut next = 0;
    let mut prev: Option<(usize, f64)> = None; // (right, width)
    for i in 0..ts.len() {
        while next < wins.len() && wins[next].2 < i {
            let (_, l, r) = wins[next];
            prev = Some((r, (r - l + 1) as f64));
            next += 1;
        }
        let cur = wins.get(next).filter(|w| w.1 <= i);
        let (weight, label) = match cur {
            Some(&(id, l, r)) => {
                let width = (r - l + 1) as f64;
                let pos = -((r as f64) - i as f64 + 1.0) / width;
                (scaled_sigmoid(pos) * TP_WEIGHT / max_tp, Label::Window(id))
            }
            None => {
                let pos = match prev {
                    None => 3.0,
                    Some((right, width)) => (i as f64 - right as f64) / (width - 1.0).max(1.0),
                };
                (scaled_sigmoid(pos) * FP_WEIGHT, Label::Outside)
            }
        };
        let label = if (i as f64) >= probation {
            label
        } else {
            Label::Probation
        };
        let score = scores.get(i).copied().unwrap_or(0.0);
        out.push(Point {
            score: if score.is_finite() { score } else { 0.0 },
            weight,
            label,
            file,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rows: usize, windows: &[(usize, usize)]) -> LabelledFile {
        let timestamps: Vec<String> = (0..rows).map(|i| format!("2020-01-01 {i:08}")).collect();
        let windows = windows
            .iter()
            .map(|(a, b)| (timestamps[*a].clone(), timestamps[*b].clone()))
            .collect();
        LabelledFile {
            name: "f".into(),
            timestamps,
            windows,
        }
    }

    #[test]
    fn null_perfect_and_late_detectors() {
        let f = file(1000, &[(500, 599)]);
        let null = Nab::new(std::slice::from_ref(&f), &[vec![0.0; 1000]]).best();
        assert_eq!(null.normalized, 0.0);
        let mut s = vec![0.0; 1000];
        s[500] = 1.0;
        let perfect = Nab::new(std::slice::from_ref(&f), &[s]).best();
        assert!((perfect.normalized - 100.0).abs() < 1e-9, "{perfect:?}");
        let mut late = vec![0.0; 1000];
        late[590] = 1.0;
        let late = Nab::new(std::slice::from_ref(&f), &[late]).best();
        // 90% into the window: worth 2 sigmoid(0.5) - 1, about a quarter.
        assert!((0.24..0.26).contains(&late.raw), "{late:?}");
    }

    #[test]
    fn false_positives_cost_and_probation_is_free() {
        let f = file(1000, &[(500, 599)]);
        let mut s = vec![0.0; 1000];
        s[500] = 1.0;
        s[10] = 1.0; // probation: free
        s[300] = 1.0; // before the window: full cost
        let r = Nab::new(std::slice::from_ref(&f), &[s]).at(0.5);
        assert_eq!(r.files[0].false_positives, 1);
        assert!((r.raw - (1.0 - FP_WEIGHT)).abs() < 1e-9, "{r:?}");
        // Just after the window costs less than far after it.
        let mut near = vec![0.0; 1000];
        near[601] = 1.0;
        let mut far = vec![0.0; 1000];
        far[950] = 1.0;
        let near = Nab::new(std::slice::from_ref(&f), &[near]).at(0.5).raw;
        let far = Nab::new(std::slice::from_ref(&f), &[far]).at(0.5).raw;
        assert!(near > far, "{near} {far}");
    }

    #[test]
    fn best_threshold_matches_a_direct_evaluation() {
        let f = file(1000, &[(400, 499), (700, 799)]);
        let s: Vec<f64> = (0..1000).map(|i| ((i * 37) % 101) as f64 / 100.0).collect();
        let nab = Nab::new(std::slice::from_ref(&f), &[s]);
        let best = nab.best();
        for t in [0.1, 0.5, 0.9, 0.99, 1.0] {
            assert!(nab.at(t).raw <= best.raw + 1e-9);
        }
        assert!((nab.at(best.threshold).raw - best.raw).abs() < 1e-9);
    }
}
