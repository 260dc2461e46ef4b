#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use logwarden_ingest::record::LogRecord;
use logwarden_ingest::sink::{Segment, Sink};
use object_store::memory::InMemory;

use super::*;
use crate::test_support::segment_from;
use crate::{LocalArchive, ObjectStoreArchive};

/// 2026-03-01T10:00:00Z
const T0: i64 = 1_772_359_200_000_000;

/// A segment of `n` records of source partition `p` from offset `first`,
/// spread over `hours` hourly partitions and three services.
fn segment(p: i32, first: i64, n: i64, hours: i64) -> Segment {
    segment_of(p, first, n, hours, |off| {
        (format!("m{off}"), vec![("k".into(), format!("v{off}"))])
    })
}

/// A segment of partition `p`, offsets `first..first + n` spread over
/// `hours` hours and three services, each record's message and attributes
/// from `body(offset)`.
fn segment_of(
    p: i32,
    first: i64,
    n: i64,
    hours: i64,
    body: impl Fn(i64) -> (String, Vec<(String, String)>),
) -> Segment {
    segment_from(p, first, n, |off| {
        let (message, attributes) = body(off);
        LogRecord {
            event_time_us: T0 + (off % hours) * 3_600_000_000 + off * 1000,
            service: Some(format!("svc{}", off % 3)),
            message,
            attributes,
            ..Default::default()
        }
    })
}

fn cfg() -> ArchiveLayout {
    let mut l = ArchiveLayout::default();
    l.compaction.close_after_secs = 0;
    l.compaction.settle_secs = 0;
    l
}

/// (row count, sum of offsets, xor-mix of every offset with its time): equal
/// before and after when no row is lost, duplicated or altered.
fn digest(batches: &[RecordBatch]) -> (usize, i64, u64) {
    let mut n = 0;
    let mut sum = 0i64;
    let mut mix = 0u64;
    for b in batches {
        let s = b.schema();
        let off: &Int64Array = b
            .column(s.index_of(col::OFFSET).unwrap())
            .as_primitive::<Int64Type>();
        let t = b
            .column(s.index_of(col::EVENT_TIME).unwrap())
            .as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            n += 1;
            sum += off.value(i);
            mix ^= fnv1a64(format!("{}:{}", off.value(i), t.value(i)).as_bytes());
        }
    }
    (n, sum, mix)
}

fn read_local(root: &Path) -> io::Result<Vec<RecordBatch>> {
    let mut b = LocalBackend::list_for_test(root)?;
    b.sort();
    let mut out = Vec::new();
    for rel in b {
        let f = File::open(root.join(&rel))?;
        let r = ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.build())
            .map_err(io::Error::other)?;
        for batch in r {
            out.push(batch.map_err(io::Error::other)?);
        }
    }
    Ok(out)
}

impl LocalBackend {
    /// Published files, walked the way a reader's `**/*.parquet` glob does.
    fn list_for_test(root: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d)? {
                let e = e?;
                let p = e.path();
                if e.file_type()?.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        Ok(out)
    }
}

#[test]
fn local_compaction_merges_small_files_and_keeps_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let mut a = LocalArchive::open(&root, cfg()).unwrap();
    for i in 0..10 {
        a.write(&segment(0, i * 100, 100, 3)).unwrap();
    }
    // Partition 1's last segment is in its in-flight record: never merged.
    a.write(&segment(1, 0, 50, 3)).unwrap();
    let before = digest(&read_local(&root).unwrap());
    let files_before = LocalBackend::list_for_test(&root).unwrap().len();
    assert_eq!(files_before, 11 * 3);

    let r = compact(&Location::Local(root.clone()), &cfg(), SystemTime::now()).unwrap();
    // The in-flight history protects every segment written: nothing merged.
    assert_eq!((r.partitions, r.files_in), (0, 0), "{r:?}");

    // Once a new owner recovered (everything below 1000 committed), the
    // history is empty and the files are fair game; partition 1's are not.
    a.recover("t", 0, 1000).unwrap();
    let r = compact(&Location::Local(root.clone()), &cfg(), SystemTime::now()).unwrap();
    assert_eq!(
        (r.partitions, r.files_in, r.files_out, r.rows),
        (3, 30, 3, 1000),
        "{r:?}"
    );
    let files = LocalBackend::list_for_test(&root).unwrap();
    assert_eq!(files.len(), 6, "{files:?}");
    assert_eq!(
        files
            .iter()
            .filter(|f| f.contains("/t-00001-00000000000000000000.parquet"))
            .count(),
        3
    );
    assert_eq!(digest(&read_local(&root).unwrap()), before);
    // Sorted by (service, event time) inside a merged file.
    let merged = files.iter().find(|f| f.contains(MERGED_PREFIX)).unwrap();
    assert_sorted(&read_file(&root.join(merged)).0);
    // Nothing left in the staging area, and a second run has nothing to do.
    let r = compact(&Location::Local(root.clone()), &cfg(), SystemTime::now()).unwrap();
    assert_eq!(r.files_in, 0);
    let staging = dir.path().join(".archive.compacting");
    assert_eq!(
        fs::read_dir(&staging)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count(),
        0
    );
}

