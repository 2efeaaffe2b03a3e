//! Loading rule files: every problem is reported with `file:line:column`.

use shaobing_signatures::{DirectionScope, Encoding, LoadError, Severity, SignatureSet, Validator};

const GOOD: &str = r#"
[[signature]]
id = "marking"
name = "Marking"
category = "classified"
severity = "critical"
patterns = ["绝密★"]
"#;

fn errors(text: &str) -> Vec<String> {
    errors_of(&[("rules/foo.toml", text)])
}

fn errors_of(sources: &[(&str, &str)]) -> Vec<String> {
    match SignatureSet::from_sources(sources) {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics().iter().map(ToString::to_string).collect(),
    }
}

fn table(extra: &str) -> String {
    format!("[[signature]]\nid = \"s\"\nname = \"S\"\ncategory = \"c\"\nseverity = \"low\"\npatterns = [\"x\"]\n{extra}")
}

#[test]
fn defaults_apply_when_keys_are_left_out() -> Result<(), LoadError> {
    let set = SignatureSet::from_sources(&[("a.toml", GOOD)])?;
    let sig = set.signatures().first().cloned();
    let Some(sig) = sig else {
        panic!("no signature loaded");
    };
    assert!(sig.enabled);
    assert!(!sig.case_insensitive);
    assert_eq!(sig.encodings, [Encoding::Utf8]);
    assert_eq!(sig.min_count, 1);
    assert_eq!(sig.direction, DirectionScope::Outbound);
    assert!(sig.ports.is_empty());
    assert_eq!(sig.severity, Severity::Critical);
    assert_eq!(sig.validator, None);
    assert_eq!(sig.origin, "a.toml:2:1");
    Ok(())
}

#[test]
fn every_key_is_read() -> Result<(), LoadError> {
    let text = r#"
[[signature]]
id = "card-near-keyword"
name = "Card"
description = "d"
category = "pii"
severity = "medium"
enabled = false
patterns = ["卡号"]
case_insensitive = true
encodings = ["utf-8", "gbk"]
min_count = 3
direction = "any"
ports = [80, 8080]
validator = "bank-card"
context = { keywords = ["card"], within = 32 }
"#;
    let set = SignatureSet::from_sources(&[("a.toml", text)])?;
    let Some(sig) = set.signatures().first() else {
        panic!("no signature loaded");
    };
    assert!(!sig.enabled);
    assert!(sig.case_insensitive);
    assert_eq!(sig.encodings, [Encoding::Utf8, Encoding::Gbk]);
    assert_eq!(sig.min_count, 3);
    assert_eq!(sig.direction, DirectionScope::Any);
    assert_eq!(sig.ports, [80, 8080]);
    assert!(sig.applies_to_ports(1234, 8080));
    assert!(!sig.applies_to_ports(1234, 443));
    assert_eq!(sig.validator, Some(Validator::BankCard));
    let ctx = sig.context.clone().unwrap_or_else(|| panic!("no context"));
    assert_eq!(ctx.within, 32);
    // With a validator, patterns join the context keywords.
    assert_eq!(ctx.keywords, ["card", "卡号"]);
    Ok(())
}

#[test]
fn syntax_error_names_line_and_column() {
    assert_eq!(
        errors("[[signature]\nid = 1\n"),
        ["rules/foo.toml:1:12: invalid table header; expected `.`, `]]`"]
    );
}

#[test]
fn unknown_key_is_reported_at_the_key() {
    let errs = errors(&table("colour = \"red\"\n"));
    assert_eq!(errs.len(), 1);
    assert!(
        errs.iter()
            .all(|e| e.starts_with("rules/foo.toml:7:1: unknown field `colour`")),
        "{errs:?}"
    );
}

#[test]
fn wrong_types_are_reported_at_the_value() {
    assert_eq!(
        errors(&table("enabled = \"yes\"\n")),
        ["rules/foo.toml:7:11: invalid type: string \"yes\", expected a boolean"]
    );
    assert_eq!(
        errors(&table("ports = [\"80\"]\n")),
        ["rules/foo.toml:7:10: invalid type: string \"80\", expected an integer"]
    );
}

#[test]
fn missing_required_key_is_reported_at_the_table() {
    let errs =
        errors("[[signature]]\nid = \"a\"\nname = \"A\"\ncategory = \"c\"\npatterns = [\"x\"]\n");
    assert_eq!(errs, ["rules/foo.toml:1:1: missing field `severity`"]);
}

