//! The validated, compiled-form-independent description of one signature.

use shaobing_wire::{Direction, Severity};

/// A text encoding in which literal patterns and context keywords are
/// searched.
///
/// Validators (digit runs, credentials) scan ASCII-compatible bytes, so they
/// see UTF-8, GBK and GB18030 payloads; encodings only change how literal
/// patterns and context keywords are turned into bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// UTF-8 (also plain ASCII).
    Utf8,
    /// GBK (CP936), two-byte Chinese encoding.
    Gbk,
    /// GB 18030, the superset of GBK (identical bytes for GBK characters).
    Gb18030,
    /// UTF-16, little endian, no BOM.
    Utf16Le,
    /// UTF-16, big endian, no BOM.
    Utf16Be,
}

impl Encoding {
    /// Every encoding, in the order used in error messages.
    pub const ALL: [Encoding; 5] = [
        Encoding::Utf8,
        Encoding::Gbk,
        Encoding::Gb18030,
        Encoding::Utf16Le,
        Encoding::Utf16Be,
    ];

    /// The name used in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Gbk => "gbk",
            Encoding::Gb18030 => "gb18030",
            Encoding::Utf16Le => "utf-16le",
            Encoding::Utf16Be => "utf-16be",
        }
    }

    /// Parses a rule-file name.
    pub fn parse(s: &str) -> Option<Encoding> {
        Encoding::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Encodes `text`, or returns `None` when a character has no
    /// representation in this encoding (only possible for GBK).
    pub fn encode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Encoding::Utf8 => Some(text.as_bytes().to_vec()),
            Encoding::Gbk | Encoding::Gb18030 => {
                let enc = if self == Encoding::Gbk {
                    encoding_rs::GBK
                } else {
                    encoding_rs::GB18030
                };
                let (bytes, _, unmappable) = enc.encode(text);
                (!unmappable).then(|| bytes.into_owned())
            }
            Encoding::Utf16Le => Some(text.encode_utf16().flat_map(u16::to_le_bytes).collect()),
            Encoding::Utf16Be => Some(text.encode_utf16().flat_map(u16::to_be_bytes).collect()),
        }
    }

    /// Decodes `bytes` to a `String`, replacing malformed sequences with
    /// U+FFFD (a hit cut at a chunk edge may be malformed).
    pub fn decode(self, bytes: &[u8]) -> String {
        let enc = match self {
            Encoding::Utf8 => return String::from_utf8_lossy(bytes).into_owned(),
            Encoding::Gbk => encoding_rs::GBK,
            Encoding::Gb18030 => encoding_rs::GB18030,
            Encoding::Utf16Le => encoding_rs::UTF_16LE,
            Encoding::Utf16Be => encoding_rs::UTF_16BE,
        };
        enc.decode_without_bom_handling(bytes).0.into_owned()
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which traffic direction a signature watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DirectionScope {
    /// Traffic leaving the protected networks (the default).
    Outbound,
    /// Traffic entering the protected networks.
    Inbound,
    /// Every direction, including internal and external traffic.
    Any,
}

impl DirectionScope {
    /// The name used in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            DirectionScope::Outbound => "outbound",
            DirectionScope::Inbound => "inbound",
            DirectionScope::Any => "any",
        }
    }

    /// Parses a rule-file name.
    pub fn parse(s: &str) -> Option<DirectionScope> {
        match s {
            "outbound" => Some(DirectionScope::Outbound),
            "inbound" => Some(DirectionScope::Inbound),
            "any" => Some(DirectionScope::Any),
            _ => None,
        }
    }

    /// Whether traffic of `direction` is in scope.
    pub fn admits(self, direction: Direction) -> bool {
        match self {
            DirectionScope::Outbound => direction == Direction::Outbound,
            DirectionScope::Inbound => direction == Direction::Inbound,
            DirectionScope::Any => true,
        }
    }
}

/// A built-in scanner that finds structured secrets a literal cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Validator {
    /// Chinese resident identity number (GB 11643), checksum verified.
    CnResidentId,
    /// Payment card number, Luhn verified, known issuer prefix.
    BankCard,
    /// Mainland China mobile number.
    CnMobile,
    /// PEM private keys, password form fields, AWS access key ids.
    Credentials,
}

impl Validator {
    /// Every validator, in the order used in error messages.
    pub const ALL: [Validator; 4] = [
        Validator::CnResidentId,
        Validator::BankCard,
        Validator::CnMobile,
        Validator::Credentials,
    ];

    /// The name used in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            Validator::CnResidentId => "cn-resident-id",
            Validator::BankCard => "bank-card",
            Validator::CnMobile => "cn-mobile",
            Validator::Credentials => "credentials",
        }
    }

    /// Parses a rule-file name.
    pub fn parse(s: &str) -> Option<Validator> {
        Validator::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Keywords that must appear near a hit for it to count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// Any one of these (in any of the signature's encodings) must appear.
    pub keywords: Vec<String>,
    /// How many bytes before the hit's start or after its end to look.
    pub within: usize,
}

/// One validated signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Stable id (`[a-z0-9-]+`), unique in its set; goes into incidents.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Longer explanation for analysts.
    pub description: String,
    /// Free-form category, e.g. `classified`, `pii`, `credentials`.
    pub category: String,
    /// Severity of incidents this signature raises.
    pub severity: Severity,
    /// Disabled signatures are loaded and checked but never scanned for.
    pub enabled: bool,
    /// Literal patterns. With a validator they are context anchors, not
    /// matches of their own (see `docs/signatures.md`).
    pub patterns: Vec<String>,
    /// Whether literals and keywords match ASCII letters in any case.
    pub case_insensitive: bool,
    /// Encodings literals and keywords are searched in.
    pub encodings: Vec<Encoding>,
    /// Matches per flow before an incident fires (at least 1).
    pub min_count: u32,
    /// Traffic direction in scope.
    pub direction: DirectionScope,
    /// Ports in scope (either side of the flow); empty means every port.
    pub ports: Vec<u16>,
    /// The built-in validator, if any.
    pub validator: Option<Validator>,
    /// Required nearby keywords, if any (for validator signatures this
    /// includes `patterns`).
    pub context: Option<Context>,
    /// Where it was defined, as `file:line:column`.
    pub origin: String,
}

impl Signature {
    /// Whether a flow between these ports is in scope.
    pub fn applies_to_ports(&self, src_port: u16, dst_port: u16) -> bool {
        self.ports.is_empty() || self.ports.contains(&src_port) || self.ports.contains(&dst_port)
    }
}
