//! Built-in validators: scanners for structured secrets that literal
//! patterns cannot describe.
//!
//! * [`resident_id`], [`luhn_card`] and [`mobile`] check candidates that
//!   the shared digit pass in [`digits`] finds.
//! * [`credentials`] confirms matches of anchor literals found by the
//!   signature set's Aho-Corasick automaton.

pub mod credentials;
pub mod digits;
pub mod luhn_card;
pub mod mobile;
pub mod resident_id;
