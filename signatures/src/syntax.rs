//! Rule file → raw tables with byte spans (no meaning checked yet).

use serde::Deserialize;
use toml::Spanned;

/// A whole rule file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    /// The `[[signature]]` tables, in file order.
    #[serde(default)]
    pub signature: Vec<Spanned<RawSignature>>,
}

/// One `[[signature]]` table as written. Enumerations are kept as strings
/// so that a bad value gets a message listing the good ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSignature {
    pub id: Spanned<String>,
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub category: Spanned<String>,
    pub severity: Spanned<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub patterns: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub case_insensitive: Option<bool>,
    #[serde(default)]
    pub encodings: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub min_count: Option<Spanned<i64>>,
    #[serde(default)]
    pub direction: Option<Spanned<String>>,
    #[serde(default)]
    pub ports: Option<Vec<Spanned<i64>>>,
    #[serde(default)]
    pub validator: Option<Spanned<String>>,
    #[serde(default)]
    pub context: Option<Spanned<RawContext>>,
}

/// `context = { keywords = [...], within = N }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawContext {
    pub keywords: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub within: Option<Spanned<i64>>,
}

/// A parse failure: byte span (when known) and message.
pub(crate) type ParseError = (Option<std::ops::Range<usize>>, String);

fn convert(e: &toml::de::Error) -> ParseError {
    let message = e
        .message()
        .trim_end()
        .lines()
        .collect::<Vec<_>>()
        .join("; ")
        .replace("expected i64", "expected an integer");
    (e.span(), message)
}

/// Parses one file. TOML stops at its first error, so a shape error here
/// hides any later one; see [`parse_each_table`].
pub(crate) fn parse(text: &str) -> Result<RawFile, ParseError> {
    toml::from_str::<RawFile>(text).map_err(|e| convert(&e))
}

/// The file with only its `[[signature]]` tables, loosely typed.
#[derive(Debug, Deserialize)]
struct LooseFile {
    #[serde(default)]
    signature: Vec<Spanned<toml::Table>>,
}

/// After [`parse`] failed on a file that is valid TOML: parses every
/// `[[signature]]` table on its own (the rest of the file blanked out, so
/// spans stay those of the whole file), to report one problem per table
/// instead of one per file. `None` when the file is not valid TOML or does
/// not use `[[signature]]` headers.
pub(crate) fn parse_each_table(
    text: &str,
) -> Option<Vec<Result<Spanned<RawSignature>, ParseError>>> {
    let loose: LooseFile = toml::from_str(text).ok()?;
    let mut out = Vec::with_capacity(loose.signature.len());
    for table in &loose.signature {
        let span = table.span();
        if !text.get(span.clone())?.starts_with("[[") {
            return None;
        }
        let blanked: Vec<u8> = text
            .bytes()
            .enumerate()
            .map(|(i, b)| {
                if span.contains(&i) || b == b'\n' {
                    b
                } else {
                    b' '
                }
            })
            .collect();
        let blanked = String::from_utf8(blanked).ok()?;
        out.push(match toml::from_str::<RawFile>(&blanked) {
            Ok(file) => file
                .signature
                .into_iter()
                .next()
                .ok_or((Some(span), "empty table".to_owned())),
            Err(e) => Err(convert(&e)),
        });
    }
    Some(out)
}
