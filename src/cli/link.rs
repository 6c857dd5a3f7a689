//! `sallyport link issue|list|show|revoke` and `sallyport artifact register|show`: the
//! publisher's commands, sent to a running gateway's API (see [`super::api`] for how it is
//! reached and authenticated).

use anyhow::bail;
use clap::Subcommand;
use http::Method;
use serde_json::{Value, json};

use super::api::{ApiArgs, ApiClient, expect_success};
use crate::config::Config;

/// Link commands.
#[derive(Debug, Subcommand)]
pub enum LinkCommand {
    /// Issue a signed link for an artifact; prints the URL (a bearer credential).
    Issue {
        /// The artifact id.
        #[arg(long)]
        artifact: String,
        /// The partner organisation (a-z, 0-9, '.', '_', '-').
        #[arg(long)]
        partner: String,
        /// Lifetime, e.g. 15m, 24h, 7days (default: links.default_ttl).
        #[arg(long)]
        ttl: Option<String>,
        /// Not valid before this Unix time (default: now).
        #[arg(long)]
        not_before: Option<u64>,
        /// GET, HEAD or GET,HEAD (default).
        #[arg(long)]
        methods: Option<String>,
        /// Completed full downloads allowed.
        #[arg(long)]
        max_downloads: Option<u32>,
        /// Bytes allowed in total.
        #[arg(long)]
        max_bytes: Option<u64>,
        /// Only clients inside this CIDR block.
        #[arg(long)]
        client_net: Option<String>,
        /// Only the mTLS client certificate with this SHA-256 (hex).
        #[arg(long, conflicts_with = "client_cert_of")]
        client_cert_sha256: Option<String>,
        /// Only the mTLS client certificate of this configured client (its
        /// `cert_sha256`).
        #[arg(long)]
        client_cert_of: Option<String>,
        /// Serve the download under this file name.
        #[arg(long)]
        file_name: Option<String>,
        /// Print the whole JSON answer instead of the URL.
        #[arg(long)]
        json: bool,
    },
    /// List grants for an artifact, a partner or a batch.
    List {
        /// Grants covering this artifact.
        #[arg(long, group = "filter")]
        artifact: Option<String>,
        /// Grants issued to this partner.
        #[arg(long, group = "filter")]
        partner: Option<String>,
        /// Grants issued for this batch.
        #[arg(long, group = "filter")]
        batch: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one grant (JSON).
    Show {
        /// The grant id.
        grant: String,
    },
    /// Revoke one grant, or every grant of an artifact, partner or batch.
    Revoke {
        /// The grant id.
        #[arg(group = "target")]
        grant: Option<String>,
        /// Every grant covering this artifact.
        #[arg(long, group = "target")]
        artifact: Option<String>,
        /// Every grant issued to this partner.
        #[arg(long, group = "target")]
        partner: Option<String>,
        /// Every grant issued for this batch.
        #[arg(long, group = "target")]
        batch: Option<String>,
        /// Why (goes to the audit trail; no PHI).
        #[arg(long)]
        reason: String,
    },
}

/// Artifact commands.
#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Register a file from the import directory or a completed upload; prints its id.
    Register {
        /// A file name in the gateway's import directory.
        #[arg(long, group = "source")]
        import: Option<String>,
        /// A completed upload's id.
        #[arg(long, group = "source")]
        upload: Option<String>,
        /// Media type (default for .ndjson: application/fhir+ndjson).
        #[arg(long)]
        content_type: Option<String>,
        /// The file name downloads are served under.
        #[arg(long)]
        file_name: Option<String>,
        /// Print the whole JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Show an artifact (JSON).
    Show {
        /// The artifact id.
        artifact: String,
    },
}

/// Runs a link command.
pub async fn run_link(
    cmd: LinkCommand,
    api: &ApiArgs,
    config: Option<&Config>,
) -> anyhow::Result<()> {
    let client = ApiClient::from_args(api, config)?;
    match cmd {
        LinkCommand::Issue {
            artifact,
            partner,
            ttl,
            not_before,
            methods,
            max_downloads,
            max_bytes,
            client_net,
            client_cert_sha256,
            client_cert_of,
            file_name,
            json,
        } => {
            let mut body = json!({"artifact": artifact, "partner": partner});
            let optional = [
                ("ttl", ttl.map(Value::from)),
                ("not_before", not_before.map(Value::from)),
                ("methods", methods.map(Value::from)),
                ("max_downloads", max_downloads.map(Value::from)),
                ("max_bytes", max_bytes.map(Value::from)),
                ("client_net", client_net.map(Value::from)),
                ("client_cert_sha256", client_cert_sha256.map(Value::from)),
                ("client_cert_of", client_cert_of.map(Value::from)),
                ("file_name", file_name.map(Value::from)),
            ];
            for (k, v) in optional {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            let (status, out) = client.call(Method::POST, "/v1/links", Some(&body)).await?;
            expect_success(status, &out)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{}", out["url"].as_str().unwrap_or_default());
                eprintln!(
                    "grant {} expires {}",
                    out["grant"].as_str().unwrap_or_default(),
                    out["expires_at"].as_str().unwrap_or_default()
                );
            }
        }
        LinkCommand::List {
            artifact,
            partner,
            batch,
            json,
        } => {
            // Validated here so nothing but an id or a name reaches the query string.
            let name = |s: &str| -> anyhow::Result<()> {
                s.parse::<crate::grant::PartnerName>()
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("{s:?}: {e}"))
            };
            let query = match (artifact, partner, batch) {
                (Some(a), None, None) => format!("artifact={}", path_id(&a)?),
                (None, Some(p), None) => {
                    name(&p)?;
                    format!("partner={p}")
                }
                (None, None, Some(b)) => {
                    name(&b)?;
                    format!("batch={b}")
                }
                _ => bail!("give exactly one of --artifact, --partner, --batch"),
            };
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let path = match &after {
                    Some(a) => format!("/v1/links?{query}&after={a}"),
                    None => format!("/v1/links?{query}"),
                };
                let (status, out) = client.call(Method::GET, &path, None).await?;
                expect_success(status, &out)?;
                all.extend(out["grants"].as_array().cloned().unwrap_or_default());
                match out["next"].as_str() {
                    Some(n) => after = Some(n.to_owned()),
                    None => break,
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!(
                    "grant                       status         partner          expires_at            limits"
                );
                for g in &all {
                    let limits = &g["limits"];
                    println!(
                        "{:<27} {:<14} {:<16} {:<21} downloads={} bytes={}",
                        g["grant"].as_str().unwrap_or_default(),
                        g["status"].as_str().unwrap_or_default(),
                        g["partner"].as_str().unwrap_or_default(),
                        g["expires_at"].as_str().unwrap_or_default(),
                        limits["max_downloads"],
                        limits["max_bytes"],
                    );
                }
            }
        }
        LinkCommand::Show { grant } => {
            let (status, out) = client
                .call(
                    Method::GET,
                    &format!("/v1/links/{}", path_id(&grant)?),
                    None,
                )
                .await?;
            expect_success(status, &out)?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        LinkCommand::Revoke {
            grant,
            artifact,
            partner,
            batch,
            reason,
        } => {
            let (status, out) = match (grant, artifact, partner, batch) {
                (Some(g), None, None, None) => {
                    client
                        .call(
                            Method::DELETE,
                            &format!("/v1/links/{}", path_id(&g)?),
                            Some(&json!({"reason": reason})),
                        )
                        .await?
                }
                (None, a, p, b) if [&a, &p, &b].iter().filter(|x| x.is_some()).count() == 1 => {
                    let mut body = json!({"reason": reason});
                    for (k, v) in [("artifact", a), ("partner", p), ("batch", b)] {
                        if let Some(v) = v {
                            body[k] = Value::from(v);
                        }
                    }
                    client
                        .call(Method::POST, "/v1/links/revoke", Some(&body))
                        .await?
                }
                _ => bail!("give a grant id, or exactly one of --artifact, --partner, --batch"),
            };
            expect_success(status, &out)?;
            match out["revoked"].as_u64() {
                Some(n) => println!(
                    "revoked {n} grant(s); {} were revoked already",
                    out["already_revoked"]
                ),
                None => println!(
                    "grant {} is revoked",
                    out["grant"].as_str().unwrap_or_default()
                ),
            }
        }
    }
    Ok(())
}

/// Runs an artifact command.
pub async fn run_artifact(
    cmd: ArtifactCommand,
    api: &ApiArgs,
    config: Option<&Config>,
) -> anyhow::Result<()> {
    let client = ApiClient::from_args(api, config)?;
    match cmd {
        ArtifactCommand::Register {
            import,
            upload,
            content_type,
            file_name,
            json,
        } => {
            let mut body = match (import, upload) {
                (Some(i), None) => json!({"import": i}),
                (None, Some(u)) => json!({"upload": u}),
                _ => bail!("give exactly one of --import, --upload"),
            };
            if let Some(t) = content_type {
                body["content_type"] = Value::from(t);
            }
            if let Some(f) = file_name {
                body["file_name"] = Value::from(f);
            }
            let (status, out) = client
                .call(Method::POST, "/v1/artifacts", Some(&body))
                .await?;
            expect_success(status, &out)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{}", out["artifact"].as_str().unwrap_or_default());
            }
        }
        ArtifactCommand::Show { artifact } => {
            let (status, out) = client
                .call(
                    Method::GET,
                    &format!("/v1/artifacts/{}", path_id(&artifact)?),
                    None,
                )
                .await?;
            expect_success(status, &out)?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(())
}

/// An id as a path segment: only the opaque-id alphabet is let through.
fn path_id(id: &str) -> anyhow::Result<&str> {
    id.parse::<crate::ids::OpaqueId>()
        .map_err(|e| anyhow::anyhow!("{id:?} is not an id: {e}"))?;
    Ok(id)
}
