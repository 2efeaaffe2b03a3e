//! Prints the text the sensor extracts from a PDF file, and the content
//! counters: `cargo run -p shaobing-sensor --example pdf_text FILE.pdf`.
//! What a signature sees of a PDF upload is exactly this text.

use anyhow::Context;
use shaobing_sensor::content::{pdf, ContentLimits, ContentStats};

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: pdf_text FILE.pdf")?;
    let buf = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
    let mut stats = ContentStats::default();
    let mut out = Vec::new();
    pdf::extract(&buf, &ContentLimits::default(), &mut stats, &mut out);
    println!("{}", String::from_utf8_lossy(&out));
    for (name, n) in stats.counters() {
        if n > 0 {
            eprintln!("{name}={n}");
        }
    }
    Ok(())
}
