//! Profiles in the pprof format: the messages of google/pprof's
//! `profile.proto` (written out here, so no second `.proto` file needs
//! compiling), gzip encoding, scaling and merging.
//!
//! A weavelet encodes its CPU profile with [`encode`]; the babysitter
//! [`decode`]s one per group, [`scale`]s each by its group's replica count
//! and [`merge`]s them into the profile `weaver multi profile` writes. The
//! files are what `go tool pprof`, `pprof -http` and speedscope read.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};

use std::time::Duration;

use prost::Message;

use crate::runtime::{GetProfileRequest, ProfileType};

/// The HTTP path a status server (and a single process's endpoint) serves
/// profiles at: `GET /debug/weaver/profile?seconds=N&type=cpu`.
pub const PROFILE_PATH: &str = "/debug/weaver/profile";

/// The response header that carries the errors of a partial profile: the
/// groups that could not be profiled, joined by `; `. The body is still
/// the profile of the others.
pub const PARTIAL_HEADER: &str = "x-weaver-profile-errors";

/// The largest decoded profile accepted, so a corrupt gzip stream cannot
/// exhaust memory.
const MAX_DECODED: u64 = 256 << 20;

/// A pprof profile (`perftools.profiles.Profile`).
#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    /// What each value of a sample measures.
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    /// The samples.
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// The binaries and libraries the locations are in.
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    /// The locations samples point at.
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    /// The functions locations point at.
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Every string the profile uses; entry 0 is always "".
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// Regex of frames to drop (string table index).
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    /// Regex of frames to keep (string table index).
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    /// When the profile started, nanoseconds since the Unix epoch.
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    /// How long the profile covers, nanoseconds.
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    /// What the sampling period measures.
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    /// The sampling period, in `period_type` units.
    #[prost(int64, tag = "12")]
    pub period: i64,
    /// Free-form comments (string table indices).
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    /// The sample type shown by default (string table index).
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// A kind of value and its unit (string table indices).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Message)]
pub struct ValueType {
    /// E.g. "samples", "cpu".
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// E.g. "count", "nanoseconds".
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// One stack and its values.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// The stack, leaf first (location ids).
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One value per sample type.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    /// Labels, e.g. the thread.
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// A sample's label.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    /// The key (string table index).
    #[prost(int64, tag = "1")]
    pub key: i64,
    /// A string value (string table index), or 0.
    #[prost(int64, tag = "2")]
    pub str: i64,
    /// A numeric value.
    #[prost(int64, tag = "3")]
    pub num: i64,
    /// The numeric value's unit (string table index).
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

/// A binary or library mapped into memory.
#[derive(Clone, PartialEq, Message)]
pub struct Mapping {
    /// Unique id, not 0.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Where it starts.
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    /// Where it ends.
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    /// Offset in the file.
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    /// The file (string table index).
    #[prost(int64, tag = "5")]
    pub filename: i64,
    /// The build id (string table index).
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    /// Whether functions were symbolized.
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    /// Whether file names were symbolized.
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    /// Whether line numbers were symbolized.
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    /// Whether inlined frames were symbolized.
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// A code location: one or more lines (inlined calls first).
#[derive(Clone, PartialEq, Message)]
pub struct Location {
    /// Unique id, not 0.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Its mapping, or 0.
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    /// The instruction address, or 0.
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// The lines.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    /// Whether several functions were folded here.
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

/// A line of a function.
#[derive(Clone, PartialEq, Eq, Hash, Message)]
pub struct Line {
    /// The function's id.
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    /// The line number, or 0.
    #[prost(int64, tag = "2")]
    pub line: i64,
    /// The column, or 0.
    #[prost(int64, tag = "3")]
    pub column: i64,
}

/// A function.
#[derive(Clone, PartialEq, Message)]
pub struct Function {
    /// Unique id, not 0.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Its (demangled) name (string table index).
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// Its symbol name (string table index).
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    /// Its source file (string table index).
    #[prost(int64, tag = "4")]
    pub filename: i64,
    /// Its first line, or 0.
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

/// An error decoding or merging profiles.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The data is not gzip, or is truncated.
    #[error("the profile is not valid gzip")]
    Gzip(#[source] std::io::Error),
    /// The data decompresses to more than a profile can be.
    #[error("the profile decompresses to more than {MAX_DECODED} bytes")]
    TooLarge,
    /// The decompressed data is not a pprof profile.
    #[error("the profile is not a valid pprof protobuf")]
    Decode(#[source] prost::DecodeError),
    /// A profile refers to a string, function or location it lacks.
    #[error("the profile refers to a missing {what} {index}")]
    Dangling {
        /// "string", "function" or "location".
        what: &'static str,
        /// The missing index or id.
        index: i64,
    },
    /// The profiles measure different things and cannot be merged.
    #[error("cannot merge profiles of different sample types")]
    Incompatible,
}

/// A profile request that cannot be served, whoever checks it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// A CPU profile of no time at all.
    #[error("invalid zero duration for the CPU profile collection")]
    ZeroDuration,
    /// Heap profiles need an allocator that samples; none is linked.
    #[error(
        "heap profiles are not supported: Rust's allocator keeps no allocation samples, so only CPU profiles (--type cpu) can be collected"
    )]
    Heap,
    /// Neither CPU nor heap.
    #[error("unspecified profile collection type")]
    Unspecified,
    /// A query parameter that does not parse.
    #[error("invalid profile query parameter {0:?}")]
    Query(String),
}

/// Checks that `req` asks for something a weavelet can collect.
///
/// # Errors
///
/// [`RequestError::ZeroDuration`], [`RequestError::Heap`] or
/// [`RequestError::Unspecified`].
pub fn validate(req: &GetProfileRequest) -> Result<Duration, RequestError> {
    match ProfileType::try_from(req.profile_type) {
        Ok(ProfileType::Cpu) => {}
        Ok(ProfileType::Heap) => return Err(RequestError::Heap),
        _ => return Err(RequestError::Unspecified),
    }
    match u64::try_from(req.cpu_duration_ns) {
        Ok(ns) if ns > 0 => Ok(Duration::from_nanos(ns)),
        _ => Err(RequestError::ZeroDuration),
    }
}

/// The query string of [`PROFILE_PATH`] that asks for `req`:
/// `seconds=<decimal>&type=cpu|heap`.
pub fn to_query(req: &GetProfileRequest) -> String {
    let kind = match ProfileType::try_from(req.profile_type) {
        Ok(ProfileType::Heap) => "heap",
        Ok(ProfileType::Cpu) => "cpu",
        _ => "unspecified",
    };
    let seconds = req.cpu_duration_ns as f64 / 1e9;
    format!("seconds={seconds}&type={kind}")
}

/// The request a [`PROFILE_PATH`] query asks for: `seconds` defaults to
/// 30 and `type` to `cpu`; other parameters are ignored. It is not
/// [`validate`]d.
///
/// # Errors
///
/// [`RequestError::Query`] naming a parameter that does not parse.
pub fn from_query(query: Option<&str>) -> Result<GetProfileRequest, RequestError> {
    let mut req = GetProfileRequest {
        profile_type: ProfileType::Cpu as i32,
        cpu_duration_ns: 30_000_000_000,
    };
    for kv in query.unwrap_or_default().split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "seconds" => {
                let secs = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
                    .ok_or_else(|| RequestError::Query(kv.to_owned()))?;
                req.cpu_duration_ns = (secs * 1e9).round() as i64;
            }
            "type" => {
                req.profile_type = match v {
                    "cpu" => ProfileType::Cpu,
                    "heap" => ProfileType::Heap,
                    _ => return Err(RequestError::Query(kv.to_owned())),
                } as i32;
            }
            _ => {}
        }
    }
    Ok(req)
}