#[test]
fn partitions_still_open_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let mut a = LocalArchive::open(&root, cfg()).unwrap();
    for i in 0..4 {
        a.write(&segment(0, i * 10, 10, 1)).unwrap();
    }
    a.recover("t", 0, 40).unwrap();
    let mut layout = cfg();
    // The partition 10:00-11:00 closes an hour after 11:00.
    layout.compaction.close_after_secs = 3600;
    let at =
        |h: i64| SystemTime::UNIX_EPOCH + Duration::from_micros((T0 + h * 3_600_000_000) as u64);
    // Files last written at 11:00, as if ingested live.
    for rel in LocalBackend::list_for_test(&root).unwrap() {
        let f = File::options().write(true).open(root.join(rel)).unwrap();
        f.set_modified(at(1)).unwrap();
    }
    let r = compact(&Location::Local(root.clone()), &layout, at(1)).unwrap();
    assert_eq!(r.files_in, 0);
    let r = compact(&Location::Local(root.clone()), &layout, at(2)).unwrap();
    assert_eq!(r.files_in, 4);
    assert!(partition_closed("dt=2026-03-01/service=x", 0, at(14)));
    assert!(!partition_closed("dt=2026-03-01/service=x", 0, at(13)));
    assert!(!partition_closed("service=x", 0, at(100)));
}

/// A reader walking `**/*.parquet` over and over while compaction runs:
/// every listing it completes holds every row exactly once. (A listing that
/// straddles a swap can fail to open a file that moved away; the reader
/// retries, as engines report such a query as failed, never as wrong.)
#[test]
fn readers_never_see_duplicates_or_gaps_during_local_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let mut a = LocalArchive::open(&root, cfg()).unwrap();
    for i in 0..40 {
        a.write(&segment(0, i * 50, 50, 8)).unwrap();
    }
    a.recover("t", 0, 2000).unwrap();
    let expected = digest(&read_local(&root).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let root = root.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut complete, mut torn) = (0, 0);
            loop {
                let finished = done.load(Ordering::Relaxed);
                match read_local(&root) {
                    Ok(b) => {
                        assert_eq!(digest(&b), expected, "a reader saw duplicates or gaps");
                        complete += 1;
                    }
                    Err(_) => torn += 1,
                }
                if finished {
                    return (complete, torn);
                }
            }
        })
    };
    let mut layout = cfg();
    // Merge a few files at a time, for many swaps.
    layout.compaction.target_file_bytes = 40_000;
    layout.compaction.min_file_bytes = 40_000;
    let r = compact(&Location::Local(root.clone()), &layout, SystemTime::now()).unwrap();
    done.store(true, Ordering::Relaxed);
    let (complete, _torn) = reader.join().unwrap();
    assert!(r.files_out >= 8, "{r:?}");
    assert!(complete >= 2);
    assert_eq!(digest(&read_local(&root).unwrap()), expected);
}

fn store_digest(rt: &tokio::runtime::Runtime, store: &Arc<InMemory>) -> (usize, i64, u64, usize) {
    let mut b = StoreBackend {
        store: store.clone(),
        prefix: "a".into(),
        props: WriterPropertiesForTest::props(),
        threads: 2,
        rt: runtime().unwrap(),
        lease_secs: DEFAULT_LEASE_SECS,
        lease: None,
    };
    let _ = rt;
    let files = b.list().unwrap();
    let mut batches = Vec::new();
    for f in &files {
        batches.extend(read_all(&mut b, &f.rel).unwrap());
    }
    let (n, s, m) = digest(&batches);
    (n, s, m, files.len())
}

struct WriterPropertiesForTest;
impl WriterPropertiesForTest {
    fn props() -> parquet::file::properties::WriterProperties {
        cfg().writer_properties()
    }
}

