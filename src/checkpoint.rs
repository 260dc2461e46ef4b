//! The detect checkpoint: the detector's state and the offsets it covers,
//! in one JSON file under `[detect] state_dir`, replaced atomically (written
//! to a temporary file, fsynced, renamed over the old one, directory
//! fsynced).
//!
//! The offsets in the file are the next offset to read of every partition
//! whose records the state includes. detect writes the checkpoint first and
//! commits the same offsets to the group afterwards; after a crash between
//! the two, the group resumes from older offsets, and the records below the
//! checkpoint's offsets are skipped (they are in the state already), so no
//! record is counted twice and none is missing.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use logwarden_detect::{Detector, DetectorState, DetectorStateRef};
use logwarden_ingest::template::{MinerSnapshot, TemplateConfig, TemplateMiner};

/// File name of the checkpoint inside the state directory.
pub const CHECKPOINT_FILE: &str = "detect-checkpoint.json";
/// Version of the checkpoint file layout (the detector state inside has a
/// version of its own).
const CHECKPOINT_FORMAT: u32 = 1;

/// Next offset to read, per (topic, partition).
pub type Offsets = HashMap<(String, i32), i64>;

#[derive(Debug, Serialize, Deserialize)]
struct SavedOffset {
    topic: String,
    partition: i32,
    /// The next offset to read: every record below it is in the state.
    offset: i64,
}

#[derive(Serialize)]
struct CheckpointOut<'a> {
    format: u32,
    group: &'a str,
    written_at: String,
    offsets: Vec<SavedOffset>,
    detector: DetectorStateRef<'a>,
    /// The parser's template miner, so template ids survive the restart.
    templates: Option<MinerSnapshot>,
}

#[derive(Deserialize)]
struct CheckpointIn {
    format: u32,
    group: String,
    offsets: Vec<SavedOffset>,
    detector: DetectorState,
    #[serde(default)]
    templates: Option<MinerSnapshot>,
}

/// A checkpoint read back: the detector state and its offsets.
pub struct Restored {
    pub detector: DetectorState,
    pub offsets: Offsets,
    pub templates: Option<MinerSnapshot>,
}

/// The checkpoint file of `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

/// Reads the checkpoint of `dir`, if there is one. A checkpoint of another
/// consumer group is refused: its offsets mean nothing to this group.
pub fn read(dir: &Path, group: &str) -> anyhow::Result<Option<Restored>> {
    let p = path(dir);
    let file = match std::fs::File::open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", p.display())),
    };
    let c: CheckpointIn = serde_json::from_reader(BufReader::new(file))
        .with_context(|| format!("reading the detect checkpoint {}", p.display()))?;
    if c.format != CHECKPOINT_FORMAT {
        bail!(
            "{}: checkpoint format {}, this build reads format {CHECKPOINT_FORMAT}",
            p.display(),
            c.format
        );
    }
    if c.group != group {
        bail!(
            "{} holds the state of consumer group `{}`, not `{group}`: give each group (and each instance) a state_dir of its own",
            p.display(),
            c.group
        );
    }
    let offsets = c
        .offsets
        .into_iter()
        .map(|o| ((o.topic, o.partition), o.offset))
        .collect();
    Ok(Some(Restored {
        detector: c.detector,
        offsets,
        templates: c.templates,
    }))
}

/// Writes the checkpoint of `detector` covering `offsets` to `dir`,
/// atomically; returns its size in bytes.
pub fn write(
    dir: &Path,
    group: &str,
    detector: &Detector,
    templates: Option<MinerSnapshot>,
    offsets: &Offsets,
) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let target = path(dir);
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let mut offsets: Vec<SavedOffset> = offsets
        .iter()
        .map(|((topic, partition), offset)| SavedOffset {
            topic: topic.clone(),
            partition: *partition,
            offset: *offset,
        })
        .collect();
    offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let body = CheckpointOut {
        format: CHECKPOINT_FORMAT,
        group,
        written_at: chrono::Utc::now().to_rfc3339(),
        offsets,
        detector: detector.state(),
        templates,
    };
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = BufWriter::new(file);
    serde_json::to_writer(&mut w, &body).context("encoding the detector state")?;
    w.flush()
        .with_context(|| format!("writing {}", tmp.display()))?;
    let file = w.into_inner().context("flushing the checkpoint")?;
    file.sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    drop(file);
    std::fs::rename(&tmp, &target)
        .with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))?;
    // The rename itself is durable once the directory is synced.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(size)
}

