//! `logwarden detect`: Kafka logs to the detector, alerts to the alert topic.
//!
//! The consumer group's offsets are committed every [`COMMIT_INTERVAL`], after
//! the producer has delivered every alert decided on the records below them:
//! an alert is never lost to a crash, and a crash costs at most a replay of
//! the last interval (whose alerts carry the same deterministic ids, so
//! consumers can deduplicate).
//!
//! With `[detect] state_dir`, every commit is preceded by a checkpoint of the
//! detector ([`crate::checkpoint`]) holding the offsets it covers; a
//! restarted detect restores it (no new warm-up, open incidents stay open)
//! and skips the records below those offsets that the group replays.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

use logwarden_detect::metrics::DetectMetrics;
use logwarden_detect::{Alert, Detector, Event, PartitionClock};
use logwarden_ingest::kafka::{
    caught_up, close_consumer, transport_time_us, CatchUpCadence, EofTracker, MeteredContext,
    StopWhen, CLOSE_TIMEOUT,
};
use logwarden_ingest::parse::{ParseContext, Parser};
use logwarden_ingest::record::LogRecord;
use logwarden_ingest::template::TemplateMiner;

use crate::checkpoint;
use crate::config::Config;
use crate::generate_cmd::DeliveryCounter;

/// How often consumed offsets are committed (after the alerts are delivered).
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// How often the event-time clock learns the current partition assignment.
const ASSIGNMENT_SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// Longest wait for the alert producer to deliver before a commit.
const PRODUCER_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// What a detect run did.
#[derive(Debug, Clone, Default)]
pub struct DetectReport {
    pub records: u64,
    pub alerts: u64,
    pub windows_closed: u64,
    pub late_records: u64,
}

