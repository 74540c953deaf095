//! A `LogEntry` decoded in place.
//!
//! Filtering decodes every stored entry but prints few of them, so entries
//! are decoded as views whose strings borrow the frame: a rejected entry
//! costs no allocation. Only a match becomes an owned [`LogEntry`].

use std::str;

use weaver_proto::logging::SYSTEM_ATTR;
use weaver_proto::runtime::{LogAttr, LogEntry, log_attr};

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Field number of `LogEntry.attrs`.
const ATTRS: u32 = 10;

/// Field number of `LogEntry.typed_attrs`.
const TYPED_ATTRS: u32 = 11;

/// How deeply prost lets groups nest in an unknown field before it gives
/// up (its `RECURSION_LIMIT`): a field at this depth is an error.
const RECURSION_LIMIT: u32 = 100;

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
    /// Whether a string attribute's key is [`SYSTEM_ATTR`].
    pub(crate) system: bool,
    /// The frame from the first attribute, string or typed, on (attributes
    /// are read again from here on demand; other fields are skipped).
    attrs: &'a [u8],
}

/// The string attributes of an [`EntryView`], flattened: key, value, key,
/// value...
#[derive(Debug, Clone)]
pub(crate) struct Attrs<'a> {
    rest: &'a [u8],
}

/// The typed attributes of an [`EntryView`], as (key, value).
#[derive(Debug, Clone)]
pub(crate) struct TypedAttrs<'a> {
    rest: &'a [u8],
}

/// An attribute's value, borrowed from the frame or the entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum AttrRef<'a> {
    Str(&'a str),
    Int(i64),
    Uint(u64),
    Float(f64),
    Bool(bool),
    /// A typed attribute with no value set: reads as the empty string.
    None,
}

// === impl EntryView ===

impl<'a> EntryView<'a> {
    /// Decodes a `LogEntry` frame, or `None` if it is not a valid one:
    /// exactly what prost accepts (a property test holds the two to it).
    /// Refused are bad or overflowing varints, keys above `u32::MAX`, field
    /// 0, wire types 6 and 7, lengths past the end, invalid UTF-8, a known
    /// field with the wrong wire type, and an end-group without its start;
    /// unknown fields, groups included, are skipped.
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
            let (field, wire) = key(frame, &mut pos)?;
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
                            if v.attrs.is_empty() {
                                v.attrs = &frame[start..];
                            }
                            v.system |= attr_index.is_multiple_of(2) && s == SYSTEM_ATTR;
                            attr_index += 1;
                        }
                    }
                }
                (TYPED_ATTRS, LEN) => {
                    log_attr(frame, &mut pos)?;
                    if v.attrs.is_empty() {
                        v.attrs = &frame[start..];
                    }
                }
                (1..=TYPED_ATTRS, _) => return None,
                (field, wire) => skip(frame, &mut pos, field, wire, RECURSION_LIMIT)?,
            }
        }
        Some(v)
    }

    /// The string attributes, flattened.
    pub(crate) fn attrs(&self) -> Attrs<'a> {
        Attrs { rest: self.attrs }
    }

    /// The typed attributes.
    pub(crate) fn typed_attrs(&self) -> TypedAttrs<'a> {
        TypedAttrs { rest: self.attrs }
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
            typed_attrs: self
                .typed_attrs()
                .map(|(key, value)| LogAttr {
                    key: key.to_owned(),
                    value: value.to_proto(),
                })
                .collect(),
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
            let (field, wire) = key(frame, &mut pos)?;
            if (field, wire) == (ATTRS, LEN) {
                let s = string(frame, &mut pos)?;
                self.rest = &frame[pos..];
                return Some(s);
            }
            skip(frame, &mut pos, field, wire, RECURSION_LIMIT)?;
        }
        self.rest = &[];
        None
    }
}

impl<'a> Iterator for TypedAttrs<'a> {
    type Item = (&'a str, AttrRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let frame = self.rest;
        let mut pos = 0;
        while pos < frame.len() {
            let (field, wire) = key(frame, &mut pos)?;
            if (field, wire) == (TYPED_ATTRS, LEN) {
                let attr = log_attr(frame, &mut pos)?;
                self.rest = &frame[pos..];
                return Some(attr);
            }
            skip(frame, &mut pos, field, wire, RECURSION_LIMIT)?;
        }
        self.rest = &[];
        None
    }
}

// === impl AttrRef ===

impl<'a> AttrRef<'a> {
    /// The value of a typed attribute of an owned entry.
    pub(crate) fn of(a: &'a LogAttr) -> Self {
        match &a.value {
            Some(log_attr::Value::Str(s)) => AttrRef::Str(s),
            Some(log_attr::Value::Int(i)) => AttrRef::Int(*i),
            Some(log_attr::Value::Uint(u)) => AttrRef::Uint(*u),
            Some(log_attr::Value::Float(f)) => AttrRef::Float(*f),
            Some(log_attr::Value::Bool(b)) => AttrRef::Bool(*b),
            None => AttrRef::None,
        }
    }

