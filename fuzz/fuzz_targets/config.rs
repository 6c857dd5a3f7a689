//! The config file: TOML text, then `\0`, then `KEY=VALUE` environment overrides, one a
//! line. Loading must answer with a config or an error, never a panic, and the same input
//! gives the same answer.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sallyport::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, env_text) = text.split_once('\0').unwrap_or((text, ""));
    let env: BTreeMap<String, String> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let first = Config::from_toml(toml, &env);
    let second = Config::from_toml(toml, &env);
    assert_eq!(format!("{first:?}"), format!("{second:?}"));
});
