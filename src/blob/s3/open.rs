//! Builds the `object_store` S3 client from validated settings: endpoint, addressing
//! style, static keys (never the instance-metadata or profile chains: the keys are exactly
//! the configured ones), the trusted CA, and bounded retries.

use std::io;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{BackoffConfig, Certificate, ClientOptions, RetryConfig};

use super::settings::{S3Credentials, S3Keys, S3Settings};
use crate::blob::BlobError;

/// The S3 client for `settings`.
pub(super) fn amazon_s3(settings: &S3Settings) -> Result<AmazonS3, BlobError> {
    let keys = match &settings.credentials {
        S3Credentials::Keys(keys) => keys.clone(),
        S3Credentials::Environment => S3Keys::from_env(|name| std::env::var(name).ok())
            .map_err(|e| config_error(format!("S3 credentials: {e}")))?,
    };
    let text = |secret: &crate::secret::Secret, what: &str| {
        secret
            .expose_str()
            .map(str::to_owned)
            .ok_or_else(|| config_error(format!("the S3 {what} is not UTF-8 text")))
    };
    let mut options = ClientOptions::new()
        .with_allow_http(settings.allow_http)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(120));
    if let Some(ca) = &settings.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| config_error(format!("reading blob.ca_file {}: {e}", ca.display())))?;
        let certs = Certificate::from_pem_bundle(&pem)
            .map_err(|e| config_error(format!("blob.ca_file {}: {e}", ca.display())))?;
        if certs.is_empty() {
            return Err(config_error(format!(
                "blob.ca_file {} holds no certificate",
                ca.display()
            )));
        }
        // Only this CA: a private store's certificate chains to it, nothing else should.
        options = options.with_no_system_certificates(true);
        for cert in certs {
            options = options.with_root_certificate(cert);
        }
    }
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&settings.bucket)
        .with_region(&settings.region)
        .with_access_key_id(text(&keys.access_key_id, "access key id")?)
        .with_secret_access_key(text(&keys.secret_access_key, "secret access key")?)
        .with_virtual_hosted_style_request(!settings.path_style)
        .with_client_options(options)
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
        });
    if let Some(token) = &keys.session_token {
        builder = builder.with_token(text(token, "session token")?);
    }
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(if settings.path_style {
            endpoint.clone()
        } else {
            // Virtual-hosted addressing against a custom endpoint: the bucket is part of
            // the host, as the client expects.
            match endpoint.split_once("://") {
                Some((scheme, host)) => format!("{scheme}://{}.{host}", settings.bucket),
                None => endpoint.clone(),
            }
        });
    }
    builder
        .build()
        .map_err(|e| config_error(format!("building the S3 client: {e}")))
}

fn config_error(message: String) -> BlobError {
    BlobError::Io(io::Error::new(io::ErrorKind::InvalidInput, message))
}
