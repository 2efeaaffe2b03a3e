//! Delivery of incidents to the collector.

pub mod client;
pub mod forwarder;
pub mod spool;
