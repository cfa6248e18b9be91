//! A quick reader for the plain shape of the `static` type block, tried before serde.
//!
//! Every translation parses the block, and serde_json's generic machinery was the
//! largest part of the plugin's own time per call. This reader takes only a plain
//! subset of JSON — an object of known fields, each at most once; strings without
//! escapes or control characters; non-negative integers without sign, fraction or
//! exponent; `true` and `false` — and gives up on anything else (`null`, unknown or
//! repeated fields, a missing required field, odd numbers, syntax errors), leaving serde
//! to produce the value or the error message. What it accepts, serde accepts too, with
//! the same result; the tests check that.

use crate::config::{Host, StaticConfig};

/// The block, when it is written in the plain subset; `None` means "ask serde".
pub(crate) fn parse(json: &str) -> Option<StaticConfig> {
    let mut reader = Reader { text: json, pos: 0 };
    let config = reader.config()?;
    reader.skip_whitespace();
    (reader.pos == json.len()).then_some(config)
}

/// A cursor over the JSON text.
struct Reader<'a> {
    text: &'a str,
    /// Byte offset of the next unread byte.
    pos: usize,
}

impl<'a> Reader<'a> {
    fn config(&mut self) -> Option<StaticConfig> {
        let (mut hosts, mut use_tls, mut auto_sni_rewrite) = (None, None, None);
        self.object(|r, key| {
            match key {
                "hosts" if hosts.is_none() => hosts = Some(r.array(Self::host)?),
                "useTls" if use_tls.is_none() => use_tls = Some(r.boolean()?),
                "autoSniRewrite" if auto_sni_rewrite.is_none() => {
                    auto_sni_rewrite = Some(r.boolean()?)
                }
                _ => return None,
            }
            Some(())
        })?;
        Some(StaticConfig {
            hosts: hosts?,
            use_tls,
            auto_sni_rewrite,
        })
    }

    fn host(&mut self) -> Option<Host> {
        let (mut addr, mut port, mut weight, mut sni) = (None, None, None, None);
        self.object(|r, key| {
            match key {
                "addr" if addr.is_none() => addr = Some(r.string()?),
                "port" if port.is_none() => port = Some(r.integer()?),
                "loadBalancingWeight" if weight.is_none() => weight = Some(r.integer()?),
                "sniAddr" if sni.is_none() => sni = Some(r.string()?),
                _ => return None,
            }
            Some(())
        })?;
        Some(Host {
            addr: addr?.to_owned(),
            port: port?,
            load_balancing_weight: weight,
            sni_addr: sni.map(str::to_owned),
        })
    }

    /// `{ "key": value, ... }`, handing each key to `field`, which reads its value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            field(self, key)?;
            if !self.eat(b',') {
                return self.expect(b'}');
            }
        }
    }

    /// `[ item, ... ]`.
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        if self.eat(b']') {
            return Some(items);
        }
        loop {
            items.push(item(self)?);
            if !self.eat(b',') {
                self.expect(b']')?;
                return Some(items);
            }
        }
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.pos;
        let end = start + plain_run(&self.text.as_bytes()[start..]);
        if self.text.as_bytes().get(end) != Some(&b'"') {
            return None;
        }
        self.pos = end + 1;
        // The quotes are ASCII, so both ends are character boundaries.
        Some(&self.text[start..end])
    }

    /// A non-negative integer of at most 18 digits (so it fits an `i64`), without a
    /// leading zero, fraction or exponent.
    fn integer(&mut self) -> Option<i64> {
        self.skip_whitespace();
        let rest = &self.text.as_bytes()[self.pos..];
        // One pass: count the digits and add them up (18 digits cannot overflow).
        let mut value = 0;
        let mut digits = 0;
        while let Some(digit) = rest.get(digits).and_then(|b| b.checked_sub(b'0'))
            && digit <= 9
        {
            if digits == 18 {
                return None;
            }
            value = value * 10 + i64::from(digit);
            digits += 1;
        }
        let plain = digits == 1 || (digits > 1 && rest[0] != b'0');
        if !plain || matches!(rest.get(digits), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.pos += digits;
        Some(value)
    }

    fn boolean(&mut self) -> Option<bool> {
        self.skip_whitespace();
        let rest = &self.text.as_bytes()[self.pos..];
        let (value, len) = if rest.starts_with(b"true") {
            (true, 4)
        } else if rest.starts_with(b"false") {
            (false, 5)
        } else {
            return None;
        };
        self.pos += len;
        Some(value)
    }

    /// Skips whitespace, then consumes `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        let next = self.text.as_bytes().get(self.pos) == Some(&byte);
        if next {
            self.pos += 1;
        }
        next
    }

    /// [`Reader::eat`], giving up when `byte` is not next.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// Skips JSON whitespace (space, tab, line feed, carriage return).
    fn skip_whitespace(&mut self) {
        let bytes = self.text.as_bytes();
        while matches!(bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }
}

