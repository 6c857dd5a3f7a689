//! `sallyport preflight [--profile NAME]`: the go-live checklist for batch delivery, run
//! against the configuration without starting the gateway.
//!
//! One line per check on standard output, `ok   …`, `warn …`, `skip …` or `FAIL …` with the
//! reason; then, when anything failed, one line on standard error naming every failing check.
//! Exit codes ([`EXIT_OK`], [`EXIT_FAILED`], [`EXIT_UNKNOWN_PROFILE`]): 0 nothing failed
//! (warnings and skips do not fail), 1 a check failed or the configuration does not load, 2
//! `--profile` names no configured profile (nothing else is checked).
//!
//! The checks, in order:
//!
//! * `tls` — TLS is on (`server.danger_plaintext_http` fails) and the configured certificate
//!   and key load; with neither configured the development CA will be generated: a warning,
//!   since that is for development only.
//! * `keys` — the key provider opens and names a current KEK. A keyring file that does not
//!   exist yet is a warning (it is created on first start); nothing is created here.
//! * `state` — the state store, which holds the audit trail, opens for writing (embedded:
//!   redb's exclusive lock; Redis: connect and ping). The embedded store has one owner: when
//!   a running gateway holds it the check is `skip` ("in use by a running gateway (cannot
//!   check offline)"), not a failure — the gateway writing its audit trail there is the
//!   evidence, and preflight must not fail because the service is up. A store file that does
//!   not exist yet is a warning.
//! * `batches.retention` — written in the file (a default is not a decision).
//! * per profile (all, or the one named): every key written (`profiles[bulk].link_ttl is not
//!   set` for each one left to its default), `link_ttl` within `links.max_ttl`,
//!   `on_validation_failure = "quarantine"`, `checksum = "sha256"`.
//!
//! Which keys were written is read from the file as parsed, before defaults
//! ([`crate::config::load_raw`], [`RawProfile::unset`]); the values from the validated
//! configuration, so preflight judges exactly what `serve` would run with.

use std::fmt;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::batch::config::RawProfile;
use crate::batch::profile::{Checksum, OnValidationFailure, Profile};
use crate::config::raw::RawConfig;
use crate::config::units::format_duration;
use crate::config::{Config, Env, StateSettings};
use crate::keys::KeyProvider;
use crate::keys::config::ProviderSettings;
use crate::state::{StateError, StateStore};
use crate::tls::CertSource;

/// Every check passed (warnings and skips allowed).
pub const EXIT_OK: u8 = 0;
/// A check failed, or the configuration does not load.
pub const EXIT_FAILED: u8 = 1;
/// `--profile` names no configured profile.
pub const EXIT_UNKNOWN_PROFILE: u8 = 2;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked: `tls`, `keys`, `state`, `batches.retention`, `profiles[NAME].KEY`.
    pub name: String,
    /// How it went.
    pub outcome: Outcome,
    /// The reason or the finding, one line.
    pub detail: String,
}

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Ok,
    /// Passed, with something an operator should know before production.
    Warn,
    /// Could not be judged offline; does not fail.
    Skip,
    /// Failed.
    Fail,
}

/// Runs preflight on the file at `path` (defaults when `None`) and prints the report.
pub fn run(path: Option<&Path>, env: &dyn Env, profile: Option<&str>) -> ExitCode {
    let loaded = crate::config::load_raw(path, env)
        .and_then(|raw| Config::load(path, env).map(|config| (raw, config)));
    let (raw, config) = match loaded {
        Ok(both) => both,
        Err(e) => {
            let check = fail("config", e.to_string());
            println!("{check}");
            eprintln!("preflight failed: config");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let profile_checks = match profile_checks(&raw, &config, profile) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(EXIT_UNKNOWN_PROFILE);
        }
    };
    let mut checks = vec![tls(&config)];
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            checks.push(rt.block_on(keys(&config)));
            checks.push(rt.block_on(state(&config)));
        }
        Err(e) => checks.push(fail("keys", format!("cannot start a runtime: {e}"))),
    }
    checks.push(retention(&raw, &config));
    checks.extend(profile_checks);
    let (text, code) = report(&checks);
    print!("{text}");
    if let Some(failed) = failed_line(&checks) {
        eprintln!("{failed}");
    }
    ExitCode::from(code)
}

