//! PDF tokens and objects (ISO 32000-1 §7.2, §7.3) read from untrusted
//! bytes: every token read advances, every string and nesting level is
//! bounded by the input, and a parse has a node budget.

/// One token.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok<'a> {
    /// An integer.
    Int(i64),
    /// A real number.
    Real(f64),
    /// `/Name`, `#xx` escapes decoded.
    Name(Vec<u8>),
    /// A literal `( )` or hexadecimal `< >` string, decoded.
    Str(Vec<u8>),
    /// `<<`.
    DictOpen,
    /// `>>`.
    DictClose,
    /// `[`.
    ArrOpen,
    /// `]`.
    ArrClose,
    /// Any other run of regular characters (`obj`, `R`, `Tj`, `{`, ...).
    Keyword(&'a [u8]),
    /// The end of the input.
    Eof,
}

/// PDF white-space characters.
pub fn is_white(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

fn is_delim(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn is_regular(b: u8) -> bool {
    !is_white(b) && !is_delim(b)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A lexer over one buffer.
#[derive(Clone, Debug)]
pub struct Lexer<'a> {
    buf: &'a [u8],
    /// Next byte to read.
    pub pos: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Lexer { buf, pos: 0 }
    }

    /// A lexer at `pos` of `buf`.
    pub fn at(buf: &'a [u8], pos: usize) -> Self {
        Lexer { buf, pos }
    }

    /// The whole buffer.
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Whether a generation number and `R` come next (the rest of an
    /// indirect reference `N G R`); if so, moves past them. Reads no
    /// token, so a number not followed by `R` costs no look-ahead parse.
    pub fn ref_follows(&mut self) -> bool {
        let mut at = self.pos;
        let white = |at: &mut usize, buf: &[u8]| {
            while buf.get(*at).copied().is_some_and(is_white) {
                *at += 1;
            }
        };
        white(&mut at, self.buf);
        let digits = at;
        while self.buf.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == digits || !self.buf.get(at).copied().is_some_and(is_white) {
            return false;
        }
        white(&mut at, self.buf);
        if self.buf.get(at) != Some(&b'R') || self.buf.get(at + 1).copied().is_some_and(is_regular)
        {
            return false;
        }
        self.pos = at + 1;
        true
    }

    /// Skips white space and comments.
    pub fn skip_white(&mut self) {
        while let Some(b) = self.peek() {
            if is_white(b) {
                self.pos += 1;
            } else if b == b'%' {
                while let Some(c) = self.peek() {
                    if c == b'\n' || c == b'\r' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// The next token (always past at least one byte unless at the end).
    pub fn next_tok(&mut self) -> Tok<'a> {
        self.skip_white();
        let Some(b) = self.peek() else {
            return Tok::Eof;
        };
        let start = self.pos;
        self.pos += 1;
        match b {
            b'(' => Tok::Str(self.literal()),
            b'<' if self.peek() == Some(b'<') => {
                self.pos += 1;
                Tok::DictOpen
            }
            b'<' => Tok::Str(self.hex_string()),
            b'>' if self.peek() == Some(b'>') => {
                self.pos += 1;
                Tok::DictClose
            }
            b'[' => Tok::ArrOpen,
            b']' => Tok::ArrClose,
            b'/' => Tok::Name(self.name()),
            b')' | b'>' | b'{' | b'}' => {
                Tok::Keyword(self.buf.get(start..self.pos).unwrap_or_default())
            }
            _ => {
                while self.peek().is_some_and(is_regular) {
                    self.pos += 1;
                }
                let word = self.buf.get(start..self.pos).unwrap_or_default();
                number(word).unwrap_or(Tok::Keyword(word))
            }
        }
    }

    /// A literal string after its `(`: balanced parentheses, escapes.
    fn literal(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut depth = 1usize;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'(' => {
                    depth += 1;
                    out.push(b);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return out;
                    }
                    out.push(b);
                }
                b'\\' => {
                    let Some(e) = self.peek() else { break };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'\r' => {
                            // A line continuation: \ CR LF or \ CR.
                            if self.peek() == Some(b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            // High-order overflow is ignored (§7.3.4.2).
                            out.push((v & 0xff) as u8);
                        }
                        // `\(`, `\)`, `\\`, and an unknown escape: the
                        // character itself.
                        other => out.push(other),
                    }
                }
                b'\r' => {
                    // An end of line in a string is a line feed.
                    if self.peek() == Some(b'\n') {
                        self.pos += 1;
                    }
                    out.push(b'\n');
                }
                _ => out.push(b),
            }
        }
        out
    }

    /// A hexadecimal string after its `<`.
    fn hex_string(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        while let Some(b) = self.peek() {
            self.pos += 1;
            if b == b'>' {
                break;
            }
            let Some(v) = hex(b) else { continue };
            match high.take() {
                Some(h) => out.push(h << 4 | v),
                None => high = Some(v),
            }
        }
        if let Some(h) = high {
            out.push(h << 4);
        }
        out
    }

    /// A name after its `/`.
    fn name(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(b) = self.peek().filter(|&b| is_regular(b)) {
            self.pos += 1;
            if b == b'#' {
                let pair = (
                    self.buf.get(self.pos).copied().and_then(hex),
                    self.buf.get(self.pos + 1).copied().and_then(hex),
                );
                if let (Some(h), Some(l)) = pair {
                    out.push(h << 4 | l);
                    self.pos += 2;
                    continue;
                }
            }
            out.push(b);
        }
        out
    }
}

/// A number token, if `word` is one.
fn number(word: &[u8]) -> Option<Tok<'static>> {
    // Operators (`Tj`, `TJ`, `Tm`, ...) are most words: out at once.
    let first = *word.first()?;
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return None;
    }
    // The common case: a short unsigned integer.
    if word.len() <= 18 && word.iter().all(u8::is_ascii_digit) {
        let v = word.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0'));
        return Some(Tok::Int(v));
    }
    let s = std::str::from_utf8(word).ok()?;
    let digits = s.trim_start_matches(['+', '-']);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    if !digits.contains('.') {
        if let Ok(i) = s.parse::<i64>() {
            return Some(Tok::Int(i));
        }
    }
    // `-.5`, `4.`, and integers too long for i64.
    let sign = if s.starts_with('-') { -1.0 } else { 1.0 };
    let v = if digits == "." {
        0.0
    } else {
        digits.parse::<f64>().ok()?
    };
    Some(Tok::Real(sign * v))
}

