//! Delivery of incidents to the collector.

pub mod client;
pub mod spool;