#[test]
fn store_compaction_merges_and_recovers_interrupted_runs() {
    let mem = Arc::new(InMemory::new());
    let rt = runtime().unwrap();
    let mut a = ObjectStoreArchive::new(mem.clone(), "a", cfg()).unwrap();
    for i in 0..6 {
        a.write(&segment(0, i * 100, 100, 2)).unwrap();
    }
    a.recover("t", 0, 600).unwrap();
    let before = store_digest(&rt, &mem);
    assert_eq!(before.3, 12);

    // An interrupted run that had put its output but not recorded it as
    // published: the next run deletes the output, keeps the inputs.
    let mut b = StoreBackend::new(mem.clone(), "a", &cfg()).unwrap();
    let files = b.list().unwrap();
    let dir = files[0].dir().to_string();
    let inputs: Vec<FileInfo> = files.iter().filter(|f| f.dir() == dir).cloned().collect();
    let journal = StoreBackend::journal_rel(&dir);
    b.put_json(
        &journal,
        &Journal {
            state: "writing".into(),
            inputs: inputs.iter().map(|f| f.rel.clone()).collect(),
            outputs: vec![format!("{dir}/compacted-0.parquet")],
        },
    )
    .unwrap();
    let mut batches = Vec::new();
    for f in &inputs {
        batches.extend(read_all(&mut b, &f.rel).unwrap());
    }
    let merged = merge_sorted(batches).unwrap();
    put_parquet(
        &rt,
        mem.clone(),
        b.path(&format!("{dir}/compacted-0.parquet")).unwrap(),
        merged.schema(),
        [Ok(merged.clone())],
        &b.props,
        2,
    )
    .unwrap();
    assert_eq!(b.recover().unwrap(), 1);
    assert_eq!(store_digest(&rt, &mem), before);

    // One interrupted after publishing: the next run deletes the inputs.
    b.put_json(
        &journal,
        &Journal {
            state: "published".into(),
            inputs: inputs.iter().map(|f| f.rel.clone()).collect(),
            outputs: vec![format!("{dir}/compacted-1.parquet")],
        },
    )
    .unwrap();
    put_parquet(
        &rt,
        mem.clone(),
        b.path(&format!("{dir}/compacted-1.parquet")).unwrap(),
        merged.schema(),
        [Ok(merged)],
        &b.props,
        2,
    )
    .unwrap();
    assert_eq!(b.recover().unwrap(), 1);
    let after = store_digest(&rt, &mem);
    assert_eq!((after.0, after.1, after.2), (before.0, before.1, before.2));
    assert_eq!(after.3, 12 - inputs.len() + 1);

    // A full run merges the rest.
    let r = compact_store(
        mem.clone(),
        "a",
        &cfg(),
        SystemTime::now(),
        RunScope::default(),
    )
    .unwrap();
    assert_eq!(r.files_out, 1, "{r:?}");
    let after = store_digest(&rt, &mem);
    assert_eq!(
        (after.0, after.1, after.2, after.3),
        (before.0, before.1, before.2, 2)
    );
}

/// Like [`segment`], with messages of 64 hex digits that do not compress
/// away: file sizes grow with the rows, as real logs do.
fn wide_segment(p: i32, first: i64, n: i64, hours: i64) -> Segment {
    segment_of(p, first, n, hours, |off| {
        let h = |k: u64| fnv1a64(format!("{p}:{off}:{k}").as_bytes());
        let message = format!("{:016x}{:016x}{:016x}{:016x}", h(0), h(1), h(2), h(3));
        (message, Vec::new())
    })
}

