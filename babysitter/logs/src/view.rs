//! A `LogEntry` decoded in place.
//!
//! Filtering decodes every stored entry but prints few of them, so entries
//! are decoded as views whose strings borrow the frame: a rejected entry
//! costs no allocation. Only a match becomes an owned [`LogEntry`].

use std::str;

use weaver_proto::logging::SYSTEM_ATTR;
use weaver_proto::runtime::LogEntry;

/// Protobuf wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// Field number of `LogEntry.attrs`.
const ATTRS: u64 = 10;

/// A `LogEntry` whose strings borrow the frame it was decoded from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryView<'a> {
    pub(crate) app: &'a str,
    pub(crate) version: &'a str,
    pub(crate) component: &'a str,
    pub(crate) node: &'a str,
    pub(crate) time_micros: i64,
    pub(crate) level: &'a str,
    pub(crate) file: &'a str,
    pub(crate) line: i32,
    pub(crate) msg: &'a str,
    /// Whether an attribute key is [`SYSTEM_ATTR`].
    pub(crate) system: bool,
    /// The frame from the first attribute on (attributes are read again from
    /// here on demand; other fields in between are skipped).
    attrs: &'a [u8],
}

/// The attributes of an [`EntryView`], flattened: key, value, key, value...
#[derive(Debug, Clone)]
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

// === impl EntryView ===

impl<'a> EntryView<'a> {
    /// Decodes a `LogEntry` frame, or `None` if it is not a valid one (as
    /// prost would refuse it: bad varints, lengths past the end, invalid
    /// UTF-8, a known field with the wrong wire type, groups).
    pub(crate) fn decode(frame: &'a [u8]) -> Option<Self> {
        let mut v = EntryView {
            app: "",
            version: "",
            component: "",
            node: "",
            time_micros: 0,
            level: "",
            file: "",
            line: 0,
            msg: "",
            system: false,
            attrs: &[],
        };
        let mut pos = 0;
        let mut attr_index = 0usize;
        while pos < frame.len() {
            let start = pos;
            let key = varint(frame, &mut pos)?;
            let (field, wire) = (key >> 3, key & 7);
            match (field, wire) {
                (5, FIXED64) => v.time_micros = i64::from_le_bytes(fixed::<8>(frame, &mut pos)?),
                (8, VARINT) => v.line = varint(frame, &mut pos)? as i32,
                (1..=4 | 6 | 7 | 9 | ATTRS, LEN) => {
                    let s = string(frame, &mut pos)?;
                    match field {
                        1 => v.app = s,
                        2 => v.version = s,
                        3 => v.component = s,
                        4 => v.node = s,
                        6 => v.level = s,
                        7 => v.file = s,
                        9 => v.msg = s,
                        _ => {
                            if attr_index == 0 {
                                v.attrs = &frame[start..];
                            }
                            v.system |= attr_index.is_multiple_of(2) && s == SYSTEM_ATTR;
                            attr_index += 1;
                        }
                    }
                }
                (0..=10, _) => return None,
                (_, wire) => skip(frame, &mut pos, wire)?,
            }
        }
        Some(v)
    }

    /// The attributes, flattened.
    pub(crate) fn attrs(&self) -> Attrs<'a> {
        Attrs { rest: self.attrs }
    }

    /// An owned copy.
    pub(crate) fn to_entry(self) -> LogEntry {
        LogEntry {
            app: self.app.to_owned(),
            version: self.version.to_owned(),
            component: self.component.to_owned(),
            node: self.node.to_owned(),
            time_micros: self.time_micros,
            level: self.level.to_owned(),
            file: self.file.to_owned(),
            line: self.line,
            msg: self.msg.to_owned(),
            attrs: self.attrs().map(str::to_owned).collect(),
        }
    }
}

// === impl Attrs ===

impl<'a> Iterator for Attrs<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let frame = self.rest;
        let mut pos = 0;
        while pos < frame.len() {
            let key = varint(frame, &mut pos)?;
            let (field, wire) = (key >> 3, key & 7);
            if (field, wire) == (ATTRS, LEN) {
                let s = string(frame, &mut pos)?;
                self.rest = &frame[pos..];
                return Some(s);
            }
            skip(frame, &mut pos, wire)?;
        }
        self.rest = &[];
        None
    }
}

