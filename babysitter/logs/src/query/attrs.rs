//! The `attrs` variable: a CEL `map(string, dyn)` borrowing the entry. A
//! value is a string, or the int, uint, double or bool the app logged.

use cel::ExecutionError;
use cel::common::traits::{Container, Indexer, Iterable, Iterator as CelIterator, Sizer};
use cel::common::types::{CelBool, CelDouble, CelInt, CelString, CelUInt, MAP_TYPE, Type};
use cel::common::value::{CowVal, Val};

use crate::view::AttrRef;

/// An entry's attributes as a CEL map. Built only when a query reads
/// `attrs`; the strings are borrowed, so it costs one small vector.
#[derive(Debug, Clone)]
pub(super) struct AttrsVal<'a> {
    /// (key, value), in entry order; a repeated key's last value wins.
    pairs: Vec<(CelString<'a>, AttrVal<'a>)>,
}

/// An attribute's value as a CEL value.
#[derive(Debug, Clone)]
enum AttrVal<'a> {
    Str(CelString<'a>),
    Int(CelInt),
    Uint(CelUInt),
    Double(CelDouble),
    Bool(CelBool),
}

struct Keys<'b, 'a> {
    pairs: std::slice::Iter<'b, (CelString<'a>, AttrVal<'a>)>,
}

// === impl AttrsVal ===

impl<'a> AttrsVal<'a> {
    pub(super) fn new(pairs: Vec<(&'a str, AttrRef<'a>)>) -> Self {
        Self {
            pairs: pairs
                .into_iter()
                .map(|(k, v)| (CelString::from(k), AttrVal::new(v)))
                .collect(),
        }
    }

    fn find(&self, key: &dyn Val) -> Option<&AttrVal<'a>> {
        let key = key.downcast_ref::<CelString<'_>>()?;
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k.inner() == key.inner())
            .map(|(_, v)| v)
    }
}

impl Val for AttrsVal<'_> {
    fn get_type(&self) -> &Type {
        &MAP_TYPE
    }

    fn cel_type() -> &'static Type {
        &MAP_TYPE
    }

    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(self.clone())
    }
}

impl Container for AttrsVal<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(self.find(value).is_some())
    }
}

impl Indexer for AttrsVal<'_> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        match self.find(idx) {
            Some(v) => Ok(CowVal::Borrowed(v.as_val())),
            None => Err(ExecutionError::no_such_key(&format!("{idx:?}"))),
        }
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

impl Iterable for AttrsVal<'_> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn CelIterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        Box::new(Keys {
            pairs: self.pairs.iter(),
        })
    }
}

impl Sizer for AttrsVal<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(self.pairs.len() as i64)
    }
}

// === impl AttrVal ===

impl<'a> AttrVal<'a> {
    fn new(v: AttrRef<'a>) -> Self {
        match v {
            AttrRef::Str(s) => AttrVal::Str(CelString::from(s)),
            AttrRef::Int(i) => AttrVal::Int(CelInt::from(i)),
            AttrRef::Uint(u) => AttrVal::Uint(CelUInt::from(u)),
            AttrRef::Float(f) => AttrVal::Double(CelDouble::from(f)),
            AttrRef::Bool(b) => AttrVal::Bool(CelBool::from(b)),
            AttrRef::None => AttrVal::Str(CelString::from("")),
        }
    }

    fn as_val(&self) -> &(dyn Val + 'a) {
        match self {
            AttrVal::Str(s) => s,
            AttrVal::Int(i) => i,
            AttrVal::Uint(u) => u,
            AttrVal::Double(d) => d,
            AttrVal::Bool(b) => b,
        }
    }
}

// === impl Keys ===

impl<'b, 'a: 'b, 'v> CelIterator<'b, 'v> for Keys<'b, 'a>
where
    'a: 'v,
{
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        self.pairs.next().map(|(k, _)| k as &dyn Val)
    }
}