/// A backfill that ran to its end (its record settled) is compacted at
/// once, whatever its partitions' time ranges and its files' ages: every
/// partition keeps at most one file under `min_file_bytes` (its last,
/// small remainder), no row is lost or doubled, and the files of another
/// source in the same open partitions follow the usual rules.
#[test]
fn a_settled_backfill_leaves_at_most_one_small_file_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let mut layout = ArchiveLayout::default();
    let mut a = LocalArchive::open(&root, layout.clone()).unwrap();
    for i in 0..60 {
        a.write(&wide_segment(0, i * 40, 40, 3)).unwrap();
    }
    // Another source, still in flight, in the same partitions.
    a.write(&wide_segment(1, 0, 30, 3)).unwrap();
    let before = digest(&read_local(&root).unwrap());
    let files = LocalBackend::list_for_test(&root).unwrap();
    assert_eq!(files.len(), 61 * 3);
    // Every segment file is small: the minimum is twice the largest, and a
    // merged file takes about twenty of them.
    let largest = files
        .iter()
        .map(|f| fs::metadata(root.join(f)).unwrap().len())
        .max()
        .unwrap();
    layout.compaction.min_file_bytes = 2 * largest;
    layout.compaction.target_file_bytes = 20 * largest;
    let min = layout.compaction.min_file_bytes;

    // Source "t", partition 0 ran to its end.
    a.mark_settled("t", 0).unwrap();
    // An hour into the data: the partitions are open and the files younger
    // than the settle time; only the backfill's own files are taken.
    let at1 = SystemTime::UNIX_EPOCH + Duration::from_micros((T0 + 3_600_000_000) as u64);
    let loc = Location::Local(root.clone());
    let r = compact(&loc, &layout, at1).unwrap();
    assert_eq!(
        r.files_in, 0,
        "without the scope nothing is eligible: {r:?}"
    );
    let scope = RunScope {
        final_source: Some(("t", 0)),
        stop: &[],
    };
    let r = compact_scoped(&loc, &layout, at1, scope).unwrap();
    assert_eq!(r.files_in, 180, "{r:?}");
    assert!(!r.stopped);
    assert_eq!(digest(&read_local(&root).unwrap()), before);

    let files = LocalBackend::list_for_test(&root).unwrap();
    let (other, backfill): (Vec<_>, Vec<_>) = files
        .iter()
        .partition(|f| f.ends_with("/t-00001-00000000000000000000.parquet"));
    assert_eq!(other.len(), 3, "the other source's files stay: {files:?}");
    let mut small_per_dir: BTreeMap<&str, usize> = BTreeMap::new();
    for rel in &backfill {
        assert!(rel.contains(MERGED_PREFIX), "{rel} was not merged");
        let n = small_per_dir
            .entry(rel.rsplit_once('/').unwrap().0)
            .or_default();
        if fs::metadata(root.join(rel)).unwrap().len() < min {
            *n += 1;
        }
    }
    assert_eq!(small_per_dir.len(), 3);
    for (d, n) in &small_per_dir {
        assert!(*n <= 1, "{d}: {n} files under the minimum");
    }
    assert!(
        backfill.len() >= 6,
        "several merged files per partition: {files:?}"
    );

    // A stop flag already set: the run stops before its first merge.
    for i in 0..5 {
        a.write(&wide_segment(2, i * 10, 10, 1)).unwrap();
    }
    a.mark_settled("t", 2).unwrap();
    let stop = AtomicBool::new(true);
    let scope = RunScope {
        final_source: Some(("t", 2)),
        stop: &[&stop],
    };
    let r = compact_scoped(&loc, &layout, at1, scope).unwrap();
    assert!(r.stopped && r.files_in == 0, "{r:?}");
}

/// Runs `backfill` (which writes to `root`), then writes `segments`
/// committed segments of `rows` rows of another source into the same
/// partitions, then an ordinary compaction a day from now. Returns the
/// digest before the compaction, its report, and how many files it named
/// after the backfill (source "t", partition 0).
fn backfill_beside_another_source(
    root: &Path,
    layout: &ArchiveLayout,
    backfill: &dyn Fn(),
    segments: i64,
    rows: i64,
) -> ((usize, i64, u64), CompactReport, usize) {
    backfill();
    let mut a = LocalArchive::open(root, layout.clone()).unwrap();
    for i in 0..segments {
        a.write(&wide_segment(1, 10_000 + i * rows, rows, 2))
            .unwrap();
    }
    drop(a);
    // Committed: its record emptied, as a clean exit or a new owner leaves it.
    LocalArchive::open(root, layout.clone())
        .unwrap()
        .recover("t", 1, 10_000 + segments * rows)
        .unwrap();
    let before = digest(&read_local(root).unwrap());
    let later = SystemTime::now() + Duration::from_secs(86_400);
    let r = compact(&Location::Local(root.to_path_buf()), layout, later).unwrap();
    let own = LocalBackend::list_for_test(root)
        .unwrap()
        .iter()
        .filter(|rel| is_source_merged(rel.rsplit_once('/').unwrap().1, "t", 0))
        .count();
    assert_eq!(digest(&read_local(root).unwrap()), before);
    (before, r, own)
}