    fn to_proto(self) -> Option<log_attr::Value> {
        Some(match self {
            AttrRef::Str(s) => log_attr::Value::Str(s.to_owned()),
            AttrRef::Int(i) => log_attr::Value::Int(i),
            AttrRef::Uint(u) => log_attr::Value::Uint(u),
            AttrRef::Float(f) => log_attr::Value::Float(f),
            AttrRef::Bool(b) => log_attr::Value::Bool(b),
            AttrRef::None => return None,
        })
    }
}

// === decoding ===

/// A length-delimited `LogAttr`, read as prost reads it (its unknown fields
/// are one level of recursion down).
fn log_attr<'a>(buf: &'a [u8], pos: &mut usize) -> Option<(&'a str, AttrRef<'a>)> {
    let body = bytes(buf, pos)?;
    let (mut name, mut value) = ("", AttrRef::None);
    let mut p = 0;
    while p < body.len() {
        let (field, wire) = key(body, &mut p)?;
        match (field, wire) {
            (1, LEN) => name = string(body, &mut p)?,
            (2, LEN) => value = AttrRef::Str(string(body, &mut p)?),
            (3, VARINT) => value = AttrRef::Int(varint(body, &mut p)? as i64),
            (4, VARINT) => value = AttrRef::Uint(varint(body, &mut p)?),
            (5, FIXED64) => value = AttrRef::Float(f64::from_le_bytes(fixed::<8>(body, &mut p)?)),
            (6, VARINT) => value = AttrRef::Bool(varint(body, &mut p)? != 0),
            (1..=6, _) => return None,
            (field, wire) => skip(body, &mut p, field, wire, RECURSION_LIMIT - 1)?,
        }
    }
    Some((name, value))
}

/// A varint of at most 10 bytes whose value fits in 64 bits, as prost
/// reads it.
fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            // The 10th byte holds bit 63 only.
            return (i < 9 || b < 2).then_some(value);
        }
    }
    None
}

