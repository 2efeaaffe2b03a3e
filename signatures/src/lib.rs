//! Leak signatures for the Shaobing sensor: the rule format, its loader
//! with precise error messages, the compiled matcher and the built-in
//! validators.
//!
//! # Map
//!
//! * Rule files are TOML with `[[signature]]` tables; the format is taught
//!   in `docs/signatures.md`. [`SignatureSet::load`] reads a file or a
//!   directory, [`SignatureSet::from_sources`] reads texts,
//!   [`SignatureSet::default_pack`] gives the built-in pack
//!   (`signatures/rules/`). Every problem is reported as a [`Diagnostic`]
//!   naming `file:line:column`, all of them together in a [`LoadError`].
//! * [`SignatureSet::scan`] finds every match of every enabled signature
//!   in a payload chunk and pushes [`Hit`]s to a callback, without
//!   allocating. Literal patterns of all signatures share one Aho-Corasick
//!   automaton (two, when some signatures are ASCII case-insensitive);
//!   validator signatures add one digit pass (resident ids, cards,
//!   mobiles) and anchor literals (credentials).
//! * [`SignatureSet::excerpt`] / [`mask_excerpt`] give an excerpt of a hit
//!   that is safe to put in an incident.
//! * [`validators`] holds the checks themselves (GB 11643 check digit,
//!   Luhn, ...), usable on their own.
//!
//! ```
//! use shaobing_signatures::SignatureSet;
//!
//! let set = SignatureSet::default_pack()?;
//! let payload = "文件标注 机密★1年".as_bytes();
//! let mut ids = Vec::new();
//! set.scan(payload, |hit| ids.push(set.signatures()[hit.signature].id.clone()));
//! assert_eq!(ids, ["classification-marking"]);
//! # Ok::<(), shaobing_signatures::LoadError>(())
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod compile;
mod error;
mod mask;
mod signature;
mod syntax;
#[cfg(test)]
mod test_rng;
mod validate;
pub mod validators;

pub use compile::{Hit, SignatureSet};
pub use error::{Diagnostic, LoadError};
pub use mask::mask_excerpt;
pub use shaobing_wire::{Direction, Severity};
pub use signature::{Context, DirectionScope, Encoding, Signature, Validator};
pub use validate::{DEFAULT_CONTEXT_WITHIN, MAX_CONTEXT_WITHIN, MAX_PATTERN_LEN};
