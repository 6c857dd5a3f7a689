//! `sallyport invite issue|list|show|revoke`: upload invitations, the publisher's
//! commands, sent to a running gateway's API (see [`super::api`] for how it is reached
//! and authenticated). `issue` prints the invitation URL (a bearer credential: send it to
//! the clinic over a channel you trust, and never paste it into a ticket).

use anyhow::{Context, bail};
use clap::Subcommand;
use http::Method;
use serde_json::{Value, json};

use super::api::{ApiArgs, ApiClient, expect_success};
use crate::config::Config;
use crate::config::units::ByteSize;

/// Invitation commands.
#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Issue an invitation; prints its URL. With --batch-manifest the uploads go into a
    /// new batch and must be its listed members (the limits are then the manifest's).
    Issue {
        /// The partner organisation (a-z, 0-9, '.', '_', '-').
        #[arg(long)]
        partner: String,
        /// A manifest (manifest-v1 JSON), sent byte for byte.
        #[arg(long, conflicts_with_all = ["max_files", "max_bytes"])]
        batch_manifest: Option<std::path::PathBuf>,
        /// A provenance record to go with the manifest, sent byte for byte.
        #[arg(long, requires = "batch_manifest")]
        provenance: Option<std::path::PathBuf>,
        /// Most files (default: invitations.max_files, at most 100).
        #[arg(long)]
        max_files: Option<u64>,
        /// Most bytes, e.g. 500MiB, 2GiB (default: uploads.max_bytes_per_principal).
        #[arg(long)]
        max_bytes: Option<String>,
        /// Lifetime, e.g. 24h, 72h, 7days (default: invitations.default_ttl).
        #[arg(long)]
        ttl: Option<String>,
        /// Print the whole JSON answer instead of the URL.
        #[arg(long)]
        json: bool,
    },
    /// List invitations (newest ids are not first: ids are random).
    List {
        /// Only this partner's.
        #[arg(long)]
        partner: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one invitation with its usage (JSON).
    Show {
        /// The invitation id.
        id: String,
    },
    /// Revoke an invitation: its next request is refused, on every instance.
    Revoke {
        /// The invitation id.
        id: String,
        /// Why (goes to the audit trail; no PHI).
        #[arg(long)]
        reason: String,
    },
}

/// Reads a JSON document to send byte for byte; refuses what is not one JSON object.
fn document(path: &std::path::Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the {what} {path:?}"))?;
    let text =
        std::str::from_utf8(&bytes).with_context(|| format!("the {what} {path:?} is not UTF-8"))?;
    let trimmed = text.trim();
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(_)) => Ok(trimmed.as_bytes().to_vec()),
        Ok(_) => bail!("the {what} {path:?} is not a JSON object"),
        Err(e) => bail!(
            "the {what} {path:?} is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
    }
}

/// The issue request's body: the options as JSON, then the documents spliced in as they
/// are (so the gateway stores and hashes exactly the file's bytes).
fn issue_body(
    fields: &Value,
    manifest: Option<&[u8]>,
    provenance: Option<&[u8]>,
) -> anyhow::Result<Vec<u8>> {
    let mut body = serde_json::to_vec(fields)?;
    // `fields` is an object: `{…}`; drop its closing brace and append the documents.
    body.pop();
    for (name, doc) in [("manifest", manifest), ("provenance", provenance)] {
        if let Some(doc) = doc {
            body.extend_from_slice(format!(",\"{name}\":").as_bytes());
            body.extend_from_slice(doc);
        }
    }
    body.push(b'}');
    Ok(body)
}

fn summary(v: &Value) -> String {
    format!(
        "{}  {:<8} partner {}  files {}/{}  bytes {}/{}  expires {}{}",
        v["id"].as_str().unwrap_or_default(),
        v["state"].as_str().unwrap_or_default(),
        v["partner"].as_str().unwrap_or_default(),
        v["used"]["files"]
            .as_u64()
            .map_or("-".into(), |n| n.to_string()),
        v["limits"]["max_files"],
        v["used"]["bytes"]
            .as_u64()
            .map_or("-".into(), |n| n.to_string()),
        v["limits"]["max_bytes"],
        v["expires_at"].as_str().unwrap_or_default(),
        v["batch"]
            .as_str()
            .map_or(String::new(), |b| format!("  batch {b}")),
    )
}