// === decoding ===

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(value);
        }
    }
    None
}

fn fixed<const N: usize>(buf: &[u8], pos: &mut usize) -> Option<[u8; N]> {
    let bytes = buf.get(*pos..pos.checked_add(N)?)?;
    *pos += N;
    bytes.try_into().ok()
}

fn bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(buf, pos)?).ok()?;
    let bytes = buf.get(*pos..pos.checked_add(len)?)?;
    *pos += len;
    Some(bytes)
}

fn string<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    str::from_utf8(bytes(buf, pos)?).ok()
}

fn skip(buf: &[u8], pos: &mut usize, wire: u64) -> Option<()> {
    match wire {
        VARINT => varint(buf, pos).map(drop),
        FIXED64 => fixed::<8>(buf, pos).map(drop),
        LEN => bytes(buf, pos).map(drop),
        FIXED32 => fixed::<4>(buf, pos).map(drop),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn sample() -> LogEntry {
        LogEntry {
            app: "hello".into(),
            version: "v-1".into(),
            component: "hello::Reverser".into(),
            node: "n-1".into(),
            time_micros: -42,
            level: "info".into(),
            file: "src/main.rs".into(),
            line: -1,
            msg: "héllo".into(),
            attrs: vec![
                "a".into(),
                "1".into(),
                SYSTEM_ATTR.into(),
                String::new(),
                "a".into(),
                "2".into(),
            ],
        }
    }

    #[test]
    fn decodes_what_prost_encodes() {
        for e in [sample(), LogEntry::default()] {
            let bytes = e.encode_to_vec();
            let v = EntryView::decode(&bytes).expect("valid frame");
            assert_eq!(v.to_entry(), e);
        }
        let bytes = sample().encode_to_vec();
        let v = EntryView::decode(&bytes).expect("valid frame");
        assert!(v.system);
        let attrs: Vec<&str> = v.attrs().collect();
        assert_eq!(attrs, ["a", "1", SYSTEM_ATTR, "", "a", "2"]);
    }

    #[test]
    fn system_must_be_a_key() {
        let mut e = sample();
        e.attrs = vec!["k".into(), SYSTEM_ATTR.into()];
        let bytes = e.encode_to_vec();
        assert!(!EntryView::decode(&bytes).expect("valid frame").system);
    }

    #[test]
    fn skips_unknown_fields_and_takes_the_last_scalar() {
        let mut bytes = sample().encode_to_vec();
        // Field 15, varint 7; field 16 (a two-byte key), fixed32; field 1 again.
        bytes.extend_from_slice(&[15 << 3, 7, 0x85, 0x01, 1, 2, 3, 4]);
        bytes.extend_from_slice(&[1 << 3 | 2, 1, b'x']);
        let v = EntryView::decode(&bytes).expect("valid frame");
        let want = LogEntry::decode(bytes.as_slice()).expect("prost agrees");
        assert_eq!(v.to_entry(), want);
        assert_eq!(v.app, "x");
    }

    #[test]
    fn refuses_what_prost_refuses() {
        let good = sample().encode_to_vec();
        let mut cases: Vec<Vec<u8>> = vec![
            good[..good.len() - 1].to_vec(),    // truncated
            vec![1 << 3 | 2, 2, 0xff, 0xfe],    // invalid UTF-8
            vec![5 << 3, 1],                    // time as a varint
            vec![1 << 3 | 3],                   // group
            vec![0x80; 11],                     // runaway varint
            vec![1 << 3 | 2, 0xff, 0xff, 0x7f], // length past the end
        ];
        cases.push(vec![0]); // field 0
        for bytes in cases {
            assert!(EntryView::decode(&bytes).is_none(), "{bytes:?}");
            assert!(LogEntry::decode(bytes.as_slice()).is_err(), "{bytes:?}");
        }
    }
}
