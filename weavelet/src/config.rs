//! Decoding component config sections and the single-process config file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// The environment variable naming the config file of a single-process run.
pub const CONFIG_ENV: &str = "SERVICEWEAVER_CONFIG";

/// A component's config section and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    /// TOML text of the section's body.
    pub(crate) text: String,
    /// File it came from, for messages.
    pub(crate) file: String,
}

/// What a single-process run reads from its config file.
#[derive(Debug, Default)]
pub(crate) struct SingleConfig {
    pub(crate) file: Option<PathBuf>,
    pub(crate) app: Option<String>,
    pub(crate) listeners: BTreeMap<String, String>,
    pub(crate) sections: BTreeMap<String, String>,
    /// `[serviceweaver] colocate`: groups of components run together
    /// (read by the multiprocess test runner).
    pub(crate) colocate: Vec<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerConfig {
    address: String,
}

/// Decodes a component's section into `T`, refusing unknown keys.
///
/// Unknown keys are reported before anything else (a typo also makes the
/// intended key missing); every message names the file, the section and
/// the key.
pub(crate) fn decode_section<T: DeserializeOwned>(
    component: &str,
    section: Option<Section>,
) -> Result<T> {
    let (text, file) = match section {
        Some(s) => (s.text, s.file),
        None => (String::new(), "weaver.toml".to_string()),
    };
    let at = || format!("[\"{component}\"]");
    let de = toml::Deserializer::parse(&text)
        .map_err(|e| Error::construction(format!("{file}: {}: {}", at(), e.message())))?;
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(de, &mut track);
    let value = serde_ignored::deserialize(de, |path| unknown.push(path.to_string()));
    if !unknown.is_empty() {
        let keys: Vec<String> = unknown.iter().map(|k| format!("{k:?}")).collect();
        return Err(Error::construction(format!(
            "{file}: unknown key{} {} in {}",
            if keys.len() > 1 { "s" } else { "" },
            keys.join(", "),
            at()
        )));
    }
    value.map_err(|e: toml::de::Error| {
        let msg = e.message();
        let path = track.path().to_string();
        if let Some(field) = msg
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            let key = if path == "." {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
            return Error::construction(format!(
                "{file}: missing required key \"{key}\" in {}",
                at()
            ));
        }
        if path == "." {
            Error::construction(format!("{file}: {}: {msg}", at()))
        } else {
            Error::construction(format!("{file}: key \"{path}\" in {}: {msg}", at()))
        }
    })
}

/// The top-level keys of a section.
///
/// # Errors
///
/// If the section is not valid TOML.
pub(crate) fn section_keys(component: &str, section: &Section) -> Result<Vec<String>> {
    let table: toml::Table = section.text.parse().map_err(|e: toml::de::Error| {
        Error::construction(format!(
            "{}: [\"{component}\"]: {}",
            section.file,
            e.message()
        ))
    })?;
    Ok(table.keys().cloned().collect())
}

/// Reads the file named by `SERVICEWEAVER_CONFIG`, if set.
pub(crate) fn load_single() -> Result<SingleConfig> {
    match std::env::var_os(CONFIG_ENV) {
        None => Ok(SingleConfig::default()),
        Some(path) => {
            let path = PathBuf::from(path);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::construction(format!("cannot read {CONFIG_ENV}={}: {e}", path.display()))
            })?;
            parse_single(&text, &path)
        }
    }
}

/// Parses a config file for a single-process run: `[serviceweaver] name`,
/// `[single] listeners.NAME = {address = "..."}` and component sections.
pub(crate) fn parse_single(text: &str, path: &Path) -> Result<SingleConfig> {
    let file = path.display().to_string();
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| Error::construction(format!("{file}: {e}")))?;
    let mut cfg = SingleConfig {
        file: Some(path.to_path_buf()),
        ..Default::default()
    };
    for (key, value) in table {
        match key.as_str() {
            "serviceweaver" => {
                cfg.app = value
                    .get("name")
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                if let Some(groups) = value.get("colocate") {
                    cfg.colocate = groups.clone().try_into().map_err(|e: toml::de::Error| {
                        Error::construction(format!(
                            "{file}: [serviceweaver] colocate: {} (expected a list of lists of component names)",
                            e.message()
                        ))
                    })?;
                }
            }
            "single" => cfg.listeners = single_listeners(value, &file)?,
            "multi" => {}
            _ => {
                let text = toml::to_string(&value)
                    .map_err(|e| Error::construction(format!("{file}: section {key:?}: {e}")))?;
                cfg.sections.insert(key, text);
            }
        }
    }
    Ok(cfg)
}