/// Runs an invitation command.
pub async fn run(cmd: InviteCommand, api: &ApiArgs, config: Option<&Config>) -> anyhow::Result<()> {
    let client = ApiClient::from_args(api, config)?;
    match cmd {
        InviteCommand::Issue {
            partner,
            batch_manifest,
            provenance,
            max_files,
            max_bytes,
            ttl,
            json,
        } => {
            partner
                .parse::<crate::grant::PartnerName>()
                .map_err(|e| anyhow::anyhow!("--partner {partner:?}: {e}"))?;
            let mut fields = json!({"partner": partner});
            if let Some(t) = ttl {
                crate::config::units::parse_duration(&t)
                    .map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
                fields["ttl"] = json!(t);
            }
            if let Some(n) = max_files {
                fields["max_files"] = json!(n);
            }
            if let Some(b) = max_bytes {
                let size: ByteSize = b
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("--max-bytes: {e}"))?;
                fields["max_bytes"] = json!(size.bytes());
            }
            let manifest = batch_manifest
                .as_deref()
                .map(|p| document(p, "manifest"))
                .transpose()?;
            let provenance = provenance
                .as_deref()
                .map(|p| document(p, "provenance record"))
                .transpose()?;
            let body = issue_body(&fields, manifest.as_deref(), provenance.as_deref())?;
            let (status, out) = client
                .call_bytes(Method::POST, "/v1/invitations", body)
                .await?;
            expect_success(status, &out)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{}", out["url"].as_str().unwrap_or_default());
                eprintln!("{}", summary(&out));
                eprintln!(
                    "the URL is a credential: send it over a channel you trust; \
                     revoke with `sallyport invite revoke {}`",
                    out["id"].as_str().unwrap_or_default()
                );
            }
        }
        InviteCommand::List { partner, json } => {
            let mut query = String::new();
            if let Some(p) = &partner {
                p.parse::<crate::grant::PartnerName>()
                    .map_err(|e| anyhow::anyhow!("--partner {p:?}: {e}"))?;
                query = format!("partner={p}&");
            }
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let path = match &after {
                    Some(a) => format!("/v1/invitations?{query}limit=200&after={a}"),
                    None => format!("/v1/invitations?{query}limit=200"),
                };
                let (status, out) = client.call(Method::GET, &path, None).await?;
                expect_success(status, &out)?;
                all.extend(out["invitations"].as_array().cloned().unwrap_or_default());
                match out["next"].as_str() {
                    Some(n) => after = Some(n.to_owned()),
                    None => break,
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for v in &all {
                    println!("{}", summary(v));
                }
            }
        }
        InviteCommand::Show { id } => {
            id.parse::<crate::ids::OpaqueId>()
                .map_err(|e| anyhow::anyhow!("{id:?} is not an id: {e}"))?;
            let (status, out) = client
                .call(Method::GET, &format!("/v1/invitations/{id}"), None)
                .await?;
            expect_success(status, &out)?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        InviteCommand::Revoke { id, reason } => {
            id.parse::<crate::ids::OpaqueId>()
                .map_err(|e| anyhow::anyhow!("{id:?} is not an id: {e}"))?;
            let (status, out) = client
                .call(
                    Method::DELETE,
                    &format!("/v1/invitations/{id}"),
                    Some(&json!({"reason": reason})),
                )
                .await?;
            expect_success(status, &out)?;
            eprintln!("revoked: {}", summary(&out));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documents_are_spliced_in_byte_for_byte() {
        let manifest = b"{ \"version\" :  \"x\" }";
        let body = issue_body(&json!({"partner": "clinic-a"}), Some(manifest), None).unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(
            text.contains("\"manifest\":{ \"version\" :  \"x\" }"),
            "{text}"
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["partner"], "clinic-a");
        let plain = issue_body(&json!({"partner": "p"}), None, None).unwrap();
        assert_eq!(plain, br#"{"partner":"p"}"#);
    }
}