/// Every check's line, and the exit code they add up to.
pub fn report(checks: &[Check]) -> (String, u8) {
    let mut text = String::new();
    for c in checks {
        text.push_str(&c.to_string());
        text.push('\n');
    }
    let code = if checks.iter().any(|c| c.outcome == Outcome::Fail) {
        EXIT_FAILED
    } else {
        EXIT_OK
    };
    (text, code)
}

/// `preflight failed: a, b` naming each failing check, or `None` when none failed.
pub fn failed_line(checks: &[Check]) -> Option<String> {
    let names: Vec<&str> = checks
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .map(|c| c.name.as_str())
        .collect();
    (!names.is_empty()).then(|| format!("preflight failed: {}", names.join(", ")))
}

/// The profile checks for every profile, or only the one named (an error message when no
/// profile has that name).
pub fn profile_checks(
    raw: &RawConfig,
    config: &Config,
    only: Option<&str>,
) -> Result<Vec<Check>, String> {
    let profiles = &config.batches.profiles;
    let selected: Vec<&Profile> = match only {
        Some(name) => match config.batches.profile(name) {
            Some(p) => vec![p],
            None => {
                let known: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
                return Err(format!(
                    "no profile named {name:?} in the configuration (configured: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        },
        None => profiles.iter().collect(),
    };
    if selected.is_empty() {
        return Ok(vec![Check {
            name: "profiles".into(),
            outcome: Outcome::Warn,
            detail: "none configured: a manifest naming a profile is refused".into(),
        }]);
    }
    let mut out = Vec::new();
    for p in selected {
        let written = raw
            .profiles
            .iter()
            .find(|r| r.name.as_deref() == Some(p.name.as_str()));
        out.extend(one_profile(p, written, config));
    }
    Ok(out)
}

fn one_profile(p: &Profile, raw: Option<&RawProfile>, config: &Config) -> Vec<Check> {
    let key = |k: &str| format!("profiles[{}].{k}", p.name);
    let mut out = Vec::new();
    let unset = raw.map(RawProfile::unset).unwrap_or_default();
    for k in &unset {
        out.push(fail(
            key(k),
            "is not set (write it: preflight wants no defaults)",
        ));
    }
    if unset.is_empty() {
        out.push(ok(
            format!("profiles[{}]", p.name),
            "every setting is written",
        ));
    }
    let max = config.links.max_ttl;
    out.push(if p.link_ttl <= max {
        ok(
            key("link_ttl"),
            format!(
                "{} is within links.max_ttl ({})",
                format_duration(p.link_ttl),
                format_duration(max)
            ),
        )
    } else {
        fail(
            key("link_ttl"),
            format!(
                "{} is longer than links.max_ttl ({})",
                format_duration(p.link_ttl),
                format_duration(max)
            ),
        )
    });
    out.push(match p.on_validation_failure {
        OnValidationFailure::Quarantine => ok(
            key("on_validation_failure"),
            "quarantine: a batch with any finding is held for an auditor",
        ),
    });
    out.push(match p.checksum {
        Checksum::Sha256 => ok(key("checksum"), "sha256"),
    });
    out
}

fn tls(config: &Config) -> Check {
    if config.server.danger_plaintext_http {
        return fail(
            "tls",
            "server.danger_plaintext_http = true: the gateway itself serves plain HTTP",
        );
    }
    match &config.tls.certificate {
        CertSource::Development => Check {
            name: "tls".into(),
            outcome: Outcome::Warn,
            detail: format!(
                "no tls.cert_file/key_file: a development CA is generated in {} on first start \
                 (development only; configure a certificate for production)",
                crate::tls::devca::DevCaPaths::under(&config.data_dir)
                    .ca_cert
                    .parent()
                    .unwrap_or(&config.data_dir)
                    .display()
            ),
        },
        CertSource::Files { cert, key } => match crate::tls::server_config(
            &config.tls,
            &config.data_dir,
            config.allow_world_readable_secrets,
        ) {
            Ok(_) => ok(
                "tls",
                format!(
                    "certificate {} and key {} load",
                    cert.display(),
                    key.display()
                ),
            ),
            Err(e) => fail("tls", e.to_string()),
        },
    }
}

async fn keys(config: &Config) -> Check {
    let provider: Result<Arc<dyn KeyProvider>, String> = match &config.keys.provider {
        ProviderSettings::Keyring {
            path,
            allow_world_readable_secrets,
        } => {
            if !path.exists() {
                return Check {
                    name: "keys".into(),
                    outcome: Outcome::Warn,
                    detail: format!(
                        "keyring {} does not exist yet: it is created on first start \
                             (back it up with the state store)",
                        path.display()
                    ),
                };
            }
            crate::keys::keyring::KeyringFile::open(path, *allow_world_readable_secrets)
                .map(|k| Arc::new(k) as Arc<dyn KeyProvider>)
                .map_err(|e| e.to_string())
        }
        ProviderSettings::Static { .. } => config.keys.build_provider().map_err(|e| e.to_string()),
    };
    match provider {
        Ok(p) => match p.current().await {
            Ok(kek) => ok("keys", format!("{} provider, current KEK {kek}", p.kind())),
            Err(e) => fail("keys", format!("no current KEK: {e}")),
        },
        Err(e) => fail("keys", e),
    }
}

async fn state(config: &Config) -> Check {
    let store: Arc<dyn StateStore> = match &config.state {
        StateSettings::Embedded { path } => {
            if !path.exists() {
                return Check {
                    name: "state".into(),
                    outcome: Outcome::Warn,
                    detail: format!(
                        "embedded state store {} does not exist yet: it is created on first start",
                        path.display()
                    ),
                };
            }
            match crate::state::embedded::EmbeddedStateStore::open(path) {
                Ok(s) => Arc::new(s),
                Err(StateError::Locked(_)) => {
                    return Check {
                        name: "state".into(),
                        outcome: Outcome::Skip,
                        detail: "state store in use by a running gateway (cannot check offline)"
                            .into(),
                    };
                }
                Err(e) => return fail("state", e.to_string()),
            }
        }
        StateSettings::Redis { .. } => match crate::app::open_state(config).await {
            Ok(s) => s,
            Err(e) => return fail("state", format!("{e:#}")),
        },
    };
    match store.ping().await {
        Ok(()) => ok(
            "state",
            format!(
                "{} state store opens for writing (the audit trail is kept there)",
                store.kind()
            ),
        ),
        Err(e) => fail("state", e.to_string()),
    }
}

fn retention(raw: &RawConfig, config: &Config) -> Check {
    let name = "batches.retention";
    if raw.batches.retention.is_some() {
        ok(name, format_duration(config.batches.retention))
    } else {
        fail(
            name,
            format!(
                "is not set (the default, {}, would apply)",
                format_duration(config.batches.retention)
            ),
        )
    }
}

fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        outcome: Outcome::Ok,
        detail: detail.into(),
    }
}

fn fail(name: impl Into<String>, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        outcome: Outcome::Fail,
        detail: detail.into(),
    }
}

// === impl Check ===

/// `ok   tls: …`: a four-letter outcome, a space, the check's name and its detail; a
/// detail that is a predicate reads as a sentence (`FAIL profiles[bulk].link_ttl is not set …`).
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.outcome {
            Outcome::Ok => "ok  ",
            Outcome::Warn => "warn",
            Outcome::Skip => "skip",
            Outcome::Fail => "FAIL",
        };
        let sep = if self.detail.starts_with("is ") {
            " "
        } else {
            ": "
        };
        write!(f, "{tag} {}{sep}{}", self.name, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn load(text: &str) -> (RawConfig, Config) {
        let env = BTreeMap::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("c.toml");
        std::fs::write(&f, text).expect("write");
        (
            crate::config::load_raw(Some(&f), &env).expect("raw"),
            Config::load(Some(&f), &env).expect("config"),
        )
    }

    const FULL: &str = "[[profiles]]\nname = \"bulk\"\nresources = [\"*\"]\n\
        purpose_of_use = [\"TREAT\"]\ndelivery = \"signed_url\"\nlink_ttl = \"7days\"\n\
        checksum = \"sha256\"\nencryption_at_rest = true\nprovenance_required = true\n\
        on_validation_failure = \"quarantine\"\nretention = \"90days\"\n";

    #[test]
    fn a_fully_written_profile_passes() {
        let (raw, config) = load(FULL);
        let checks = profile_checks(&raw, &config, None).expect("checks");
        let (text, code) = report(&checks);
        assert_eq!(code, EXIT_OK, "{text}");
        assert_eq!(
            text,
            "ok   profiles[bulk]: every setting is written\n\
             ok   profiles[bulk].link_ttl: 7days is within links.max_ttl (30days)\n\
             ok   profiles[bulk].on_validation_failure: quarantine: a batch with any finding is held for an auditor\n\
             ok   profiles[bulk].checksum: sha256\n"
        );
        assert_eq!(failed_line(&checks), None);
    }

    #[test]
    fn each_key_left_to_its_default_fails_by_name() {
        let (raw, config) = load(
            "[[profiles]]\nname = \"bulk\"\nresources = [\"Patient\"]\n\
             [[profiles]]\nname = \"other\"\n",
        );
        let checks = profile_checks(&raw, &config, Some("bulk")).expect("checks");
        let (text, code) = report(&checks);
        assert_eq!(code, EXIT_FAILED);
        assert!(
            text.contains(
                "FAIL profiles[bulk].link_ttl is not set (write it: preflight wants no defaults)\n"
            ),
            "{text}"
        );
        assert!(!text.contains("profiles[bulk].resources"), "{text}");
        assert!(!text.contains("other"), "{text}");
        let failed = failed_line(&checks).expect("failures");
        assert!(
            failed.starts_with("preflight failed: profiles[bulk].purpose_of_use, "),
            "{failed}"
        );
        assert_eq!(failed.matches(", ").count(), 7, "{failed}");
    }

    #[test]
    fn an_unknown_profile_is_named_with_the_known_ones() {
        let (raw, config) = load(FULL);
        let err = profile_checks(&raw, &config, Some("bluk")).expect_err("unknown");
        assert_eq!(
            err,
            "no profile named \"bluk\" in the configuration (configured: bulk)"
        );
        let (raw, config) = load("");
        let err = profile_checks(&raw, &config, Some("x")).expect_err("unknown");
        assert!(err.ends_with("(configured: none)"), "{err}");
        let none = profile_checks(&raw, &config, None).expect("checks");
        assert_eq!(none[0].outcome, Outcome::Warn);
    }

    #[test]
    fn plaintext_and_unset_retention_fail() {
        let (raw, config) = load("[server]\ndanger_plaintext_http = true\n");
        assert_eq!(tls(&config).outcome, Outcome::Fail);
        let r = retention(&raw, &config);
        assert_eq!(
            r.to_string(),
            "FAIL batches.retention is not set (the default, 30days, would apply)"
        );
        let (raw, config) = load("[batches]\nretention = \"14days\"\n");
        assert_eq!(tls(&config).outcome, Outcome::Warn);
        assert_eq!(
            retention(&raw, &config).to_string(),
            "ok   batches.retention: 14days"
        );
    }
}
