//! Worker threads fed in turn, their results read back in the order the
//! work was sent: both parse stages (Kafka chunks in `pool`, file chunks in
//! `file`) parse on these while one thread keeps the input's order.
//!
//! Item `i` goes to worker `i % n` and its result comes back on that
//! worker's own channel, so reading the channels in turn restores the order.
//! At most `depth` items per worker are in flight; the channels hold that
//! many, so neither side blocks on a send.

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

/// A worker thread stopped (it panicked): its items are lost.
#[derive(Debug, thiserror::Error)]
#[error("a worker thread stopped")]
pub struct Stopped;

/// Worker threads, each with its own channels in and out.
pub struct Lanes<I, O> {
    lanes: Vec<(SyncSender<I>, Receiver<O>)>,
    threads: Vec<JoinHandle<()>>,
    depth: usize,
    /// Items sent and results read: `sent - received` are in flight.
    sent: usize,
    received: usize,
}

impl<I: Send + 'static, O: Send + 'static> Lanes<I, O> {
    /// Starts a thread named `name` per worker (at least one worker), each
    /// answering the items sent to it with `work`, and taking up to `depth`
    /// (at least 1) of them in flight.
    pub fn start<W: Send + 'static>(
        name: &str,
        workers: impl IntoIterator<Item = W>,
        depth: usize,
        work: fn(&mut W, I) -> O,
    ) -> std::io::Result<Self> {
        let depth = depth.max(1);
        let mut lanes = Self {
            lanes: Vec::new(),
            threads: Vec::new(),
            depth,
            sent: 0,
            received: 0,
        };
        for mut worker in workers {
            let (to_worker, items) = mpsc::sync_channel::<I>(depth);
            let (to_reader, results) = mpsc::sync_channel::<O>(depth);
            let thread = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    for item in items {
                        if to_reader.send(work(&mut worker, item)).is_err() {
                            return;
                        }
                    }
                })?;
            lanes.lanes.push((to_worker, results));
            lanes.threads.push(thread);
        }
        assert!(!lanes.lanes.is_empty(), "lanes need a worker");
        Ok(lanes)
    }

    /// Items sent whose results are not read yet.
    pub fn in_flight(&self) -> usize {
        self.sent - self.received
    }

    /// Whether every worker has its `depth` items in flight: read a result
    /// before sending more.
    pub fn is_full(&self) -> bool {
        self.in_flight() >= self.depth * self.lanes.len()
    }

    /// Sends `item` to the next worker in turn. When [`is_full`](Self::is_full),
    /// this blocks until that worker takes an item, and the caller must read
    /// the oldest result first or it may wait for good.
    pub fn send(&mut self, item: I) -> Result<(), Stopped> {
        let lane = &self.lanes[self.sent % self.lanes.len()];
        lane.0.send(item).map_err(|_| Stopped)?;
        self.sent += 1;
        Ok(())
    }

    /// The oldest result not read yet, if it is ready (with `wait`, once
    /// it is); `None` when nothing is in flight.
    pub fn receive(&mut self, wait: bool) -> Result<Option<O>, Stopped> {
        if self.in_flight() == 0 {
            return Ok(None);
        }
        let lane = &self.lanes[self.received % self.lanes.len()];
        let result = if wait {
            lane.1.recv().map_err(|_| Stopped)?
        } else {
            match lane.1.try_recv() {
                Ok(r) => r,
                Err(TryRecvError::Empty) => return Ok(None),
                Err(TryRecvError::Disconnected) => return Err(Stopped),
            }
        };
        self.received += 1;
        Ok(Some(result))
    }
}

impl<I, O> Drop for Lanes<I, O> {
    fn drop(&mut self) {
        // Closing the channels ends the workers (after the item each one
        // is on), then they are joined.
        self.lanes.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Workers that take unequal times still give their results back in
    /// the order the items were sent.
    #[test]
    fn results_come_back_in_the_order_sent() {
        let workers = [3u64, 0, 1];
        let mut lanes = Lanes::start("test", workers, 2, |pause: &mut u64, i: u64| {
            std::thread::sleep(std::time::Duration::from_millis(*pause));
            i
        })
        .expect("threads start");
        let mut got = Vec::new();
        for i in 0..100 {
            if lanes.is_full() {
                got.extend(lanes.receive(true).expect("worker alive"));
            }
            lanes.send(i).expect("worker alive");
        }
        assert_eq!(lanes.in_flight(), 6);
        while let Some(i) = lanes.receive(true).expect("worker alive") {
            got.push(i);
        }
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(lanes.receive(false).expect("nothing in flight"), None);
    }

    /// A worker that panics is reported, not waited for.
    #[test]
    fn a_stopped_worker_is_an_error() {
        let mut lanes = Lanes::start("test", [()], 1, |_: &mut (), i: u32| {
            assert!(i < 1, "worker gives up");
            i
        })
        .expect("threads start");
        lanes.send(0).expect("worker alive");
        assert_eq!(lanes.receive(true).expect("first result"), Some(0));
        lanes.send(1).expect("worker alive");
        assert!(lanes.receive(true).is_err());
    }
}
