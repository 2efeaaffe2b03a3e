//! Delivery of incidents to the collector.

pub mod client;
pub mod endpoint;
pub mod forwarder;
pub mod spool;
