//! The throughput ceiling for ingest benchmarks: a plain rdkafka consumer
//! that reads a topic from the beginning and does nothing with the messages.
//!
//! Usage: raw_consume BROKERS TOPIC COUNT — prints `messages bytes seconds`.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic, count] = args.as_slice() else {
        return Err("usage: raw_consume BROKERS TOPIC COUNT".into());
    };
    let count: u64 = count.parse()?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("raw-consume-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()?;
    consumer.subscribe(&[topic.as_str()])?;
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut started: Option<Instant> = None;
    while n < count {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                started.get_or_insert_with(Instant::now);
                n += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => eprintln!("consumer error: {e}"),
            None => {}
        }
    }
    let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!("{n} {bytes} {secs:.3}");
    Ok(())
}
