//! Typed reads from one TOML table, with errors that name the file, the
//! section and the key.

use std::path::Path;

use toml::{Table, Value};

use super::ConfigError;

/// One table of the config file and where it sits.
pub(super) struct Section<'a> {
    path: &'a Path,
    /// The section as written between brackets, e.g. `multi.listeners.hello`.
    name: String,
    table: &'a Table,
}

impl<'a> Section<'a> {
    pub(super) fn new(path: &'a Path, name: &str, table: &'a Table) -> Section<'a> {
        Section {
            path,
            name: name.to_owned(),
            table,
        }
    }

    /// The config file.
    pub(super) fn path(&self) -> &Path {
        self.path
    }

    /// The section of a table nested under `key`.
    pub(super) fn child(&self, key: &str, table: &'a Table) -> Section<'a> {
        Section {
            path: self.path,
            name: format!("{}.{}", self.name, toml_key(key)),
            table,
        }
    }

    /// Fails on the first key (in sorted order) that is not in `allowed`.
    pub(super) fn check_keys(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        match self
            .table
            .keys()
            .find(|key| !allowed.contains(&key.as_str()))
        {
            Some(key) => Err(ConfigError::UnknownKey {
                path: self.path.to_owned(),
                section: self.name.clone(),
                key: key.clone(),
                expected: allowed.join(", "),
            }),
            None => Ok(()),
        }
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        self.get(key, "a string", Value::as_str)
    }

    pub(super) fn integer(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        self.get(key, "an integer", Value::as_integer)
    }

    pub(super) fn table(&self, key: &str) -> Result<Option<&'a Table>, ConfigError> {
        self.get(key, "a table", Value::as_table)
    }

    /// Reads an array of strings.
    pub(super) fn strings(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        const EXPECTED: &str = "an array of strings";
        let Some(items) = self.get(key, EXPECTED, Value::as_array)? else {
            return Ok(None);
        };
        let strings = items
            .iter()
            .enumerate()
            .map(|(i, item)| self.element(item, format!("{key}[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Some(strings))
    }

    /// Reads an array of arrays of strings.
    pub(super) fn string_lists(&self, key: &str) -> Result<Option<Vec<Vec<String>>>, ConfigError> {
        const EXPECTED: &str = "an array of arrays of strings";
        let Some(lists) = self.get(key, EXPECTED, Value::as_array)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(lists.len());
        for (i, list) in lists.iter().enumerate() {
            let items = list.as_array().ok_or_else(|| {
                self.wrong_type(format!("{key}[{i}]"), "an array of strings", list)
            })?;
            let strings = items
                .iter()
                .enumerate()
                .map(|(j, item)| self.element(item, format!("{key}[{i}][{j}]")))
                .collect::<Result<_, _>>()?;
            out.push(strings);
        }
        Ok(Some(out))
    }

    /// The error for an absent required key.
    pub(super) fn missing(&self, key: &str) -> ConfigError {
        ConfigError::MissingKey {
            path: self.path.to_owned(),
            section: self.name.clone(),
            key: key.to_owned(),
        }
    }

    /// The error for a value that is well typed but not allowed.
    pub(super) fn invalid(&self, key: &str, reason: String) -> ConfigError {
        ConfigError::InvalidValue {
            path: self.path.to_owned(),
            section: self.name.clone(),
            key: key.to_owned(),
            reason,
        }
    }

    fn get<T>(
        &self,
        key: &str,
        expected: &'static str,
        cast: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.table.get(key) else {
            return Ok(None);
        };
        cast(value)
            .map(Some)
            .ok_or_else(|| self.wrong_type(key.to_owned(), expected, value))
    }

    fn element(&self, item: &Value, key: String) -> Result<String, ConfigError> {
        item.as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.wrong_type(key, "a string", item))
    }

    fn wrong_type(&self, key: String, expected: &'static str, found: &Value) -> ConfigError {
        ConfigError::WrongType {
            path: self.path.to_owned(),
            section: self.name.clone(),
            key,
            expected,
            found: describe(found),
        }
    }
}

/// A TOML type with its article, for messages.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// Writes a key as TOML would: bare if it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}