/// `profile` as gzipped protobuf, the `.pb.gz` that pprof reads.
pub fn encode(profile: &Profile) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(&profile.encode_to_vec());
    gz.finish().unwrap_or_default()
}

/// Decodes a gzipped (or, as pprof also accepts, plain) pprof profile.
///
/// # Errors
///
/// [`ProfileError::Gzip`], [`ProfileError::TooLarge`] or
/// [`ProfileError::Decode`].
pub fn decode(data: &[u8]) -> Result<Profile, ProfileError> {
    if !data.starts_with(&[0x1f, 0x8b]) {
        return Profile::decode(data).map_err(ProfileError::Decode);
    }
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(MAX_DECODED + 1)
        .read_to_end(&mut raw)
        .map_err(ProfileError::Gzip)?;
    if raw.len() as u64 > MAX_DECODED {
        return Err(ProfileError::TooLarge);
    }
    Profile::decode(raw.as_slice()).map_err(ProfileError::Decode)
}

/// Multiplies every sample value by `factor`, as Go's `Profile.Scale` does
/// for a group profiled on one replica of `factor`.
pub fn scale(profile: &mut Profile, factor: i64) {
    for s in &mut profile.sample {
        for v in &mut s.value {
            *v = v.saturating_mul(factor);
        }
    }
}

