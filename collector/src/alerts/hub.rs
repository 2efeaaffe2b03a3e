//! The post-acknowledgement fan-out: once a request's incidents are durable
//! (stored in ClickHouse or fsynced to the WAL) and acknowledged, ingest
//! offers the alertable ones (every event but `attack_update`) to each
//! consumer (alert routing, mitigation) through its own bounded queue.
//!
//! Offering never waits: when a consumer's queue is full the incident is
//! not given to it, `shaobing_collector_events_dropped_total{consumer}`
//! counts it and a warning is logged (the first, then every 1000th). A slow
//! or dead destination therefore never slows ingest.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::metrics::MetricsSection;

/// One acknowledged incident on offer: its stored JSON and what consumers
/// filter on.
#[derive(Debug, Clone)]
pub struct Offered {
    /// The incident as stored (wire JSON).
    pub json: Arc<str>,
    /// Whether it is a volumetric incident.
    pub volumetric: bool,
}

/// Which incidents a consumer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// Every alertable incident.
    All,
    /// Volumetric incidents only (mitigation): a storm of leaks cannot
    /// crowd an attack out of its queue.
    Volumetric,
}

/// One consumer's queue.
#[derive(Debug)]
struct Consumer {
    name: &'static str,
    wants: Wants,
    tx: mpsc::Sender<Arc<str>>,
    dropped: AtomicU64,
}

/// The consumers of acknowledged incidents.
#[derive(Debug, Default)]
pub struct Hub {
    consumers: Vec<Consumer>,
}

impl Hub {
    /// Adds a consumer fed through `tx` (its capacity is the bound).
    pub fn add(&mut self, name: &'static str, wants: Wants, tx: mpsc::Sender<Arc<str>>) {
        self.consumers.push(Consumer {
            name,
            wants,
            tx,
            dropped: AtomicU64::new(0),
        });
    }

    /// Whether nobody consumes (then ingest does not even collect).
    pub fn is_empty(&self) -> bool {
        self.consumers.is_empty()
    }

    /// Offers acknowledged incidents (their stored JSON) to every consumer
    /// without waiting.
    pub fn offer(&self, incidents: &[Offered]) {
        for c in &self.consumers {
            for inc in incidents {
                if c.wants == Wants::Volumetric && !inc.volumetric {
                    continue;
                }
                match c.tx.try_send(inc.json.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        let n = c.dropped.fetch_add(1, Relaxed);
                        if n % 1000 == 0 {
                            tracing::warn!(
                                event = "events_dropped",
                                consumer = c.name,
                                dropped = n + 1,
                                "queue full: an incident was not offered to {}",
                                c.name
                            );
                        }
                    }
                    // The consumer stopped (shutdown): nothing to count.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
    }

    /// Incidents `consumer` did not get because its queue was full.
    pub fn dropped(&self, consumer: &str) -> u64 {
        self.consumers
            .iter()
            .find(|c| c.name == consumer)
            .map_or(0, |c| c.dropped.load(Relaxed))
    }
}

impl MetricsSection for Hub {
    fn render(&self, o: &mut String) {
        let name = "shaobing_collector_events_dropped_total";
        let _ = writeln!(
            o,
            "# HELP {name} Acknowledged incidents not given to a consumer because its queue was full.\n# TYPE {name} counter"
        );
        for c in &self.consumers {
            let _ = writeln!(
                o,
                "{name}{{consumer=\"{}\"}} {}",
                c.name,
                c.dropped.load(Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (tx, mut rx) = mpsc::channel(2);
        let mut hub = Hub::default();
        hub.add("alerts", Wants::All, tx);
        let items: Vec<Offered> = (0..5)
            .map(|i| Offered {
                json: Arc::from(format!("{i}")),
                volumetric: false,
            })
            .collect();
        hub.offer(&items);
        assert_eq!(hub.dropped("alerts"), 3);
        assert_eq!(rx.try_recv().unwrap().as_ref(), "0");
        assert_eq!(rx.try_recv().unwrap().as_ref(), "1");
        assert!(rx.try_recv().is_err());
        let mut text = String::new();
        hub.render(&mut text);
        assert!(text.contains("shaobing_collector_events_dropped_total{consumer=\"alerts\"} 3"));
    }

    #[test]
    fn a_volumetric_consumer_never_sees_leaks() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut hub = Hub::default();
        hub.add("mitigation", Wants::Volumetric, tx);
        let offer = |json: &str, volumetric| Offered {
            json: Arc::from(json),
            volumetric,
        };
        hub.offer(&[
            offer("leak", false),
            offer("leak", false),
            offer("attack", true),
        ]);
        assert_eq!(rx.try_recv().unwrap().as_ref(), "attack");
        assert_eq!(hub.dropped("mitigation"), 0);
    }
}