/// A field key as prost reads it: (field number, wire type).
fn key(buf: &[u8], pos: &mut usize) -> Option<(u32, u8)> {
    let key = u32::try_from(varint(buf, pos)?).ok()?;
    let wire = (key & 7) as u8;
    let field = key >> 3;
    (wire <= FIXED32 && field >= 1).then_some((field, wire))
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

/// Skips the value of an unknown field, as prost's `skip_field` does with
/// `budget` levels of recursion left.
fn skip(buf: &[u8], pos: &mut usize, field: u32, wire: u8, budget: u32) -> Option<()> {
    if budget == 0 {
        return None;
    }
    match wire {
        VARINT => varint(buf, pos).map(drop),
        FIXED64 => fixed::<8>(buf, pos).map(drop),
        LEN => bytes(buf, pos).map(drop),
        FIXED32 => fixed::<4>(buf, pos).map(drop),
        START_GROUP => loop {
            let (inner, inner_wire) = key(buf, pos)?;
            if inner_wire == END_GROUP {
                return (inner == field).then_some(());
            }
            skip(buf, pos, inner, inner_wire, budget - 1)?;
        },
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
            typed_attrs: vec![
                LogAttr {
                    key: "n".into(),
                    value: Some(log_attr::Value::Int(-3)),
                },
                LogAttr {
                    key: "f".into(),
                    value: Some(log_attr::Value::Float(0.25)),
                },
                LogAttr {
                    key: "none".into(),
                    value: None,
                },
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

    /// What each decoder makes of `bytes`, re-encoded (so that a NaN
    /// compares equal to itself): `None` for a refusal.
    fn both(bytes: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let ours = EntryView::decode(bytes).map(|v| v.to_entry().encode_to_vec());
        let prost = LogEntry::decode(bytes).ok().map(|e| e.encode_to_vec());
        (ours, prost)
    }

    /// A field key's varint bytes.
    fn key_bytes(field: u64, wire: u64) -> Vec<u8> {
        let mut out = Vec::new();
        prost::encoding::encode_varint(field << 3 | wire, &mut out);
        out
    }

    #[test]
    fn agrees_with_prost_on_keys_varints_and_groups() {
        let mut cases: Vec<Vec<u8>> = vec![
            // A key above u32::MAX (an unknown varint field otherwise).
            [key_bytes(1 << 29, 0), vec![1]].concat(),
            [key_bytes(u64::MAX >> 3, 0), vec![1]].concat(),
            // A 10-byte varint that overflows 64 bits, and one that fits.
            [vec![8 << 3], vec![0xff; 9], vec![0x02]].concat(),
            [vec![8 << 3], vec![0xff; 9], vec![0x01]].concat(),
            [vec![15 << 3], vec![0x80; 9], vec![0x7f]].concat(),
            // Wire types 6 and 7.
            key_bytes(15, 6),
            key_bytes(15, 7),
            // Unknown groups: empty, with fields, nested, unterminated,
            // closed by another field's end, an end without a start.
            [key_bytes(15, 3), key_bytes(15, 4)].concat(),
            [key_bytes(15, 3), key_bytes(1, 0), vec![5], key_bytes(15, 4)].concat(),
            [
                key_bytes(15, 3),
                key_bytes(16, 3),
                key_bytes(16, 4),
                key_bytes(15, 4),
            ]
            .concat(),
            key_bytes(15, 3),
            [key_bytes(15, 3), key_bytes(16, 4)].concat(),
            key_bytes(15, 4),
            // Known fields as groups.
            [key_bytes(9, 3), key_bytes(9, 4)].concat(),
            key_bytes(10, 4),
        ];
        // Groups nested to prost's recursion limit, and one deeper.
        for depth in [99, 100, 101] {
            let mut b = Vec::new();
            for _ in 0..depth {
                b.extend(key_bytes(15, 3));
            }
            for _ in 0..depth {
                b.extend(key_bytes(15, 4));
            }
            cases.push(b);
        }
        for depth in [98, 99, 100] {
            let mut b = Vec::new();
            for _ in 0..depth {
                b.extend(key_bytes(15, 3));
            }
            b.extend([key_bytes(16, 0), vec![1]].concat());
            for _ in 0..depth {
                b.extend(key_bytes(15, 4));
            }
            cases.push(b);
        }
        let good = sample().encode_to_vec();
        for case in &mut cases {
            let mut with_entry = good.clone();
            with_entry.extend_from_slice(case);
            let (ours, prost) = both(&with_entry);
            assert_eq!(ours, prost, "{case:?}");
            let (ours, prost) = both(case);
            assert_eq!(ours, prost, "{case:?}");
        }
        // The attributes are still read past a skipped group.
        let mut bytes = [
            key_bytes(15, 3),
            key_bytes(16, 0),
            vec![1],
            key_bytes(15, 4),
        ]
        .concat();
        bytes.extend(good);
        let v = EntryView::decode(&bytes).expect("valid frame");
        assert_eq!(v.attrs().count(), 6);
    }

    mod differential {
        use proptest::prelude::*;

        use super::*;

        fn entry() -> impl Strategy<Value = LogEntry> {
            (
                ".{0,8}",
                any::<i64>(),
                any::<i32>(),
                prop::collection::vec(".{0,4}", 0..6),
                prop::collection::vec(typed_attr(), 0..4),
            )
                .prop_map(|(s, time_micros, line, attrs, typed_attrs)| LogEntry {
                    app: s.clone(),
                    version: "v".into(),
                    component: s,
                    node: "n".into(),
                    time_micros,
                    level: "info".into(),
                    file: "f.rs".into(),
                    line,
                    msg: "m".into(),
                    attrs,
                    typed_attrs,
                })
        }

        fn typed_attr() -> impl Strategy<Value = LogAttr> {
            use log_attr::Value;
            let value = prop_oneof![
                Just(None),
                ".{0,4}".prop_map(|s| Some(Value::Str(s))),
                any::<i64>().prop_map(|i| Some(Value::Int(i))),
                any::<u64>().prop_map(|u| Some(Value::Uint(u))),
                // Not NaN, which is not equal to itself.
                (-1e9f64..1e9).prop_map(|f| Some(Value::Float(f))),
                any::<bool>().prop_map(|b| Some(Value::Bool(b))),
            ];
            (".{0,4}", value).prop_map(|(key, value)| LogAttr { key, value })
        }

        /// A byte string made of pieces that are each likely to mean
        /// something to a decoder.
        fn pieces() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                (0u64..20, 0u64..8).prop_map(|(f, w)| key_bytes(f, w)),
                (any::<u64>(), 0u64..8).prop_map(|(f, w)| key_bytes(f >> 3, w)),
                any::<u64>().prop_map(|v| {
                    let mut out = Vec::new();
                    prost::encoding::encode_varint(v, &mut out);
                    out
                }),
                prop::collection::vec(any::<u8>(), 0..6),
                Just(vec![0xff; 9]),
            ];
            prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
        }

        fn mutate(mut bytes: Vec<u8>, edits: Vec<(usize, u8, u8)>) -> Vec<u8> {
            for (at, kind, byte) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let at = at % bytes.len();
                match kind % 4 {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    2 => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            bytes
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            #[test]
            fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
                let (ours, prost) = both(&bytes);
                prop_assert_eq!(ours, prost);
            }

            #[test]
            fn random_pieces(bytes in pieces()) {
                let (ours, prost) = both(&bytes);
                prop_assert_eq!(ours, prost);
            }

            #[test]
            fn mutated_entries(
                e in entry(),
                extra in pieces(),
                edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4),
            ) {
                let mut bytes = e.encode_to_vec();
                bytes.extend(extra);
                let bytes = mutate(bytes, edits);
                let (ours, prost) = both(&bytes);
                prop_assert_eq!(ours, prost);
            }
        }
    }
}
