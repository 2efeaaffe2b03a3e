//! A deterministic, realistic mixed payload for benchmarks and tests:
//! HTML, JSON, form posts, Chinese prose in UTF-8 and GBK, lots of short
//! numbers, and a known number of planted secrets.

/// Tiny deterministic generator (xorshift64*), so no `rand` dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PROSE: [&str; 4] = [
    "各部门要认真落实工作部署，做好信息安全保密工作，确保秘密不外泄。",
    "会议指出，要加强网络安全管理，提高数据保护水平，机密信息严禁上传互联网。",
    "本周天气晴朗，最高气温二十六度，适合户外活动。",
    "请于下周三前提交季度报告，联系人：王主任，办公室电话分机号 8021。",
];

/// Secrets planted in the corpus, each producing exactly one hit of the
/// default pack: (signature id, bytes).
fn plants() -> Vec<(&'static str, Vec<u8>)> {
    let gbk = encoding_rs::GBK.encode("文件 机密★1年 内部").0.into_owned();
    let utf16: Vec<u8> = "绝密★".encode_utf16().flat_map(u16::to_le_bytes).collect();
    vec![
        (
            "classification-marking",
            "标题：秘密★启用前".as_bytes().to_vec(),
        ),
        ("classification-marking", gbk),
        ("classification-marking", utf16),
        (
            "classification-marking",
            b"<h1>TOP SECRET//NOFORN</h1>".to_vec(),
        ),
        (
            "cn-resident-id",
            b"{\"idcard\":\"11010519491231002X\"}".to_vec(),
        ),
        (
            "bank-card",
            b"card_no=6222+0212&x=1 6222 0212 3456 7894 ".to_vec(),
        ),
        ("cn-mobile", b"tel: 13812345678;".to_vec()),
        (
            "credentials",
            b"user=zhang&password=hunter2&remember=1".to_vec(),
        ),
        (
            "credentials",
            b"aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n".to_vec(),
        ),
        (
            "credentials",
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n".to_vec(),
        ),
    ]
}

/// Builds about `size` bytes of payload; returns it and the number of
/// default-pack hits it must produce, per signature id.
pub fn build(size: usize) -> (Vec<u8>, Vec<(&'static str, usize)>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let plants = plants();
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    let mut out = Vec::with_capacity(size + 4096);
    let gbk_prose: Vec<Vec<u8>> = PROSE
        .iter()
        .map(|p| encoding_rs::GBK.encode(p).0.into_owned())
        .collect();
    let mut segment = 0u64;
    while out.len() < size {
        segment += 1;
        // Short numbers only (at most 10 digits), so no filler can match.
        let n1 = rng.below(100_000);
        let n2 = rng.below(10_000_000_000);
        let n3 = rng.below(1000);
        match rng.below(6) {
            0 => out.extend_from_slice(
                format!(
                    "<div class=\"item\" data-id=\"{n1}\"><a href=\"/news/{n3}.html\">新闻 {n3}</a><span>¥{n1}.{n3:02}</span></div>\n"
                )
                .as_bytes(),
            ),
            1 => out.extend_from_slice(
                format!("{{\"id\":{n1},\"ts\":{n2},\"user\":\"zhang{n3}\",\"items\":[{n3},{n1},7],\"ok\":true}}\n").as_bytes(),
            ),
            2 => out.extend_from_slice(
                format!("POST /login HTTP/1.1\r\nContent-Length: {n3}\r\n\r\nusername=u{n1}&token=ab{n2:x}&page={n3}\n").as_bytes(),
            ),
            3 => {
                let i = rng.below(PROSE.len() as u64) as usize;
                out.extend_from_slice(PROSE.get(i).map_or(&b""[..], |p| p.as_bytes()));
            }
            4 => {
                let i = rng.below(gbk_prose.len() as u64) as usize;
                out.extend_from_slice(gbk_prose.get(i).map_or(&[][..], Vec::as_slice));
                out.push(b'\n');
            }
            _ => out.extend_from_slice(
                format!("GET /api/v{n3}/orders?page={n3}&size=20&sort=date HTTP/1.1\r\nHost: example.invalid\r\nX-Request-Id: {n2}-{n1}\r\n\r\n").as_bytes(),
            ),
        }
        if segment.is_multiple_of(97) {
            let i = rng.below(plants.len() as u64) as usize;
            if let Some((id, bytes)) = plants.get(i) {
                out.push(b'\n');
                out.extend_from_slice(bytes);
                out.push(b'\n');
                match counts.iter_mut().find(|(c, _)| c == id) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((id, 1)),
                }
            }
        }
    }
    counts.sort();
    (out, counts)
}
