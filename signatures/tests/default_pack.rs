//! The built-in pack: what it must find and what it must leave alone.

use shaobing_signatures::{Encoding, Hit, LoadError, SignatureSet};

#[path = "../benches/support/corpus.rs"]
mod corpus;

fn pack() -> SignatureSet {
    match SignatureSet::default_pack() {
        Ok(set) => set,
        Err(e) => panic!("default pack does not load:\n{e}"),
    }
}

/// (signature id, masked excerpt) of every hit.
fn scan(set: &SignatureSet, hay: &[u8]) -> Vec<(String, String)> {
    let mut hits: Vec<Hit> = Vec::new();
    set.scan(hay, |h| hits.push(h));
    hits.iter()
        .map(|h| {
            let id = set
                .signatures()
                .get(h.signature)
                .map(|s| s.id.clone())
                .unwrap_or_default();
            (id, set.excerpt(hay, h))
        })
        .collect()
}

fn ids(set: &SignatureSet, hay: &[u8]) -> Vec<String> {
    scan(set, hay).into_iter().map(|(id, _)| id).collect()
}

#[test]
fn default_pack_loads_with_the_documented_ids() {
    let set = pack();
    let ids: Vec<&str> = set.signatures().iter().map(|s| s.id.as_str()).collect();
    for id in [
        "classification-marking",
        "cn-resident-id",
        "bank-card",
        "cn-mobile",
        "credentials",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    assert!(set.signatures().iter().all(|s| s.enabled));
}

#[test]
fn marking_is_found_in_utf8_gbk_gb18030_and_utf16() {
    let set = pack();
    for enc in Encoding::ALL {
        let Some(mut hay) = enc.encode("关于印发《工作要点》的通知 机密★5年 正文")
        else {
            panic!("cannot encode in {enc}");
        };
        hay.extend_from_slice(b" trailing ascii");
        assert_eq!(
            scan(&set, &hay),
            [("classification-marking".to_owned(), "机*★".to_owned())],
            "{enc}"
        );
    }
}

#[test]
fn secrecy_words_in_prose_without_the_star_do_not_match() {
    let set = pack();
    let prose = "各单位要严守秘密，机密文件按规定保管，绝密事项不得外传。This is a secret recipe.";
    for enc in [Encoding::Utf8, Encoding::Gbk, Encoding::Utf16Le] {
        let hay = enc.encode(prose).unwrap_or_default();
        assert!(ids(&set, &hay).is_empty(), "{enc}");
    }
}

#[test]
fn english_banner_marking_is_found_once() {
    let set = pack();
    assert_eq!(
        ids(&set, b"<p>TOP SECRET//NOFORN</p>"),
        ["classification-marking"]
    );
    assert!(ids(&set, b"top secret// in lower case is prose").is_empty());
}

#[test]
fn resident_id_with_wrong_check_digit_is_not_reported() {
    let set = pack();
    assert_eq!(
        scan(&set, b"{\"sfz\":\"11010519491231002X\"}"),
        [("cn-resident-id".to_owned(), "110105********002X".to_owned())]
    );
    assert!(ids(&set, b"{\"sfz\":\"110105194912310021\"}").is_empty());
    assert!(ids(&set, b"order 110101199003071234 shipped").is_empty());
}

#[test]
fn card_failing_luhn_is_not_reported() {
    let set = pack();
    assert_eq!(
        scan(&set, b"card=6222 0212 3456 7894&cvv=1"),
        [("bank-card".to_owned(), "6222 02** **** 7894".to_owned())]
    );
    assert!(ids(&set, b"card=6222 0212 3456 7890&cvv=1").is_empty());
    assert!(ids(&set, b"card=4111111111111112").is_empty());
}

#[test]
fn mobile_numbers_are_reported_with_a_masked_excerpt() {
    let set = pack();
    assert_eq!(
        scan(&set, "联系电话：13812345678".as_bytes()),
        [("cn-mobile".to_owned(), "138****5678".to_owned())]
    );
    let (_, mobile) = set
        .get("cn-mobile")
        .unwrap_or_else(|| panic!("no cn-mobile"));
    assert!(mobile.min_count > 1);
}

#[test]
fn credentials_are_found_and_the_secret_is_masked() {
    let set = pack();
    assert_eq!(
        scan(&set, b"user=li&Password=Tr0ub4dor&submit=1"),
        [("credentials".to_owned(), "Password=********".to_owned())]
    );
    assert_eq!(
        ids(&set, b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn"),
        ["credentials"]
    );
    let aws = scan(&set, b"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n");
    assert_eq!(aws.len(), 1);
    assert!(
        aws.iter().all(|(_, ex)| !ex.contains("IOSFODNN7EXAMPLE")),
        "{aws:?}"
    );
    assert!(ids(&set, b"-----BEGIN PUBLIC KEY-----\nMIIB").is_empty());
    assert!(ids(&set, b"password=&next=/home").is_empty());
}

#[test]
fn excerpts_never_contain_the_secret() {
    let set = pack();
    let cases: [(&[u8], &str); 4] = [
        (b"11010519491231002X", "1949123"),
        (b"6222021234567890128", "21234567890"),
        (b"pwd=correcthorse", "correcthorse"),
        (b"tel 13812345678", "1234"),
    ];
    for (hay, secret) in cases {
        let found = scan(&set, hay);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found.iter().all(|(_, ex)| !ex.contains(secret)),
            "{found:?}"
        );
    }
}

#[test]
fn mixed_corpus_gives_exactly_the_planted_hits() {
    let set = pack();
    let (payload, expected) = corpus::build(1 << 20);
    let mut got: Vec<(&str, usize)> = Vec::new();
    set.scan(&payload, |h| {
        let id = set
            .signatures()
            .get(h.signature)
            .map_or("?", |s| s.id.as_str());
        match got.iter_mut().find(|(g, _)| *g == id) {
            Some((_, n)) => *n += 1,
            None => got.push((id, 1)),
        }
    });
    got.sort();
    assert_eq!(got, expected);
}

#[test]
fn disabled_signatures_never_hit() -> Result<(), LoadError> {
    let text = "[[signature]]\nid = \"m\"\nname = \"M\"\ncategory = \"c\"\nseverity = \"low\"\nenabled = false\npatterns = [\"abc\"]\n";
    let set = SignatureSet::from_sources(&[("x.toml", text)])?;
    assert!(ids(&set, b"abc abc").is_empty());
    assert_eq!(set.signatures().len(), 1);
    Ok(())
}

#[test]
fn case_sensitive_and_insensitive_signatures_coexist() -> Result<(), LoadError> {
    let text = r#"
[[signature]]
id = "exact"
name = "Exact"
category = "c"
severity = "low"
patterns = ["Secret"]

[[signature]]
id = "folded"
name = "Folded"
category = "c"
severity = "low"
patterns = ["internal only"]
case_insensitive = true
"#;
    let set = SignatureSet::from_sources(&[("x.toml", text)])?;
    assert_eq!(ids(&set, b"Secret secret SECRET"), ["exact"]);
    assert_eq!(
        ids(&set, b"INTERNAL ONLY, Internal Only"),
        ["folded", "folded"]
    );
    Ok(())
}

#[test]
fn overlapping_patterns_of_different_signatures_all_hit() -> Result<(), LoadError> {
    let text = r#"
[[signature]]
id = "long"
name = "Long"
category = "c"
severity = "low"
patterns = ["project apollo"]

[[signature]]
id = "short"
name = "Short"
category = "c"
severity = "low"
patterns = ["apollo", "ollo"]
"#;
    let set = SignatureSet::from_sources(&[("x.toml", text)])?;
    let mut found = ids(&set, b"see project apollo plan");
    found.sort();
    // "ollo" is inside "apollo" of the same signature: counted once.
    assert_eq!(found, ["long", "short"]);
    Ok(())
}

#[test]
fn context_keywords_gate_validator_hits() -> Result<(), LoadError> {
    let text = r#"
[[signature]]
id = "card-with-keyword"
name = "Card near keyword"
category = "pii"
severity = "high"
validator = "bank-card"
patterns = ["卡号"]
encodings = ["utf-8", "gbk"]
context = { keywords = ["card no"], within = 16 }
case_insensitive = true
"#;
    let set = SignatureSet::from_sources(&[("x.toml", text)])?;
    assert_eq!(ids(&set, "卡号：4111111111111111".as_bytes()).len(), 1);
    let gbk = Encoding::Gbk
        .encode("卡号：4111111111111111")
        .unwrap_or_default();
    assert_eq!(ids(&set, &gbk).len(), 1);
    assert_eq!(ids(&set, b"CARD NO 4111111111111111").len(), 1);
    assert!(ids(&set, b"4111111111111111").is_empty());
    let far = format!("卡号{}4111111111111111", " ".repeat(40));
    assert!(ids(&set, far.as_bytes()).is_empty());
    Ok(())
}

#[test]
fn scan_tolerates_arbitrary_bytes() {
    let set = pack();
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut hay = Vec::with_capacity(1 << 16);
    for _ in 0..(1 << 16) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        hay.push((state >> 24) as u8);
    }
    for cut in [0, 1, 7, 100, 4095, hay.len()] {
        let part = hay.get(..cut).unwrap_or_default();
        set.scan(part, |h| {
            assert!(h.start <= h.end && h.end <= part.len());
            let _ = set.excerpt(part, &h);
        });
    }
}