/// Merges `profiles` into one: strings, functions, locations and mappings
/// are re-indexed into shared tables (equal ones are shared), samples are
/// concatenated. The time is the earliest start, the duration the longest.
///
/// # Errors
///
/// [`ProfileError::Incompatible`] if the profiles' sample types differ,
/// [`ProfileError::Dangling`] if one refers to an entry it lacks.
pub fn merge(profiles: Vec<Profile>) -> Result<Profile, ProfileError> {
    let mut merger = Merger::default();
    let mut kinds: Option<Vec<(String, String)>> = None;
    for p in &profiles {
        let these = p
            .sample_type
            .iter()
            .map(|t| {
                Ok((
                    string(p, t.r#type)?.to_owned(),
                    string(p, t.unit)?.to_owned(),
                ))
            })
            .collect::<Result<Vec<_>, ProfileError>>()?;
        match &kinds {
            Some(k) if *k != these => return Err(ProfileError::Incompatible),
            Some(_) => {}
            None => kinds = Some(these),
        }
        merger.add(p)?;
    }
    Ok(merger.out)
}

fn string(p: &Profile, index: i64) -> Result<&str, ProfileError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| p.string_table.get(i))
        .map(String::as_str)
        .ok_or(ProfileError::Dangling {
            what: "string",
            index,
        })
}

/// The merged profile, and how to find what it already holds.
#[derive(Default)]
struct Merger {
    out: Profile,
    strings: HashMap<String, i64>,
    /// (name, system name, file, start line) → id.
    functions: HashMap<(i64, i64, i64, i64), u64>,
    /// (mapping, address, lines) → id.
    locations: HashMap<(u64, u64, Vec<Line>), u64>,
    /// (start, limit, offset, file, build id) → id.
    mappings: HashMap<(u64, u64, u64, i64, i64), u64>,
    started: bool,
}

impl Merger {
    fn add(&mut self, p: &Profile) -> Result<(), ProfileError> {
        if self.out.string_table.is_empty() {
            self.intern("");
        }
        let str_of = |m: &mut Merger, i: i64| -> Result<i64, ProfileError> {
            let s = string(p, i)?;
            Ok(m.intern(s))
        };
        if !self.started {
            self.started = true;
            self.out.sample_type = p
                .sample_type
                .iter()
                .map(|t| {
                    Ok(ValueType {
                        r#type: str_of(self, t.r#type)?,
                        unit: str_of(self, t.unit)?,
                    })
                })
                .collect::<Result<_, ProfileError>>()?;
            if let Some(t) = p.period_type {
                self.out.period_type = Some(ValueType {
                    r#type: str_of(self, t.r#type)?,
                    unit: str_of(self, t.unit)?,
                });
            }
            self.out.period = p.period;
            self.out.time_nanos = p.time_nanos;
            self.out.default_sample_type = str_of(self, p.default_sample_type)?;
        }
        if p.time_nanos != 0 && (self.out.time_nanos == 0 || p.time_nanos < self.out.time_nanos) {
            self.out.time_nanos = p.time_nanos;
        }
        self.out.duration_nanos = self.out.duration_nanos.max(p.duration_nanos);
        for c in &p.comment {
            let c = str_of(self, *c)?;
            self.out.comment.push(c);
        }
        let mappings = self.add_mappings(p)?;
        let functions = self.add_functions(p)?;
        let locations = self.add_locations(p, &mappings, &functions)?;
        for s in &p.sample {
            let location_id = s
                .location_id
                .iter()
                .map(|id| {
                    locations.get(id).copied().ok_or(ProfileError::Dangling {
                        what: "location",
                        index: *id as i64,
                    })
                })
                .collect::<Result<_, _>>()?;
            let label = s
                .label
                .iter()
                .map(|l| {
                    Ok(Label {
                        key: str_of(self, l.key)?,
                        str: str_of(self, l.str)?,
                        num: l.num,
                        num_unit: str_of(self, l.num_unit)?,
                    })
                })
                .collect::<Result<_, ProfileError>>()?;
            self.out.sample.push(Sample {
                location_id,
                value: s.value.clone(),
                label,
            });
        }
        Ok(())
    }

