//! Load errors that point at the offending place in a rule file.

use std::fmt;

/// One problem found while loading signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (or source name) the problem is in.
    pub file: String,
    /// 1-based line and column (column counted in characters), when the
    /// problem has a place in the file.
    pub position: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Loading a signature set failed; holds every problem found, in file
/// order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.diagnostics))]
pub struct LoadError {
    diagnostics: Vec<Diagnostic>,
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

impl LoadError {
    pub(crate) fn new(diagnostics: Vec<Diagnostic>) -> LoadError {
        LoadError { diagnostics }
    }

    /// Every problem found (never empty).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }
}

/// Turns byte offsets of one source text into line and column numbers.
pub(crate) struct SourceMap<'a> {
    text: &'a str,
}

impl<'a> SourceMap<'a> {
    pub(crate) fn new(text: &'a str) -> SourceMap<'a> {
        SourceMap { text }
    }

    /// 1-based line and column (in characters) of byte `offset`; offsets
    /// past the end or inside a character are clamped back.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut line = 1;
        let mut column = 1;
        for (at, ch) in self.text.char_indices() {
            if at >= offset {
                break;
            }
            if ch == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        (line, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_characters_not_bytes() {
        let map = SourceMap::new("a = 1\nid = \"绝密\" x");
        assert_eq!(map.position(0), (1, 1));
        assert_eq!(map.position(6), (2, 1));
        // "x" is after two 3-byte characters: byte 6 + 6 + 6 + 2 = 20.
        assert_eq!(map.position(20), (2, 11));
        assert_eq!(map.position(10_000), (2, 12));
    }

    #[test]
    fn display_names_file_line_and_column() {
        let d = Diagnostic {
            file: "rules/foo.toml".into(),
            position: Some((12, 11)),
            message: "bad".into(),
        };
        assert_eq!(d.to_string(), "rules/foo.toml:12:11: bad");
        let e = LoadError::new(vec![
            d.clone(),
            Diagnostic {
                position: None,
                ..d
            },
        ]);
        assert_eq!(
            e.to_string(),
            "rules/foo.toml:12:11: bad\nrules/foo.toml: bad"
        );
    }
}
