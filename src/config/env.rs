//! `SALLYPORT_*` environment overrides, read through a trait so tests pass a map.
//!
//! `SALLYPORT_DATA_DIR=/srv/sp` sets the top-level `data_dir`; a double underscore
//! descends into a section: `SALLYPORT_SERVER__LISTEN=0.0.0.0:8443`,
//! `SALLYPORT_STATE__BACKEND=redis`. The value is read as a TOML value when it is one
//! (`true`, `42`, `["a","b"]`) and as a string otherwise. An override that names no
//! key of the file format is an error naming the variable. `SALLYPORT_CONFIG` (the
//! config file's path) is not an override.

use std::collections::BTreeMap;

/// Where environment variables come from.
pub trait Env {
    /// Every variable whose name starts with `prefix`, sorted by name.
    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let mut vars: Vec<_> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with(prefix))
            .collect();
        vars.sort();
        vars
    }
}

impl Env for BTreeMap<String, String> {
    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        self.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The variable prefix.
pub const PREFIX: &str = "SALLYPORT_";
/// Variables with the prefix that are not overrides.
pub const NOT_OVERRIDES: &[&str] = &[
    "SALLYPORT_CONFIG",
    "SALLYPORT_LOG",
    // The API client settings of `sallyport link` / `sallyport artifact`.
    "SALLYPORT_URL",
    "SALLYPORT_TOKEN",
    "SALLYPORT_TOKEN_FILE",
    "SALLYPORT_CA_FILE",
];

/// Applies overrides to a parsed TOML table. Errors name the variable.
pub fn apply(table: &mut toml::Table, env: &dyn Env) -> Result<Vec<String>, String> {
    let mut applied = Vec::new();
    for (name, value) in env.vars_with_prefix(PREFIX) {
        if NOT_OVERRIDES.contains(&name.as_str()) {
            continue;
        }
        let path: Vec<String> = name[PREFIX.len()..]
            .split("__")
            .map(|p| p.to_ascii_lowercase())
            .collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "environment variable {name} does not name a config key"
            ));
        }
        let parsed = parse_value(&value);
        let mut cursor = &mut *table;
        for section in &path[..path.len() - 1] {
            let entry = cursor
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cursor = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(format!(
                        "environment variable {name}: {section} is not a section"
                    ));
                }
            };
        }
        if let Some(last) = path.last() {
            cursor.insert(last.clone(), parsed);
        }
        applied.push(name);
    }
    Ok(applied)
}

fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}