    fn intern(&mut self, s: &str) -> i64 {
        if let Some(i) = self.strings.get(s) {
            return *i;
        }
        let i = self.out.string_table.len() as i64;
        self.out.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    /// Adds `p`'s mappings; returns its ids → merged ids.
    fn add_mappings(&mut self, p: &Profile) -> Result<HashMap<u64, u64>, ProfileError> {
        let mut ids = HashMap::new();
        for m in &p.mapping {
            let filename = self.intern(string(p, m.filename)?);
            let build_id = self.intern(string(p, m.build_id)?);
            let key = (
                m.memory_start,
                m.memory_limit,
                m.file_offset,
                filename,
                build_id,
            );
            let next = self.out.mapping.len() as u64 + 1;
            let id = *self.mappings.entry(key).or_insert(next);
            if id == next {
                self.out.mapping.push(Mapping {
                    id,
                    filename,
                    build_id,
                    ..m.clone()
                });
            }
            ids.insert(m.id, id);
        }
        Ok(ids)
    }

    /// Adds `p`'s functions; returns its ids → merged ids.
    fn add_functions(&mut self, p: &Profile) -> Result<HashMap<u64, u64>, ProfileError> {
        let mut ids = HashMap::new();
        for f in &p.function {
            let name = self.intern(string(p, f.name)?);
            let system_name = self.intern(string(p, f.system_name)?);
            let filename = self.intern(string(p, f.filename)?);
            let key = (name, system_name, filename, f.start_line);
            let next = self.out.function.len() as u64 + 1;
            let id = *self.functions.entry(key).or_insert(next);
            if id == next {
                self.out.function.push(Function {
                    id,
                    name,
                    system_name,
                    filename,
                    start_line: f.start_line,
                });
            }
            ids.insert(f.id, id);
        }
        Ok(ids)
    }

    /// Adds `p`'s locations; returns its ids → merged ids.
    fn add_locations(
        &mut self,
        p: &Profile,
        mappings: &HashMap<u64, u64>,
        functions: &HashMap<u64, u64>,
    ) -> Result<HashMap<u64, u64>, ProfileError> {
        let mut ids = HashMap::new();
        for l in &p.location {
            let mapping_id = match l.mapping_id {
                0 => 0,
                m => *mappings.get(&m).ok_or(ProfileError::Dangling {
                    what: "mapping",
                    index: m as i64,
                })?,
            };
            let line = l
                .line
                .iter()
                .map(|line| {
                    let function_id =
                        *functions
                            .get(&line.function_id)
                            .ok_or(ProfileError::Dangling {
                                what: "function",
                                index: line.function_id as i64,
                            })?;
                    Ok(Line {
                        function_id,
                        ..line.clone()
                    })
                })
                .collect::<Result<Vec<_>, ProfileError>>()?;
            let key = (mapping_id, l.address, line.clone());
            let next = self.out.location.len() as u64 + 1;
            let id = *self.locations.entry(key).or_insert(next);
            if id == next {
                self.out.location.push(Location {
                    id,
                    mapping_id,
                    address: l.address,
                    line,
                    is_folded: l.is_folded,
                });
            }
            ids.insert(l.id, id);
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile with one function `name` and `samples` samples of it.
    fn one(name: &str, samples: i64, extra_strings: &[&str]) -> Profile {
        let mut strings = vec![String::new()];
        strings.extend(extra_strings.iter().map(|s| (*s).to_owned()));
        let at = |strings: &mut Vec<String>, s: &str| {
            strings.push(s.to_owned());
            strings.len() as i64 - 1
        };
        let samples_s = at(&mut strings, "samples");
        let count = at(&mut strings, "count");
        let fname = at(&mut strings, name);
        let file = at(&mut strings, "src/main.rs");
        let thread = at(&mut strings, "thread");
        let worker = at(&mut strings, "worker");
        Profile {
            sample_type: vec![ValueType {
                r#type: samples_s,
                unit: count,
            }],
            sample: vec![Sample {
                location_id: vec![7],
                value: vec![samples],
                label: vec![Label {
                    key: thread,
                    str: worker,
                    ..Default::default()
                }],
            }],
            location: vec![Location {
                id: 7,
                line: vec![Line {
                    function_id: 3,
                    line: 10,
                    column: 0,
                }],
                ..Default::default()
            }],
            function: vec![Function {
                id: 3,
                name: fname,
                system_name: fname,
                filename: file,
                start_line: 0,
            }],
            string_table: strings,
            period: 10_000_000,
            duration_nanos: 1_000_000_000,
            ..Default::default()
        }
    }

    fn function_names(p: &Profile) -> Vec<&str> {
        p.function
            .iter()
            .map(|f| p.string_table[f.name as usize].as_str())
            .collect()
    }

    #[test]
    fn queries_round_trip_and_requests_are_checked() {
        let req = GetProfileRequest {
            profile_type: ProfileType::Cpu as i32,
            cpu_duration_ns: 1_500_000_000,
        };
        assert_eq!(to_query(&req), "seconds=1.5&type=cpu");
        assert_eq!(from_query(Some(&to_query(&req))).unwrap(), req);
        assert_eq!(validate(&req), Ok(Duration::from_millis(1500)));
        let default = from_query(None).unwrap();
        assert_eq!(validate(&default), Ok(Duration::from_secs(30)));
        let zero = from_query(Some("seconds=0")).unwrap();
        assert_eq!(validate(&zero), Err(RequestError::ZeroDuration));
        assert_eq!(
            zero_text(),
            "invalid zero duration for the CPU profile collection"
        );
        let heap = from_query(Some("type=heap&seconds=1")).unwrap();
        assert_eq!(validate(&heap), Err(RequestError::Heap));
        assert_eq!(
            validate(&GetProfileRequest::default()),
            Err(RequestError::Unspecified)
        );
        for bad in ["seconds=x", "seconds=-1", "type=wall"] {
            assert_eq!(
                from_query(Some(bad)),
                Err(RequestError::Query(bad.to_owned()))
            );
        }
    }

    fn zero_text() -> String {
        RequestError::ZeroDuration.to_string()
    }

    #[test]
    fn encode_then_decode_round_trips_through_gzip() {
        let p = one("app::spin", 5, &[]);
        let bytes = encode(&p);
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
        assert_eq!(decode(&bytes).unwrap(), p);
        assert_eq!(decode(&p.encode_to_vec()).unwrap(), p, "plain protobuf");
        assert!(matches!(decode(&bytes[..10]), Err(ProfileError::Gzip(_))));
    }

    #[test]
    fn merge_reindexes_strings_and_concatenates_scaled_samples() {
        let a = one("app::spin", 5, &[]);
        // Other string indices, and a function of the same name.
        let mut b = one("app::spin", 2, &["x", "y", "z"]);
        scale(&mut b, 3);
        let c = one("app::other", 1, &["q"]);
        let merged = decode(&encode(&merge(vec![a, b, c]).unwrap())).unwrap();

        let values: Vec<i64> = merged.sample.iter().map(|s| s.value[0]).collect();
        assert_eq!(values, [5, 6, 1]);
        assert_eq!(merged.string_table[0], "");
        assert_eq!(function_names(&merged), ["app::spin", "app::other"]);
        // Every sample points at a location whose function is the one it
        // had, through the new ids.
        let leaf = |s: &Sample| {
            let loc = merged
                .location
                .iter()
                .find(|l| l.id == s.location_id[0])
                .unwrap();
            let f = merged
                .function
                .iter()
                .find(|f| f.id == loc.line[0].function_id)
                .unwrap();
            merged.string_table[f.name as usize].clone()
        };
        let leaves: Vec<String> = merged.sample.iter().map(leaf).collect();
        assert_eq!(leaves, ["app::spin", "app::spin", "app::other"]);
        let st = &merged.sample_type[0];
        assert_eq!(merged.string_table[st.r#type as usize], "samples");
        assert_eq!(merged.string_table[st.unit as usize], "count");
        let label = &merged.sample[1].label[0];
        assert_eq!(merged.string_table[label.key as usize], "thread");
        assert_eq!(merged.string_table[label.str as usize], "worker");
        // Shared strings appear once.
        let spins = merged
            .string_table
            .iter()
            .filter(|s| *s == "app::spin")
            .count();
        assert_eq!(spins, 1);
    }

    #[test]
    fn merge_refuses_dangling_references_and_mixed_kinds() {
        let mut bad = one("f", 1, &[]);
        bad.sample[0].location_id = vec![99];
        assert!(matches!(
            merge(vec![bad]),
            Err(ProfileError::Dangling {
                what: "location",
                index: 99
            })
        ));
        let a = one("f", 1, &[]);
        let mut b = one("f", 1, &[]);
        b.string_table[b.sample_type[0].unit as usize] = "bytes".to_owned();
        assert!(matches!(merge(vec![a, b]), Err(ProfileError::Incompatible)));
    }
}
