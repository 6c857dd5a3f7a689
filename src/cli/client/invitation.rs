//! `client upload` with an upload invitation (`proto/invitations-v1.md`) instead of a
//! token: the invitation URL (`https://gw/invite#inv1~…`) gives the gateway, the token (its
//! fragment) and — asked of the gateway (`GET /v1/invitation`) — the tus creation URL and
//! the batch, whose listed members each file must match by name and size before anything
//! is sent. `--seal` then seals the batch and waits for the verdict.
//!
//! The URL is a credential: it is read from a file (`--invitation-file`, mode 0600) or
//! `SALLYPORT_INVITATION`, never from an argument (it would show in `ps`), and never printed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use super::outcome;
use super::transport::Credential;
use crate::secret::Secret;

/// What the invitation resolved to (the credential redacts itself in `Debug`).
#[derive(Debug)]
pub struct Resolved {
    /// The tus creation URL.
    pub to: reqwest::Url,
    /// The invitation token as a bearer credential.
    pub credential: Credential,
    /// The batch, when the invitation has one.
    pub batch: Option<String>,
    /// The gateway's origin (for the holder endpoints).
    origin: reqwest::Url,
}

/// The invitation URL from `file`, else `SALLYPORT_INVITATION`; `None` when neither.
pub fn from_env(file: Option<&Path>) -> anyhow::Result<Option<(reqwest::Url, String)>> {
    let text = match file {
        Some(f) => {
            let secret = crate::secret::read_secret_file(f, false)
                .with_context(|| format!("reading the invitation file {}", f.display()))?;
            secret
                .expose_str()
                .context("the invitation file is not text")?
                .trim()
                .to_owned()
        }
        None => match std::env::var("SALLYPORT_INVITATION") {
            Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => return Ok(None),
        },
    };
    // Never echo the text: it is a credential.
    let url = reqwest::Url::parse(&text).context("the invitation is not a URL")?;
    if url.scheme() != "https" {
        bail!("the invitation URL must be https");
    }
    let token = url
        .fragment()
        .filter(|t| t.starts_with("inv1~"))
        .context("the invitation URL has no invitation token after its '#'")?
        .to_owned();
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        bail!("the invitation token has characters a token cannot have");
    }
    Ok(Some((url, token)))
}

impl Resolved {
    /// Asks the gateway what the invitation allows, and checks `files` against its batch.
    pub async fn resolve(
        http: &reqwest::Client,
        url: reqwest::Url,
        token: String,
        files: &[(PathBuf, PathBuf)],
    ) -> anyhow::Result<Self> {
        let mut origin = url.clone();
        origin.set_fragment(None);
        origin.set_query(None);
        origin.set_path("/");
        let credential = Credential::Bearer(Secret::from_string(token));
        let view = get_view(http, &origin, &credential).await?;
        let uploads = view["uploads_url"]
            .as_str()
            .context("the gateway's invitation view has no uploads_url")?;
        let to = origin
            .join(uploads)
            .context("the gateway's uploads_url is not a path")?;
        if to.origin() != origin.origin() {
            bail!(
                "the gateway's uploads_url points at another origin; not sending the token there"
            );
        }
        let batch = match &view["batch"] {
            Value::Null => None,
            b => {
                if b["state"] != "open" {
                    bail!(
                        "the invitation's batch is {}: it takes no more files",
                        b["state"].as_str().unwrap_or("not open")
                    );
                }
                let members = b["members"].as_array().cloned().unwrap_or_default();
                check_members(&members, files)?;
                Some(
                    b["id"]
                        .as_str()
                        .context("the gateway's batch has no id")?
                        .to_owned(),
                )
            }
        };
        let (max_files, used_files) = (
            view["limits"]["max_files"].as_u64().unwrap_or(u64::MAX),
            view["used"]["files"].as_u64().unwrap_or(0),
        );
        if (files.len() as u64) > max_files.saturating_sub(used_files) {
            bail!(
                "the invitation allows {} more files ({} of {} used); {} given",
                max_files.saturating_sub(used_files),
                used_files,
                max_files,
                files.len()
            );
        }
        Ok(Self {
            to,
            credential,
            batch,
            origin,
        })
    }