/// The template miner to continue with, from a checkpoint's snapshot: the
/// snapshot's own when this build mines as the one that saved it did (same
/// rules version, same `[parse.templates]` settings); otherwise none (the
/// parser's fresh miner mines afresh, which gives templates whose founding
/// line masks alike the ids they had) and `detector` relearns its
/// templates, so that ids that did change raise no `new_template` alerts.
/// A damaged snapshot is an error, as a damaged checkpoint is.
pub fn restore_templates(
    cfg: &TemplateConfig,
    snap: MinerSnapshot,
    detector: &mut Detector,
) -> anyhow::Result<Option<TemplateMiner>> {
    match TemplateMiner::restore(cfg, snap) {
        Ok(miner) => Ok(Some(miner)),
        Err(e) if e.mined_differently() => {
            tracing::warn!(
                error = %e,
                "template state not restored: mining afresh, new-template alerts learn again"
            );
            detector.relearn_templates();
            Ok(None)
        }
        Err(e) => Err(e).context("restoring the template miner from the checkpoint"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use logwarden_detect::{DetectorConfig, Event};
    use logwarden_ingest::record::Level;
    use logwarden_ingest::template::SnapshotToken;

    #[test]
    fn write_then_read_round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Detector::new(DetectorConfig::default()).unwrap();
        for i in 0..5000i64 {
            d.observe(&Event {
                event_time_us: 1_714_557_600_000_000 + i * 100_000,
                service: Some(if i % 2 == 0 { "a" } else { "b" }),
                level: Level::Info,
                template_id: None,
                message: None,
                values: &[],
                metrics: &[],
            });
        }
        let offsets: Offsets = [(("logs".to_string(), 0), 17), (("logs".to_string(), 2), 4)].into();
        assert!(read(dir.path(), "g").unwrap().is_none());
        write(dir.path(), "g", &d, None, &offsets).unwrap();
        write(dir.path(), "g", &d, None, &offsets).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [CHECKPOINT_FILE], "no temporary file left behind");
        let r = read(dir.path(), "g").unwrap().unwrap();
        assert_eq!(r.offsets, offsets);
        let back = Detector::from_state(DetectorConfig::default(), r.detector).unwrap();
        assert_eq!(back.stats(), d.stats());
        assert_eq!(back.watermark_us(), d.watermark_us());
        let err = read(dir.path(), "other").err().unwrap();
        assert!(err.to_string().contains("consumer group `g`"), "{err}");
    }

    /// Every series' `template_windows` in the detector's state.
    fn template_windows(d: &Detector) -> Vec<u64> {
        let state = serde_json::to_value(d.state()).unwrap();
        let mut out = Vec::new();
        for s in state["series"].as_object().unwrap().values() {
            out.push(s["template_windows"].as_u64().unwrap());
        }
        out
    }

    #[test]
    fn templates_of_other_rules_or_settings_are_mined_afresh_and_relearned() {
        let mut d = Detector::new(DetectorConfig::default()).unwrap();
        for i in 0..20_000i64 {
            d.observe(&Event {
                event_time_us: 1_714_557_600_000_000 + i * 10_000,
                service: Some("a"),
                level: Level::Info,
                template_id: Some(1 + (i % 3) as u64),
                message: None,
                values: &[],
                metrics: &[],
            });
        }
        assert!(template_windows(&d).iter().all(|&w| w > 0));
        let cfg = TemplateConfig::default();
        let mut miner = TemplateMiner::new(&cfg).unwrap();
        miner.observe("Invalid user alice from 10.0.0.1");
        let restored = restore_templates(&cfg, miner.snapshot(), &mut d).unwrap();
        assert_eq!(restored.map(|m| m.len()), Some(1));
        assert!(template_windows(&d).iter().all(|&w| w > 0), "kept learning");

        let mut older = miner.snapshot();
        older.rules_version -= 1;
        assert!(restore_templates(&cfg, older, &mut d).unwrap().is_none());
        assert_eq!(template_windows(&d), [0], "learning again");

        let other = TemplateConfig {
            similarity_threshold: 0.9,
            ..TemplateConfig::default()
        };
        assert!(restore_templates(&other, miner.snapshot(), &mut d)
            .unwrap()
            .is_none());

        let mut damaged = miner.snapshot();
        damaged.templates[0].tokens[0] = SnapshotToken::Unframed;
        let err = restore_templates(&cfg, damaged, &mut d).err().unwrap();
        assert!(
            format!("{err:#}").contains("generalized first token"),
            "{err:#}"
        );
    }

    #[test]
    fn a_damaged_checkpoint_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), b"{\"format\":1,\"gro").unwrap();
        assert!(read(dir.path(), "g").is_err());
    }
}