/// Runs detection until shutdown (or caught up), calling `on_alert` for each
/// alert after handing it to the producer.
pub fn run(
    cfg: &Config,
    stop: StopWhen,
    shutdown: Arc<AtomicBool>,
    metrics: Arc<DetectMetrics>,
    mut on_alert: impl FnMut(&Alert),
) -> anyhow::Result<DetectReport> {
    cfg.validate_detect()?;
    let mut kafka = cfg.kafka.clone();
    kafka.group = cfg.detect.group.clone();
    if cfg.telemetry.enabled {
        crate::telemetry::serve(
            &cfg.telemetry.detect_listen,
            crate::telemetry::detect_registry(metrics.clone()),
            vec![
                crate::telemetry::kafka_ready(
                    metrics.kafka.clone(),
                    Duration::from_secs_f64(cfg.telemetry.stale_after_secs),
                ),
                crate::telemetry::alerts_ready(metrics.clone()),
            ],
        )?;
    }
    let mut cc = kafka.consumer_config();
    // End-of-partition events mark partitions idle for the event-time clock.
    cc.set("enable.partition.eof", "true");
    if stop == StopWhen::CaughtUp {
        kafka.set_catch_up(&mut cc);
    }
    let consumer: BaseConsumer<MeteredContext> = cc
        .create_with_context(MeteredContext::new(metrics.kafka.clone(), &cc))
        .context("creating the consumer")?;
    let topics: Vec<&str> = kafka.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).context("subscribing")?;
    let mut pc = kafka.producer_config();
    pc.set("acks", "all").set("linger.ms", "5");
    let producer: ThreadedProducer<DeliveryCounter> = pc
        .create_with_context(DeliveryCounter::default())
        .context("creating the alert producer")?;
    let alerts_topic = cfg.detect.alerts_topic.as_str();
    let state_dir =
        (!cfg.detect.state_dir.is_empty()).then(|| std::path::PathBuf::from(&cfg.detect.state_dir));
    // Records below these offsets are in the restored state already.
    let mut skip_below: checkpoint::Offsets = Default::default();
    let mut restored_templates = None;
    let mut detector = match state_dir
        .as_deref()
        .map(|d| checkpoint::read(d, &kafka.group))
        .transpose()?
        .flatten()
    {
        Some(restored) => {
            let series = restored.detector.series_count();
            let d = Detector::from_state(cfg.detect.model.clone(), restored.detector)
                .context("restoring the detector checkpoint")?;
            tracing::info!(
                series,
                watermark_us = d.watermark_us(),
                partitions = restored.offsets.len(),
                "detector state restored"
            );
            skip_below = restored.offsets;
            restored_templates = restored.templates;
            d
        }
        None => Detector::new(cfg.detect.model.clone())
            .context("invalid [detect.model] configuration")?,
    };
    detector.set_metric_model(cfg.detect.metric.clone());
    let mut skipped_records = 0u64;
    let alertmanager = (!cfg.detect.alertmanager_url.is_empty())
        .then(|| {
            crate::alertmanager::Alertmanager::start(&cfg.detect.alertmanager_url, metrics.clone())
        })
        .transpose()?;
    if let Some(am) = &alertmanager {
        // Incidents open in a restored state: Alertmanager hears of them
        // again (it forgets firing alerts that are not resent).
        for alert in detector.open_incidents() {
            am.send(&alert);
        }
    }
    let mut parser = Parser::new(cfg.parse.clone()).context("invalid [parse] configuration")?;
    if let Some(snap) = restored_templates {
        if let Some(miner) =
            checkpoint::restore_templates(&cfg.parse.templates, snap, &mut detector)?
        {
            parser.set_miner(miner);
        }
    }
    let mut rec = LogRecord::default();
    let mut values: Vec<Option<f64>> = Vec::new();
    let mut metric_values: Vec<Option<f64>> = Vec::new();
    let mut report = DetectReport::default();
    let mut positions: std::collections::HashMap<(String, i32), i64> = Default::default();
    let mut last_commit = Instant::now();
    let mut cadence = CatchUpCadence::new(Instant::now());
    let mut eof = EofTracker::default();
    let mut clock = PartitionClock::default();
    let mut last_assignment_sync = Instant::now() - ASSIGNMENT_SYNC_INTERVAL;
    let mut at_end_since: std::collections::HashMap<i32, Instant> = Default::default();
    let idle_after = Duration::from_secs_f64(cfg.detect.idle_partition_secs);
    let mut dirty = false;
    // The end-of-input check asks the broker for offsets: only when a poll
    // came back empty, so it never slows a flowing stream.
    let mut poll_idle = false;
    tracing::info!(brokers = %kafka.brokers, topics = ?topics, group = %kafka.group, alerts_topic, "detect started");

    let mut publish = |alerts: Vec<Alert>, report: &mut DetectReport| -> anyhow::Result<()> {
        for alert in alerts {
            let body = serde_json::to_vec(&alert).context("encoding an alert")?;
            let key = alert.key();
            let mut record = BaseRecord::to(alerts_topic).key(&key).payload(&body);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        r,
                    )) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(e).context("publishing an alert"),
                }
            }
            tracing::info!(alert_id = %alert.alert_id, status = alert.status.as_str(), summary = %alert.summary, "alert");
            metrics.count_alert(&alert);
            if let Some(am) = &alertmanager {
                am.send(&alert);
            }
            report.alerts += 1;
            on_alert(&alert);
        }
        Ok(())
    };

    // Returns whether the offsets were committed; a failed commit is tried
    // again at the next interval. With a state directory, the checkpoint is
    // written first: the committed offsets never run ahead of it.
    let group = kafka.group.clone();
    let commit = |consumer: &BaseConsumer<MeteredContext>,
                  producer: &ThreadedProducer<DeliveryCounter>,
                  detector: &Detector,
                  parser: &Parser,
                  positions: &std::collections::HashMap<(String, i32), i64>,
                  skip_below: &checkpoint::Offsets|
     -> anyhow::Result<bool> {
        producer
            .flush(PRODUCER_FLUSH_TIMEOUT)
            .context("delivering alerts")?;
        let failed = producer.context().failed.load(Ordering::Relaxed);
        metrics
            .alert_delivery_failures
            .store(failed, Ordering::Relaxed);
        if failed > 0 {
            bail!("{failed} alerts could not be delivered to the alert topic");
        }
        if let Some(dir) = state_dir.as_deref() {
            // Partitions not read since the restore keep their saved offsets.
            let mut offsets = skip_below.clone();
            offsets.extend(positions.iter().map(|(k, v)| (k.clone(), *v)));
            let started = Instant::now();
            let templates = parser.miner().map(TemplateMiner::snapshot);
            let bytes = checkpoint::write(dir, &group, detector, templates, &offsets)
                .context("writing the detector checkpoint")?;
            tracing::debug!(
                bytes,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "checkpoint written"
            );
        }
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(())
            | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {
                Ok(true)
            }
            Err(e) => {
                metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "offset commit failed; retrying at the next interval");
                Ok(false)
            }
        }
    };

    while !shutdown.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                let ctx = ParseContext {
                    transport_time_us: transport_time_us(msg.timestamp()),
                    ingest_time_us: chrono::Utc::now().timestamp_micros(),
                };
                let key = (msg.topic().to_string(), msg.partition());
                if let Some(&next) = skip_below.get(&key) {
                    if msg.offset() < next {
                        // Counted before the restart: in the restored state.
                        skipped_records += 1;
                        if let Err(e) = consumer.store_offset_from_message(&msg) {
                            tracing::debug!(error = %e, "storing an offset failed");
                        }
                        positions.insert(key, msg.offset() + 1);
                        continue;
                    }
                    skip_below.remove(&key);
                }
                parser.parse_topic(msg.topic(), msg.payload(), &ctx, &mut rec);
                report.records += 1;
                metrics.records.fetch_add(1, Ordering::Relaxed);
                metrics.bytes.fetch_add(
                    msg.payload().map_or(0, <[u8]>::len) as u64,
                    Ordering::Relaxed,
                );
                logwarden_detect::field_values(&cfg.detect.model.fields, &rec, &mut values);
                logwarden_detect::field_values(
                    &cfg.detect.model.metric_fields,
                    &rec,
                    &mut metric_values,
                );
                let mut alerts = detector.count(&Event {
                    values: &values,
                    metrics: &metric_values,
                    ..Event::from_record(&rec)
                });
                if !clock.knows(msg.topic(), msg.partition()) {
                    // First record of a new assignment: learn all of it
                    // before this partition alone moves the clock (the
                    // others hold it until they report or turn idle).
                    sync_assignment(&consumer, &mut clock);
                }
                clock.record(msg.topic(), msg.partition(), rec.event_time_us);
                if let Some(t) = clock.event_time() {
                    alerts.extend(detector.advance_to(t));
                }
                publish(with_templates(alerts, &parser), &mut report)?;
                if let Err(e) = consumer.store_offset_from_message(&msg) {
                    tracing::debug!(error = %e, "storing an offset failed");
                }
                positions.insert((msg.topic().to_string(), msg.partition()), msg.offset() + 1);
                eof.message(msg.partition());
                at_end_since.remove(&msg.partition());
                dirty = true;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.eof(p);
                at_end_since.entry(p).or_insert_with(Instant::now);
                // As an empty poll: the next one could wait its whole
                // timeout for an event that is not coming.
                poll_idle = true;
            }
            Some(Err(e)) => {
                metrics.consumer_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "consumer error")
            }
            None => poll_idle = true,
        }
        if last_assignment_sync.elapsed() >= ASSIGNMENT_SYNC_INTERVAL {
            last_assignment_sync = Instant::now();
            metrics.set_stats(&detector.stats());
            if let Some(miner) = parser.miner() {
                metrics
                    .templates
                    .store(miner.len() as u64, Ordering::Relaxed);
            }
            let pc = producer.context();
            let done = pc.delivered.load(Ordering::Relaxed) + pc.failed.load(Ordering::Relaxed);
            metrics
                .alerts_in_flight
                .store(report.alerts.saturating_sub(done), Ordering::Relaxed);
            sync_assignment(&consumer, &mut clock);
        }
        // A partition with nothing more to read for a while must not hold the
        // others' windows open. (Waiting, rather than trusting one end-of-
        // partition event, also covers brokers that report ends early.)
        let idle: Vec<i32> = at_end_since
            .iter()
            .filter(|(_, since)| since.elapsed() >= idle_after)
            .map(|(p, _)| *p)
            .collect();
        for p in idle {
            at_end_since.remove(&p);
            clock.idle(None, p);
            if let Some(t) = clock.event_time() {
                let alerts = detector.advance_to(t);
                publish(with_templates(alerts, &parser), &mut report)?;
            }
        }
        if dirty && last_commit.elapsed() >= COMMIT_INTERVAL {
            dirty = !commit(
                &consumer,
                &producer,
                &detector,
                &parser,
                &positions,
                &skip_below,
            )?;
            last_commit = Instant::now();
        }
        if stop == StopWhen::CaughtUp
            && std::mem::take(&mut poll_idle)
            && cadence.due(&eof, Instant::now())
            && cadence.stops(caught_up(&consumer, &eof, |t, p| {
                positions.get(&(t.to_string(), p)).copied()
            }))
        {
            // End of input: close the windows the data covers.
            let alerts = detector.flush();
            publish(with_templates(alerts, &parser), &mut report)?;
            break;
        }
    }
    commit(
        &consumer,
        &producer,
        &detector,
        &parser,
        &positions,
        &skip_below,
    )?;
    close_consumer(consumer, CLOSE_TIMEOUT);
    let stats = detector.stats();
    metrics.set_stats(&stats);
    report.windows_closed = stats.windows_closed;
    report.late_records = stats.late_records;
    tracing::info!(
        records = report.records,
        alerts = report.alerts,
        skipped_records,
        "detect stopped"
    );
    Ok(report)
}

/// Fills in the text of the templates an alert names (its top templates,
/// and the template of a `template_count` alert), from the parser's
/// template miner (alerts are rare: a scan of the miner is cheap enough).
fn with_templates(mut alerts: Vec<Alert>, parser: &Parser) -> Vec<Alert> {
    let Some(miner) = parser.miner() else {
        return alerts;
    };
    for a in &mut alerts {
        a.name_templates(|id| {
            miner
                .templates()
                .find(|(tid, _, _)| *tid == id)
                .map(|(_, text, _)| text.to_string())
        });
    }
    alerts
}

/// Makes the event-time clock track exactly the consumer's assignment.
fn sync_assignment(consumer: &BaseConsumer<MeteredContext>, clock: &mut PartitionClock) {
    if let Ok(tpl) = consumer.assignment() {
        let assigned: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        clock.set_assignment(&assigned);
    }
}