    /// Seals the batch and waits (up to `limit`) for the verdict; the exit code.
    pub async fn seal(
        &self,
        http: &reqwest::Client,
        limit: Duration,
        json: bool,
    ) -> anyhow::Result<u8> {
        let url = self.origin.join("/v1/invitation/seal")?;
        let resp = self
            .credential
            .apply(http.post(url))
            .send()
            .await
            .context("sealing the batch")?;
        let status = resp.status().as_u16();
        if status != 202 {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            bail!(
                "the gateway refused to seal: {status} {}: {}",
                body["code"].as_str().unwrap_or("unknown"),
                body["title"].as_str().unwrap_or("")
            );
        }
        let deadline = Instant::now() + limit;
        loop {
            let view = get_view(http, &self.origin, &self.credential).await?;
            let state = view["batch"]["state"].as_str().unwrap_or("").to_owned();
            match state.as_str() {
                "sealing" | "open" if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                "released" => {
                    report(json, &state, &[]);
                    return Ok(outcome::EXIT_OK);
                }
                "quarantined" => {
                    let findings: Vec<String> = view["batch"]["findings"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|f| f.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    report(json, &state, &findings);
                    return Ok(outcome::EXIT_VERIFICATION);
                }
                other => {
                    bail!("the batch is still {other} after {} s", limit.as_secs());
                }
            }
        }
    }
}

fn report(json: bool, state: &str, findings: &[String]) {
    if json {
        println!(
            "{}",
            serde_json::json!({"batch": {"state": state, "findings": findings}})
        );
    } else {
        println!("batch {state}");
        for f in findings {
            println!("  {f}");
        }
    }
}

async fn get_view(
    http: &reqwest::Client,
    origin: &reqwest::Url,
    credential: &Credential,
) -> anyhow::Result<Value> {
    let url = origin.join("/v1/invitation")?;
    let resp = credential
        .apply(http.get(url))
        .send()
        .await
        .context("asking the gateway about the invitation")?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status != 200 {
        bail!(
            "the gateway refused the invitation: {status} {}: {}",
            body["code"].as_str().unwrap_or("unknown"),
            body["title"].as_str().unwrap_or("")
        );
    }
    Ok(body)
}

/// Every file must be a listed member (by file name) of the listed size, once.
fn check_members(members: &[Value], files: &[(PathBuf, PathBuf)]) -> anyhow::Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for (abs, shown) in files {
        let name = abs
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: the file name is not UTF-8", shown.display()))?;
        let Some(listed) = members.iter().find(|m| m["name"] == name) else {
            bail!(
                "{}: the invitation's manifest does not list {name:?} (it lists {})",
                shown.display(),
                members
                    .iter()
                    .filter_map(|m| m["name"].as_str())
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let size = std::fs::metadata(abs)
            .with_context(|| format!("{}", shown.display()))?
            .len();
        if listed["size"].as_u64() != Some(size) {
            bail!(
                "{}: {size} bytes, but the manifest lists {name:?} with {}",
                shown.display(),
                listed["size"]
            );
        }
        if !seen.insert(name.to_owned()) {
            bail!("{name:?} is named twice");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_checked_against_the_members_by_name_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.ndjson");
        std::fs::write(&a, b"{}\n").unwrap();
        let files = vec![(a.clone(), a.clone())];
        let ok = [serde_json::json!({"name": "a.ndjson", "size": 3})];
        assert!(check_members(&ok, &files).is_ok());
        let size = [serde_json::json!({"name": "a.ndjson", "size": 4})];
        assert!(
            check_members(&size, &files)
                .unwrap_err()
                .to_string()
                .contains("3 bytes")
        );
        let other = [serde_json::json!({"name": "b.ndjson", "size": 3})];
        let e = check_members(&other, &files).unwrap_err().to_string();
        assert!(e.contains("does not list") && e.contains("b.ndjson"), "{e}");
    }
}