fn single_listeners(value: toml::Value, file: &str) -> Result<BTreeMap<String, String>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Single {
        #[serde(default)]
        listeners: BTreeMap<String, ListenerConfig>,
    }
    let single: Single = value.try_into().map_err(|e: toml::de::Error| {
        Error::construction(format!("{file}: [single]: {}", e.message()))
    })?;
    Ok(single
        .listeners
        .into_iter()
        .map(|(k, v)| (k, v.address))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Greeter {
        #[serde(rename = "Greeting")]
        greeting: String,
        #[serde(default)]
        times: u32,
    }

    fn section(text: &str) -> Option<Section> {
        Some(Section {
            text: text.into(),
            file: "/app/weaver.toml".into(),
        })
    }

    #[test]
    fn sections_decode_and_unknown_keys_are_named() {
        let ok: Greeter =
            decode_section("hello::Greeter", section("Greeting = \"Bonjour\"")).unwrap();
        assert_eq!(
            ok,
            Greeter {
                greeting: "Bonjour".into(),
                times: 0
            }
        );

        let err = decode_section::<Greeter>(
            "hello::Greeter",
            section("Greeting = \"x\"\nGreting = \"typo\"\nextra = 1"),
        )
        .unwrap_err();
        assert!(err.is_construction());
        assert_eq!(
            err.message(),
            "/app/weaver.toml: unknown keys \"Greting\", \"extra\" in [\"hello::Greeter\"]"
        );
    }

    #[test]
    fn wrong_types_name_the_component_key_and_file() {
        let err =
            decode_section::<Greeter>("hello::Greeter", section("Greeting = \"x\"\ntimes = \"3\""))
                .unwrap_err();
        assert_eq!(
            err.message(),
            "/app/weaver.toml: key \"times\" in [\"hello::Greeter\"]: \
             invalid type: string \"3\", expected u32"
        );
    }

    #[test]
    fn a_typo_is_reported_as_the_unknown_key_not_as_the_missing_one() {
        // `Greting` for `Greeting`: the required key is missing too, but the
        // typo is what the user must see.
        let err =
            decode_section::<Greeter>("hello::Greeter", section("Greting = \"x\"")).unwrap_err();
        assert_eq!(
            err.message(),
            "/app/weaver.toml: unknown key \"Greting\" in [\"hello::Greeter\"]"
        );
        let err = decode_section::<Greeter>("hello::Greeter", section("times = 2")).unwrap_err();
        assert_eq!(
            err.message(),
            "/app/weaver.toml: missing required key \"Greeting\" in [\"hello::Greeter\"]"
        );
    }

    #[test]
    fn single_config_reads_listeners_and_sections() {
        let text = r#"
[serviceweaver]
name = "hello"
binary = "./hello"

[single]
listeners.hello = { address = "127.0.0.1:9000" }

["hello::Greeter"]
Greeting = "Hi"
"#;
        let cfg = parse_single(text, Path::new("w.toml")).unwrap();
        assert_eq!(cfg.app.as_deref(), Some("hello"));
        assert_eq!(cfg.listeners["hello"], "127.0.0.1:9000");
        let g: Greeter = decode_section(
            "hello::Greeter",
            Some(Section {
                text: cfg.sections["hello::Greeter"].clone(),
                file: "w.toml".into(),
            }),
        )
        .unwrap();
        assert_eq!(g.greeting, "Hi");
    }
}