/// A PDF object.
#[derive(Clone, Debug, PartialEq)]
pub enum Obj {
    /// `null`, or what could not be read.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A name.
    Name(Vec<u8>),
    /// A string (bytes).
    Str(Vec<u8>),
    /// An array.
    Array(Vec<Obj>),
    /// A dictionary, in file order.
    Dict(Vec<(Vec<u8>, Obj)>),
    /// An indirect reference `N G R`.
    Ref(u32),
}

impl Obj {
    /// The value of `key` in a dictionary.
    pub fn get(&self, key: &[u8]) -> Option<&Obj> {
        match self {
            Obj::Dict(d) => d.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Whether this is the name `n`.
    pub fn is_name(&self, n: &[u8]) -> bool {
        matches!(self, Obj::Name(x) if x == n)
    }

    /// A non-negative integer value.
    pub fn as_usize(&self) -> Option<usize> {
        match self {
            Obj::Num(v) if *v >= 0.0 && v.fract() == 0.0 && *v < 1e15 => Some(*v as usize),
            _ => None,
        }
    }
}

/// Deepest nesting of arrays and dictionaries parsed.
const MAX_DEPTH: usize = 32;

/// Why an object could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("nested too deep")]
    TooDeep,
    /// More nodes than the parse's budget.
    #[error("object too large")]
    TooLarge,
    /// A token that cannot start a value (a keyword, `]`, `>>`, the end).
    #[error("unexpected token")]
    Unexpected,
}

/// Reads objects from a lexer with a node budget.
pub struct Parser<'a, 'b> {
    /// The lexer (left after the value read).
    pub lex: &'b mut Lexer<'a>,
    /// Nodes still allowed.
    pub budget: usize,
}

impl<'a> Parser<'a, '_> {
    /// Reads one value.
    pub fn value(&mut self) -> Result<Obj, ParseError> {
        let t = self.lex.next_tok();
        self.value_from(t, 0)
    }