#[test]
fn bad_enum_values_list_the_good_ones() {
    assert_eq!(
        errors(&table("encodings = [\"utf-8\", \"utf-32\"]\n")),
        ["rules/foo.toml:7:23: unknown encoding \"utf-32\" (expected one of utf-8, gbk, gb18030, utf-16le, utf-16be)"]
    );
    assert_eq!(
        errors(&table("validator = \"iban\"\n")),
        ["rules/foo.toml:7:13: unknown validator \"iban\" (expected one of cn-resident-id, bank-card, cn-mobile, credentials)"]
    );
    assert_eq!(
        errors(&table("direction = \"sideways\"\n")),
        ["rules/foo.toml:7:13: unknown direction \"sideways\" (expected one of outbound, inbound, any)"]
    );
    let errs = errors("[[signature]]\nid = \"s\"\nname = \"S\"\ncategory = \"c\"\nseverity = \"urgent\"\npatterns = [\"x\"]\n");
    assert_eq!(
        errs,
        ["rules/foo.toml:5:12: unknown severity \"urgent\" (expected one of low, medium, high, critical)"]
    );
}

#[test]
fn signature_that_could_never_match_is_rejected() {
    let errs = errors("[[signature]]\nid = \"s\"\nname = \"S\"\ncategory = \"c\"\nseverity = \"low\"\npatterns = []\n");
    assert_eq!(
        errs,
        ["rules/foo.toml:6:12: empty pattern list and no validator: the signature could never match"]
    );
    let errs =
        errors("[[signature]]\nid = \"s\"\nname = \"S\"\ncategory = \"c\"\nseverity = \"low\"\n");
    assert_eq!(
        errs,
        ["rules/foo.toml:1:1: signature has neither `patterns` nor a `validator`: it could never match"]
    );
}

#[test]
fn invalid_id_characters_are_rejected() {
    let errs = errors("[[signature]]\nid = \"Bad_Id\"\nname = \"S\"\ncategory = \"c\"\nseverity = \"low\"\npatterns = [\"x\"]\n");
    assert_eq!(
        errs,
        ["rules/foo.toml:2:6: invalid id \"Bad_Id\" (use 1 to 64 of a-z, 0-9 and -)"]
    );
}

#[test]
fn duplicate_id_points_at_the_second_and_names_the_first() {
    let errs = errors_of(&[
        ("rules/a.toml", GOOD),
        ("rules/b.toml", &format!("\n\n{GOOD}")),
    ]);
    assert_eq!(
        errs,
        ["rules/b.toml:5:6: duplicate id \"marking\" (first defined at rules/a.toml:3:6)"]
    );
}

#[test]
fn pattern_that_gbk_cannot_encode_is_rejected() {
    let errs = errors(&table("encodings = [\"gbk\"]\n").replace("[\"x\"]", "[\"x\", \"🔑\"]"));
    assert_eq!(
        errs,
        ["rules/foo.toml:6:18: pattern \"🔑\" cannot be encoded in GBK (characters \"🔑\")"]
    );
}

#[test]
fn out_of_range_numbers_are_rejected() {
    assert_eq!(
        errors(&table("min_count = 0\n")),
        ["rules/foo.toml:7:13: min_count must be between 1 and 4294967295, not 0"]
    );
    assert_eq!(
        errors(&table("ports = [80, 70000]\n")),
        ["rules/foo.toml:7:14: port must be between 1 and 65535, not 70000"]
    );
    assert_eq!(
        errors(&table("context = { keywords = [\"k\"], within = 0 }\n")),
        ["rules/foo.toml:7:40: context.within must be between 1 and 4096 bytes, not 0"]
    );
}

#[test]
fn all_problems_of_all_files_are_collected() {
    let broken_shape = format!(
        "{}\n{}",
        table("colour = 1\n"),
        table("encodings = [\"utf-32\"]\n").replace("id = \"s\"", "id = \"t\"")
    );
    let errs = errors_of(&[
        ("rules/a.toml", &broken_shape),
        (
            "rules/b.toml",
            &table("severity2 = 1\n").replace("low", "urgent"),
        ),
        ("rules/c.toml", "[[signature]\n"),
    ]);
    assert_eq!(
        errs.iter()
            .map(|e| e.split(": ").next().unwrap_or_default())
            .collect::<Vec<_>>(),
        [
            "rules/a.toml:7:1",
            "rules/a.toml:15:14",
            "rules/b.toml:7:1",
            "rules/c.toml:1:12"
        ],
        "{errs:#?}"
    );
}

#[test]
fn load_reads_a_directory_of_toml_files_in_name_order() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("shaobing-sig-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("b.toml"),
        table("").replace("id = \"s\"", "id = \"second\""),
    )?;
    std::fs::write(
        dir.join("a.toml"),
        table("").replace("id = \"s\"", "id = \"first\""),
    )?;
    std::fs::write(dir.join("notes.txt"), "not a rule file")?;
    let set = SignatureSet::load(&dir)?;
    let ids: Vec<&str> = set.signatures().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["first", "second"]);
    let single = SignatureSet::load(dir.join("b.toml"))?;
    assert_eq!(single.signatures().len(), 1);
    let missing = SignatureSet::load(dir.join("missing.toml"));
    assert!(missing.is_err_and(|e| e.to_string().contains("missing.toml: cannot read")));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