/// How many bytes at the start of `bytes` may stand in a plain string: the length up to
/// the first `"`, `\` or control character (or the whole slice).
///
/// The block's strings are read on every translation, so this looks at eight bytes at
/// a time: in `x - 0x0101..01 & !x & 0x8080..80` exactly the bytes of `x` that are zero
/// have their top bit set up to the first such byte (a borrow can only mark bytes above
/// it), so the lowest marked byte of the three tests below is the first special one.
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const TOPS: u64 = u64::from_le_bytes([0x80; 8]);
    let mut done = 0;
    while let Some(chunk) = bytes.get(done..done + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let special = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            // Bytes below 0x20: subtracting 0x20 borrows, and their top bit is clear.
            | (word.wrapping_sub(ONES * 0x20) & !word);
        let special = special & TOPS;
        if special != 0 {
            return done + (special.trailing_zeros() / 8) as usize;
        }
        done += 8;
    }
    let tail = &bytes[done..];
    done + tail
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(tail.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin_sdk::parse_config;

    /// Typical blocks, and blocks at the edges of the plain subset.
    const BLOCKS: &[&str] = &[
        r#"{"hosts":[{"addr":"10.0.0.1","port":8080},{"addr":"10.0.0.2","port":8080,"loadBalancingWeight":2}]}"#,
        r#"{"autoSniRewrite":false,"hosts":[{"addr":"api.example","port":443,"sniAddr":"x.example"}],"useTls":true}"#,
        " { \"hosts\" : [ { \"port\" : 0 , \"addr\" : \"\" } ] , \"useTls\" : false }\n\t\r",
        r#"{"hosts":[]}"#,
        r#"{"hosts":[{"addr":"a","port":123456789012345678,"loadBalancingWeight":4294967296}]}"#,
        r#"{"hosts":[{"addr":"ünïcödé.example","port":1}]}"#,
        r#"{"hosts":[{"addr":"a","port":-1}]}"#,
        r#"{"hosts":[{"addr":"a","port":-0}]}"#,
        r#"{"hosts":[{"addr":"a","port":1234567890123456789}]}"#,
        r#"{"hosts":[{"addr":"a","port":80.0}]}"#,
        r#"{"hosts":[{"addr":"a","port":8e1}]}"#,
        r#"{"hosts":[{"addr":"a","port":080}]}"#,
        r#"{"hosts":[{"addr":"a\u0062","port":80}]}"#,
        r#"{"hosts":[{"addr":"a\"b","port":80}]}"#,
        r#"{"hosts":[{"addr":"a","port":80,"port":81}]}"#,
        r#"{"hosts":[{"addr":"a","port":80}],"hosts":[]}"#,
        r#"{"hosts":[{"addr":"a","port":80}],"useTls":null}"#,
        r#"{"hosts":[{"addr":"a","port":80,"sniAddr":null}]}"#,
        r#"{"hosts":[{"addr":"a","port":"80"}]}"#,
        r#"{"hosts":[{"addr":"a","port":80,}]}"#,
        r#"{"hosts":[{"addr":"a","port":80},]}"#,
        r#"{"hosts":[{"addr":"a","port":80}],"extra":1}"#,
        r#"{"hosts":[{"addr":"a"}]}"#,
        r#"{"hosts":[["a",80]]}"#,
        r#"[[{"addr":"a","port":80}]]"#,
        r#"{"hosts":[{"addr":"a","port":80}]} x"#,
        r#"{"hosts":[{"addr":"a","port":80}],"useTls":truex}"#,
        r#"{"hosts":[{"addr":"a","port":80x}]}"#,
        "{\"hosts\":[{\"addr\":\"a\tb\",\"port\":80}]}",
        "\u{feff}{\"hosts\":[]}",
        "{}",
        "",
    ];

    /// Every way of breaking `block` one byte at a time: cut short, a byte dropped, or
    /// a byte replaced by or prefixed with one of JSON's structural characters.
    fn variants(block: &str) -> Vec<String> {
        let mut out = vec![block.to_owned()];
        let bytes = block.as_bytes();
        for i in 0..=bytes.len() {
            if !block.is_char_boundary(i) {
                continue;
            }
            out.push(block[..i].to_owned());
            for insert in [
                "", "{", "}", "[", "]", ",", ":", "\"", "\\", " ", "0", "-", ".", "n", "x",
            ] {
                if let Some(next) = block[i..].chars().next() {
                    let rest = &block[i + next.len_utf8()..];
                    out.push(format!("{}{insert}{rest}", &block[..i]));
                }
                out.push(format!("{}{insert}{}", &block[..i], &block[i..]));
            }
        }
        out
    }

    #[test]
    fn plain_run_stops_at_the_first_special_byte() {
        let naive = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(bytes.len())
        };
        // Every special byte (and a few ordinary ones, ASCII and not) at every offset of
        // strings long enough to cross two eight-byte words, behind every filler byte.
        let probes = [
            b'"', b'\\', 0x00, 0x01, 0x1f, b'\t', b'\n', 0x20, b'!', b'#', b'[', b']', 0x7f, 0x80,
            0xc3, 0xff,
        ];
        for filler in 0u8..=255 {
            for len in 0..20 {
                let mut bytes = vec![filler; len];
                assert_eq!(plain_run(&bytes), naive(&bytes), "{bytes:?}");
                for at in 0..len {
                    for probe in probes {
                        bytes[at] = probe;
                        assert_eq!(plain_run(&bytes), naive(&bytes), "{bytes:?}");
                        bytes[at] = filler;
                    }
                }
            }
        }
    }

    #[test]
    fn accepts_only_what_serde_reads_the_same_way() {
        let mut accepted = 0;
        let mut checked = 0;
        for block in BLOCKS {
            for json in variants(block) {
                checked += 1;
                if let Some(quick) = parse(&json) {
                    accepted += 1;
                    let serde: StaticConfig = parse_config(&json)
                        .unwrap_or_else(|e| panic!("serde rejects {json:?} ({e:?})"));
                    assert_eq!(quick, serde, "{json:?}");
                }
            }
        }
        // The typical blocks and many of their variants take the quick path.
        assert!(accepted > checked / 20, "{accepted} of {checked}");
    }

    #[test]
    fn plain_blocks_take_the_quick_path() {
        for block in &BLOCKS[..6] {
            assert!(parse(block).is_some(), "{block:?}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for block in &BLOCKS[6..] {
            assert!(parse(block).is_none(), "{block:?}");
        }
    }
}