    /// Reads the value that starts with `t`.
    pub fn value_from(&mut self, t: Tok<'a>, depth: usize) -> Result<Obj, ParseError> {
        if depth > MAX_DEPTH {
            return Err(ParseError::TooDeep);
        }
        self.budget = self.budget.checked_sub(1).ok_or(ParseError::TooLarge)?;
        Ok(match t {
            Tok::Int(i) => {
                // `N G R` is a reference.
                if self.lex.ref_follows() {
                    return Ok(u32::try_from(i).map_or(Obj::Null, Obj::Ref));
                }
                Obj::Num(i as f64)
            }
            Tok::Real(r) => Obj::Num(r),
            Tok::Name(n) => Obj::Name(n),
            Tok::Str(s) => Obj::Str(s),
            Tok::Keyword(b"true") => Obj::Bool(true),
            Tok::Keyword(b"false") => Obj::Bool(false),
            Tok::Keyword(b"null") => Obj::Null,
            Tok::ArrOpen => {
                let mut items = Vec::new();
                loop {
                    match self.lex.next_tok() {
                        Tok::ArrClose => break,
                        Tok::Eof => return Err(ParseError::Unexpected),
                        t => items.push(self.value_from(t, depth + 1)?),
                    }
                }
                Obj::Array(items)
            }
            Tok::DictOpen => {
                let mut entries = Vec::new();
                loop {
                    match self.lex.next_tok() {
                        Tok::DictClose => break,
                        Tok::Name(k) => {
                            let t = self.lex.next_tok();
                            if t == Tok::DictClose {
                                // A key without a value: `<< /A >>`.
                                break;
                            }
                            entries.push((k, self.value_from(t, depth + 1)?));
                        }
                        Tok::Eof => return Err(ParseError::Unexpected),
                        // A stray token between entries is skipped.
                        _ => {}
                    }
                }
                Obj::Dict(entries)
            }
            _ => return Err(ParseError::Unexpected),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &[u8]) -> Vec<Tok<'_>> {
        let mut l = Lexer::new(s);
        let mut v = Vec::new();
        loop {
            match l.next_tok() {
                Tok::Eof => return v,
                t => v.push(t),
            }
        }
    }

    #[test]
    fn literal_strings_decode_every_escape_and_keep_balanced_parentheses() {
        let t = toks(b"(a\\(b\\)\\\\ (c) \\101\\60x\\n\\\r\nd\\q)");
        assert_eq!(t, [Tok::Str(b"a(b)\\ (c) A0x\ndq".to_vec())]);
    }

    #[test]
    fn hex_strings_ignore_white_space_and_pad_an_odd_digit() {
        assert_eq!(toks(b"<4E 6f7>"), [Tok::Str(vec![0x4e, 0x6f, 0x70])]);
    }

    #[test]
    fn names_numbers_and_keywords() {
        assert_eq!(
            toks(b"/F#31 -12 .5 4. BT%comment\nET"),
            [
                Tok::Name(b"F1".to_vec()),
                Tok::Int(-12),
                Tok::Real(0.5),
                Tok::Real(4.0),
                Tok::Keyword(b"BT"),
                Tok::Keyword(b"ET"),
            ]
        );
    }

    #[test]
    fn dictionaries_arrays_and_references_parse() {
        let mut l = Lexer::new(b"<< /Type /Font /ToUnicode 12 0 R /W [1 [500 600]] /N null >>");
        let o = Parser {
            lex: &mut l,
            budget: 100,
        }
        .value()
        .unwrap();
        assert!(o.get(b"Type").unwrap().is_name(b"Font"));
        assert_eq!(o.get(b"ToUnicode"), Some(&Obj::Ref(12)));
        assert_eq!(o.get(b"N"), Some(&Obj::Null));
    }

    #[test]
    fn deep_nesting_and_large_objects_are_refused() {
        let deep = "[".repeat(100);
        let mut l = Lexer::new(deep.as_bytes());
        let r = Parser {
            lex: &mut l,
            budget: 1000,
        }
        .value();
        assert_eq!(r, Err(ParseError::TooDeep));
        let big = format!("[{}]", "1 ".repeat(100));
        let mut l = Lexer::new(big.as_bytes());
        let r = Parser {
            lex: &mut l,
            budget: 50,
        }
        .value();
        assert_eq!(r, Err(ParseError::TooLarge));
    }
}
