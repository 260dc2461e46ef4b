//! Event-time progress across several ordered inputs (Kafka partitions).
//!
//! Each partition is in event-time order on its own, but a consumer reads
//! partitions in bursts, so one may run minutes ahead of another. The event
//! time the detector may close windows up to is therefore the *minimum* over
//! partitions of each one's highest event time, the way Kafka Streams and
//! Flink combine per-partition watermarks. A partition that has reached the
//! end of its data is idle and does not hold the others back.

use std::collections::BTreeMap;

/// Per-partition event-time progress.
#[derive(Debug, Default, Clone)]
pub struct PartitionClock {
    /// Highest event time per (topic, partition), and whether it is idle.
    parts: BTreeMap<(String, i32), (i64, bool)>,
}

impl PartitionClock {
    /// A record of `partition` with event time `t` arrived: the partition is
    /// active again.
    pub fn record(&mut self, topic: &str, partition: i32, t: i64) {
        match self.parts.get_mut(&(topic.to_string(), partition)) {
            Some((max, idle)) => {
                *max = (*max).max(t);
                *idle = false;
            }
            None => {
                self.parts
                    .insert((topic.to_string(), partition), (t, false));
            }
        }
    }

    /// The partition has no more data for now (end of partition reached).
    pub fn idle(&mut self, topic: Option<&str>, partition: i32) {
        for ((t, p), (_, idle)) in self.parts.iter_mut() {
            if *p == partition && topic.is_none_or(|want| want == t) {
                *idle = true;
            }
        }
    }

    /// Forgets a partition (revoked).
    pub fn remove(&mut self, topic: &str, partition: i32) {
        self.parts.remove(&(topic.to_string(), partition));
    }

    /// The event time every active partition has reached; when all are idle,
    /// the highest event time of any.
    pub fn event_time(&self) -> Option<i64> {
        let active = self
            .parts
            .values()
            .filter(|(_, idle)| !idle)
            .map(|(t, _)| *t)
            .min();
        active.or_else(|| self.parts.values().map(|(t, _)| *t).max())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowest_active_partition_rules() {
        let mut c = PartitionClock::default();
        assert_eq!(c.event_time(), None);
        c.record("t", 0, 100);
        c.record("t", 1, 50);
        assert_eq!(c.event_time(), Some(50));
        c.record("t", 1, 200);
        assert_eq!(c.event_time(), Some(100));
        c.idle(None, 0);
        assert_eq!(c.event_time(), Some(200));
        c.idle(Some("t"), 1);
        assert_eq!(c.event_time(), Some(200));
        c.record("t", 0, 150);
        assert_eq!(c.event_time(), Some(150));
        c.remove("t", 0);
        assert_eq!(c.event_time(), Some(200));
    }
}