/// A finished backfill whose files an ordinary run merges (in-ingest
/// compaction was off) is merged apart from the other sources' files, into
/// files named after it; so running the backfill again replaces its rows
/// instead of adding them a second time.
#[test]
fn an_ordinary_run_merges_a_finished_backfill_apart_so_a_rerun_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let layout = cfg();
    let backfill = || {
        let mut a = LocalArchive::open(&root, layout.clone()).unwrap();
        for i in 0..20 {
            a.write(&wide_segment(0, i * 30, 30, 2)).unwrap();
        }
        a.mark_settled("t", 0).unwrap();
    };
    let (before, r, own) = backfill_beside_another_source(&root, &layout, &backfill, 20, 30);
    assert_eq!(before.0, 1200);
    assert_eq!(r.files_in, 80, "{r:?}");
    assert_eq!(own, 2, "one merged file per hour for the backfill");
    assert_eq!(LocalBackend::list_for_test(&root).unwrap().len(), 4);

    // The same backfill again: its old rows go, the new ones come.
    LocalArchive::open(&root, layout.clone())
        .unwrap()
        .recover("t", 0, 0)
        .unwrap();
    backfill();
    assert_eq!(digest(&read_local(&root).unwrap()), before);
}

/// A backfill still running (not settled) while an ordinary run merges its
/// older segments, those its in-flight record no longer lists: they are
/// merged apart, named after it, so running it again after it died
/// replaces every row instead of doubling the merged ones.
#[test]
fn a_running_backfill_merged_by_another_run_is_replaced_by_its_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let layout = cfg();
    let backfill = || {
        let mut a = LocalArchive::open(&root, layout.clone())
            .unwrap()
            .for_backfill();
        a.recover("t", 0, 0).unwrap();
        for i in 0..80 {
            a.write(&wide_segment(0, i * 10, 10, 2)).unwrap();
        }
    };
    let (before, r, own) = backfill_beside_another_source(&root, &layout, &backfill, 10, 10);
    assert_eq!(before.0, 900);
    // The 16 oldest backfill segments (the record lists the last 64) and
    // the other source's 10, two files each.
    assert_eq!(r.files_in, 52, "{r:?}");
    assert_eq!(own, 2, "one merged file per hour for the backfill");

    // It died; run again from the start.
    backfill();
    assert_eq!(digest(&read_local(&root).unwrap()), before);
}

/// One compactor at a time on an object store: a second run finds the
/// lease taken; a released lease is free again; an expired one is taken
/// over.
/// Writes the lease object as another compactor would.
fn put_lease(b: &StoreBackend, owner: &str, expires_unix_secs: u64) {
    b.put_json(
        LEASE_REL,
        &Lease {
            owner: owner.into(),
            expires_unix_secs,
        },
    )
    .unwrap();
}

#[test]
fn store_compactors_take_turns_through_the_lease() {
    let mem = Arc::new(InMemory::new());
    let mut first = StoreBackend::new(mem.clone(), "a", &cfg()).unwrap();
    let mut second = StoreBackend::new(mem.clone(), "a", &cfg()).unwrap();
    first.acquire().unwrap();
    assert!(first.keep_going());
    assert!(matches!(second.acquire(), Err(CompactError::Busy)));
    let r = compact_store(
        mem.clone(),
        "a",
        &cfg(),
        SystemTime::now(),
        RunScope::default(),
    );
    assert!(matches!(r, Err(CompactError::Busy)), "{r:?}");
    first.release();
    assert!(!first.keep_going());
    second.acquire().unwrap();
    // The holder died: its lease expired.
    second.lease = None;
    put_lease(&second, "gone", 1);
    first.acquire().unwrap();
    // Renewed once a third of it has passed; lost when taken over.
    let due = |b: &mut StoreBackend| {
        let held = b.lease.as_mut().unwrap();
        held.renewed = Instant::now()
            .checked_sub(Duration::from_secs(DEFAULT_LEASE_SECS))
            .unwrap();
    };
    due(&mut first);
    assert!(first.keep_going(), "renewed");
    due(&mut first);
    put_lease(&second, "thief", u64::MAX);
    assert!(!first.keep_going(), "lost");
    first.release();
    assert!(
        first.get(LEASE_REL).unwrap().is_some(),
        "not ours to delete"
    );
    put_lease(&second, "gone", 1);
    first.acquire().unwrap();
    first.release();
    assert!(first.get(LEASE_REL).unwrap().is_none());
    assert!(LEASE_REL.starts_with(&format!("{META_DIR}/")));
}

