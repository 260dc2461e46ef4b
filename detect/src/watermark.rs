//! Event-time progress across several ordered inputs (Kafka partitions).
//!
//! Each partition is in event-time order on its own, but a consumer reads
//! partitions in bursts, so one may run minutes ahead of another. The event
//! time the detector may close windows up to is therefore the *minimum* over
//! the assigned partitions of each one's highest event time, the way Kafka
//! Streams and Flink combine per-partition watermarks. An assigned partition
//! that has delivered nothing yet holds the clock back; one that has reached
//! the end of its data is idle and does not.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Highest event time seen, once a record arrived.
    max: Option<i64>,
    idle: bool,
}

/// Per-partition event-time progress.
#[derive(Debug, Default, Clone)]
pub struct PartitionClock {
    parts: BTreeMap<(String, i32), Progress>,
}

impl PartitionClock {
    /// Makes the set of tracked partitions equal to `assigned`: new ones
    /// hold the clock until they deliver a record or turn idle.
    pub fn set_assignment(&mut self, assigned: &[(String, i32)]) {
        self.parts.retain(|k, _| assigned.contains(k));
        for k in assigned {
            self.parts.entry(k.clone()).or_default();
        }
    }

    /// Whether `partition` of `topic` is tracked (assigned or seen).
    pub fn knows(&self, topic: &str, partition: i32) -> bool {
        self.parts
            .keys()
            .any(|(t, p)| *p == partition && t == topic)
    }

    /// A record of `partition` with event time `t` arrived: the partition is
    /// active again.
    pub fn record(&mut self, topic: &str, partition: i32, t: i64) {
        let key = (topic.to_string(), partition);
        let p = match self.parts.get_mut(&key) {
            Some(p) => p,
            None => self.parts.entry(key).or_default(),
        };
        p.max = Some(p.max.map_or(t, |m| m.max(t)));
        p.idle = false;
    }

    /// The partition has no more data for now (end of partition reached).
    /// `topic: None` marks that partition number of every topic.
    pub fn idle(&mut self, topic: Option<&str>, partition: i32) {
        for ((t, p), progress) in self.parts.iter_mut() {
            if *p == partition && topic.is_none_or(|want| want == t) {
                progress.idle = true;
            }
        }
    }

    /// The event time every active partition has reached: `None` while an
    /// active partition has delivered nothing; when all are idle, the
    /// highest event time of any.
    pub fn event_time(&self) -> Option<i64> {
        let mut min: Option<i64> = None;
        let mut any_active = false;
        for p in self.parts.values().filter(|p| !p.idle) {
            any_active = true;
            let t = p.max?;
            min = Some(min.map_or(t, |m| m.min(t)));
        }
        if any_active {
            min
        } else {
            self.parts.values().filter_map(|p| p.max).max()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> (String, i32) {
        ("t".to_string(), p)
    }

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
        c.set_assignment(&[key(1)]);
        assert_eq!(c.event_time(), Some(200));
    }

    #[test]
    fn assigned_partition_without_data_holds_the_clock() {
        let mut c = PartitionClock::default();
        c.set_assignment(&[key(0), key(1), key(2)]);
        c.record("t", 2, 1_000);
        assert_eq!(c.event_time(), None, "partitions 0 and 1 have not reported");
        c.record("t", 0, 10);
        assert_eq!(c.event_time(), None);
        c.idle(None, 1);
        assert_eq!(c.event_time(), Some(10));
        assert!(c.knows("t", 1) && !c.knows("t", 3) && !c.knows("u", 1));
    }
}
