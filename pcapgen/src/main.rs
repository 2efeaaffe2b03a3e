//! `shaobing-pcapgen`: writes Shaobing's deterministic test captures and
//! their expected incidents, or checks that checked-in copies are current.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use shaobing_pcapgen::scenario::{self, Scenario};
use shaobing_pcapgen::scenarios::{floods, tunnels};

/// Generate Shaobing's test captures (classic pcap) and their expected
/// incidents (NAME.expected.json), deterministically.
///
/// Each scenario writes NAME.pcap and NAME.expected.json into the output
/// directory; README.md (the file formats and check semantics) is written
/// too. Running it twice gives byte-identical files.
#[derive(Debug, Parser)]
#[command(
    name = "shaobing-pcapgen",
    version,
    after_help = "Examples:\n  shaobing-pcapgen                     # write every scenario into pcaps/\n  \
                  shaobing-pcapgen --out /tmp/c syn-flood\n  \
                  shaobing-pcapgen --check             # exit 1 if pcaps/ is stale\n  \
                  shaobing-pcapgen --floods /tmp/floods # also write the flood captures\n  \
                  shaobing-pcapgen --list"
)]
struct Args {
    /// Directory to write into (or to check with --check).
    #[arg(long, short, value_name = "DIR", default_value = "pcaps")]
    out: PathBuf,

    /// Do not write: regenerate in memory and exit non-zero, naming every
    /// file in DIR that is missing or differs.
    #[arg(long, conflicts_with = "list")]
    check: bool,

    /// Print the scenarios with their descriptions and exit.
    #[arg(long)]
    list: bool,

    /// Also write the volumetric flood captures and their tunnelled
    /// variants (normally generated at test time, tens of megabytes) into
    /// DIR.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["check", "list"])]
    floods: Option<PathBuf>,

    /// Scenarios to generate (default: all). See --list.
    #[arg(value_name = "SCENARIO")]
    scenarios: Vec<String>,
}

fn select(names: &[String]) -> Result<Vec<Scenario>> {
    if names.is_empty() {
        return Ok(scenario::all());
    }
    let known: Vec<&str> = scenario::all().iter().map(|s| s.name).collect();
    names
        .iter()
        .map(|n| match scenario::find(n) {
            Some(s) => Ok(s),
            None => bail!("unknown scenario {n:?} (known: {})", known.join(", ")),
        })
        .collect()
}

fn run(args: Args) -> Result<ExitCode> {
    let selected = select(&args.scenarios)?;
    if args.list {
        for s in &selected {
            println!("{:<12} {}", s.name, s.summary);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.check {
        let mut stale = scenario::check_dir(&args.out, &selected)
            .with_context(|| format!("checking captures in {}", args.out.display()))?;
        if args.scenarios.is_empty() {
            // Volumetric scenarios: only their expected files are kept.
            let dir = args.out.join("volumetric");
            stale.extend(
                floods::check_expected_dir(&dir)
                    .with_context(|| format!("checking {}", dir.display()))?,
            );
            let dir = args.out.join(tunnels::EXPECTED_SUBDIR);
            stale.extend(
                tunnels::check_expected_dir(&dir)
                    .with_context(|| format!("checking {}", dir.display()))?,
            );
        }
        if stale.is_empty() {
            println!(
                "{}: all {} file(s) current",
                args.out.display(),
                selected.len() * 2 + 1
            );
            return Ok(ExitCode::SUCCESS);
        }
        for s in &stale {
            eprintln!("{}/{s}", args.out.display());
        }
        eprintln!(
            "{} stale file(s); regenerate with: cargo run -p shaobing-pcapgen -- --out {}",
            stale.len(),
            args.out.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let files = scenario::write_dir(&args.out, &selected)
        .with_context(|| format!("writing captures into {}", args.out.display()))?;
    if args.scenarios.is_empty() {
        // Volumetric scenarios are generated at test time; only their
        // expected files are kept (pcaps/volumetric/).
        let dir = args.out.join("volumetric");
        for name in floods::write_expected_dir(&dir)
            .with_context(|| format!("writing {}", dir.display()))?
        {
            println!("{}", dir.join(name).display());
        }
        let dir = args.out.join(tunnels::EXPECTED_SUBDIR);
        for name in tunnels::write_expected_dir(&dir)
            .with_context(|| format!("writing {}", dir.display()))?
        {
            println!("{}", dir.join(name).display());
        }
    }
    if let Some(dir) = &args.floods {
        let mut all = floods::all();
        all.extend(tunnels::all());
        for name in
            floods::write_dir(dir, &all).with_context(|| format!("writing {}", dir.display()))?
        {
            println!("{}", dir.join(name).display());
        }
    }
    for f in files {
        println!(
            "{} ({} bytes)",
            args.out.join(&f.name).display(),
            f.bytes.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shaobing-pcapgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