/// The rows of a file, and whether its row groups declare the archive's
/// sort order.
fn read_file(path: &Path) -> (Vec<RecordBatch>, bool) {
    let b = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let order = sorting_columns(b.schema());
    let declared = b
        .metadata()
        .row_groups()
        .iter()
        .all(|rg| rg.sorting_columns() == Some(&order));
    (b.build().unwrap().map(|r| r.unwrap()).collect(), declared)
}

fn assert_sorted(batches: &[RecordBatch]) {
    let all = concat_batches(&batches[0].schema(), batches).unwrap();
    assert_eq!(merge_sorted(vec![all.clone()]).unwrap(), all);
}

/// A partition of more small files than one merge takes is merged in
/// passes within one run, down to one file, locally and on an object store.
#[test]
fn many_small_files_are_merged_in_passes_of_bounded_fan_in() {
    let mut layout = cfg();
    layout.compaction.max_merge_inputs = 3;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let mut a = LocalArchive::open(&root, cfg()).unwrap();
    for i in 0..20 {
        a.write(&segment(0, i * 30, 30, 2)).unwrap();
    }
    a.recover("t", 0, 600).unwrap();
    let before = digest(&read_local(&root).unwrap());
    let r = compact(&Location::Local(root.clone()), &layout, SystemTime::now()).unwrap();
    // Per hour: 20 files, then 7 (6 merges of 3, one of 2), then 3 (2
    // merges and one left), then 1.
    assert_eq!((r.partitions, r.files_out), (2, 2 * (7 + 2 + 1)), "{r:?}");
    let files = LocalBackend::list_for_test(&root).unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(digest(&read_local(&root).unwrap()), before);
    for f in &files {
        let (batches, declared) = read_file(&root.join(f));
        assert!(declared, "{f} declares its sort order");
        assert_sorted(&batches);
    }

    let mem = Arc::new(InMemory::new());
    let rt = runtime().unwrap();
    let mut a = ObjectStoreArchive::new(mem.clone(), "a", cfg()).unwrap();
    for i in 0..9 {
        a.write(&segment(0, i * 30, 30, 1)).unwrap();
    }
    a.recover("t", 0, 270).unwrap();
    let before = store_digest(&rt, &mem);
    layout.compaction.max_merge_inputs = 2;
    let r = compact_store(
        mem.clone(),
        "a",
        &layout,
        SystemTime::now(),
        RunScope::default(),
    )
    .unwrap();
    // 9 files, then 5 (4 merges, one left), 3, 2, 1.
    assert_eq!(r.files_out, 4 + 2 + 1 + 1, "{r:?}");
    let after = store_digest(&rt, &mem);
    assert_eq!(
        (after.0, after.1, after.2, after.3),
        (before.0, before.1, before.2, 1)
    );
}

/// A file that does not declare the sort order (written by another tool,
/// rows in any order) is sorted before it is merged; the merged file is
/// sorted.
#[test]
fn files_without_a_declared_order_are_sorted_before_merging() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let mut a = LocalArchive::open(&root, cfg()).unwrap();
    for i in 0..3 {
        a.write(&segment(0, i * 40, 40, 1)).unwrap();
    }
    a.recover("t", 0, 120).unwrap();
    let part = LocalBackend::list_for_test(&root).unwrap()[0]
        .rsplit_once('/')
        .unwrap()
        .0
        .to_string();
    // Offsets 1000.. in reverse order, without sorting metadata.
    let foreign = segment(0, 1000, 40, 1).to_batch().expect("rows");
    let rev = arrow::array::UInt32Array::from_iter_values((0..40u32).rev());
    let foreign = take_record_batch(&foreign, &rev).unwrap();
    {
        let f = File::create(root.join(&part).join("foreign.parquet")).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, foreign.schema(), None).unwrap();
        w.write(&foreign).unwrap();
        w.close().unwrap();
    }
    let (_, declared) = read_file(&root.join(&part).join("foreign.parquet"));
    assert!(!declared);
    let before = digest(&read_local(&root).unwrap());
    let r = compact(&Location::Local(root.clone()), &cfg(), SystemTime::now()).unwrap();
    assert_eq!(
        (r.files_in, r.files_out, r.rows, r.skipped),
        (4, 1, 160, 0),
        "{r:?}"
    );
    let files = LocalBackend::list_for_test(&root).unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(digest(&read_local(&root).unwrap()), before);
    assert_sorted(&read_file(&root.join(&files[0])).0);
}
