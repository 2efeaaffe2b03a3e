//! Text of an XML document the way a reader sees it: text nodes joined
//! across elements (`<w:t>机</w:t><w:t>密★</w:t>` is `机密★`), character
//! and entity references decoded, and a line break where a paragraph,
//! table cell, row or shared string ends (so words of different cells are
//! not glued together). Markup, attribute values and processing
//! instructions are dropped.

use quick_xml::events::Event;
use quick_xml::Reader;

/// Local element names whose end separates text (OOXML `w:p`, `a:p`,
/// `si`, `c`, `row`, `tc`, `br`, `tab`; ODF `text:p`, `text:h`,
/// `table:table-cell`, `text:line-break`).
const BREAKS: [&str; 14] = [
    "p",
    "h",
    "si",
    "c",
    "row",
    "tc",
    "tr",
    "br",
    "ta",
    "cr",
    "table-cell",
    "line-break",
    "list-item",
    "sheet",
];

/// Appends the text of `xml` to `out`, at most `max` bytes. Returns false
/// if the document did not parse to its end (the text before the error is
/// kept).
pub fn text(xml: &[u8], max: usize, out: &mut Vec<u8>) -> bool {
    let mut reader = Reader::from_reader(xml);
    let config = reader.config_mut();
    config.trim_text(false);
    config.check_end_names = false;
    let mut buf = Vec::new();
    let start = out.len();
    loop {
        if out.len() - start >= max {
            out.truncate(start + max);
            return true;
        }
        buf.clear();
        match reader.read_event_into(&mut buf) {
            Ok(Event::Text(t)) => out.extend_from_slice(t.as_bytes()),
            Ok(Event::CData(t)) => out.extend_from_slice(t.as_bytes()),
            Ok(Event::GeneralRef(r)) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                } else {
                    let name = r.into_inner();
                    match quick_xml::escape::resolve_html5_entity(&name) {
                        Some(t) => out.extend_from_slice(t.as_bytes()),
                        None => {
                            out.push(b'&');
                            out.extend_from_slice(name.as_bytes());
                            out.push(b';');
                        }
                    }
                }
            }
            Ok(Event::End(e)) => {
                if BREAKS.contains(&e.local_name().as_ref()) {
                    out.push(b'\n');
                }
            }
            Ok(Event::Empty(e)) => {
                if BREAKS.contains(&e.local_name().as_ref()) {
                    out.push(b'\n');
                }
            }
            Ok(Event::Eof) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(xml: &str) -> String {
        let mut out = Vec::new();
        assert!(text(xml.as_bytes(), 1 << 20, &mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn runs_of_one_paragraph_are_joined_and_paragraphs_broken() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="x"><w:body><w:p><w:r><w:t>机</w:t></w:r><w:r><w:t xml:space="preserve">密★ 正文</w:t></w:r></w:p><w:p><w:r><w:t>下一段</w:t></w:r></w:p></w:body></w:document>"#;
        assert_eq!(run(doc), "机密★ 正文\n下一段\n");
    }

    #[test]
    fn references_are_decoded() {
        assert_eq!(
            run("<a><p>&#26426;&#x5BC6;&amp;&lt;&starf;</p></a>"),
            "机密&<★\n"
        );
    }

    #[test]
    fn shared_strings_are_one_per_line() {
        let sst = r#"<sst><si><t>110101</t></si><si><t>19900307</t></si></sst>"#;
        assert_eq!(run(sst), "110101\n19900307\n");
    }

    #[test]
    fn broken_xml_keeps_the_text_before_the_error() {
        let mut out = Vec::new();
        let _ = text(b"<a><p>kept</p><</a>", 100, &mut out);
        assert!(String::from_utf8_lossy(&out).contains("kept"));
    }

    #[test]
    fn output_stops_at_the_cap() {
        let doc = format!("<a>{}</a>", "x".repeat(1000));
        let mut out = Vec::new();
        text(doc.as_bytes(), 100, &mut out);
        assert_eq!(out.len(), 100);
    }
}
