//! Prints the offsets a consumer group committed, per partition of a topic,
//! and the partitions' high watermarks: `committed_offsets BROKERS GROUP TOPIC`.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, group, topic] = args.as_slice() else {
        return Err("usage: committed_offsets BROKERS GROUP TOPIC".into());
    };
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition(topic, p.id());
    }
    let committed = c.committed_offsets(tpl, Duration::from_secs(5))?;
    for e in committed.elements() {
        let (low, high) = c.fetch_watermarks(topic, e.partition(), Duration::from_secs(5))?;
        println!(
            "partition {} committed {:?} low {low} high {high}",
            e.partition(),
            e.offset()
        );
    }
    Ok(())
}
