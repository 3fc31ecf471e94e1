//! Backup targets: where backups are stored, named on the server (`--backup-target name=url`)
//! and reached through the `object_store` crate, so a directory, S3 (and S3-compatible
//! servers), Google Cloud Storage and Azure Blob Storage all look the same to the rest.
//!
//! Credentials never travel in a call: object_store reads them from the gateway's environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_KEY`, …).
//! Uploads are multipart: a store lists an object only once all of it arrived (a directory
//! writes a staging file and renames it), so a failed or killed upload never leaves a complete
//! looking object; what it does leave is removed by [`Target::remove_partials`].

use std::{
    collections::BTreeMap,
    path::{Path as FsPath, PathBuf},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    azure::{AzureConfigKey, MicrosoftAzureBuilder},
    gcp::{GoogleCloudStorageBuilder, GoogleConfigKey},
    local::LocalFileSystem,
    path::Path,
};

use crate::core::error::{Error, Result};

/// The name of the target every gateway has: `<data-dir>/backups` unless configured otherwise.
pub const DEFAULT_TARGET: &str = "local";

/// Parts of a multipart upload in flight at once, at most: with 8 MiB parts, the memory an
/// upload holds stays near 24 MiB whatever the backup's size.
const UPLOAD_CONCURRENCY: usize = 2;
/// Bytes per uploaded part (S3 needs at least 5 MiB for all but the last).
const PART_BYTES: usize = 8 << 20;

/// One configured target.
pub struct Target {
    /// Its name on this server.
    pub name: String,
    /// Its URL as configured (a directory for local targets), shown in `location`.
    pub url: String,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The directory of a local target, for cleaning up partial files.
    local_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish()
    }
}

/// The configured targets, by name.
#[derive(Debug, Clone)]
pub struct Targets {
    targets: BTreeMap<String, Arc<Target>>,
}

/// Retries of one request: a few, quickly, so that an unreachable target fails the backup in
/// seconds (the schedule retries it with backoff) rather than after object_store's default of
/// three minutes.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
    }
}

/// Timeouts of a store's requests: connecting, and a whole request (an 8 MiB part).
const TIMEOUTS: [(ClientConfigKey, &str); 2] = [
    (ClientConfigKey::ConnectTimeout, "5s"),
    (ClientConfigKey::Timeout, "60s"),
];

/// Sets [`TIMEOUTS`] on a builder made from the environment, through `set` (its
/// `with_config`). Unlike `with_client_options`, which replaces every client option, this keeps
/// those the environment gave (`AWS_ALLOW_HTTP` for an `http://` endpoint, proxies,
/// certificates).
fn with_timeouts<B>(builder: B, set: impl Fn(B, ClientConfigKey, &str) -> B) -> B {
    TIMEOUTS
        .iter()
        .fold(builder, |b, &(key, value)| set(b, key, value))
}

fn config_err(name: &str, url: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(
        "backup_target",
        format!("backup target {name:?} ({url}) cannot be used: {e}"),
    )
}

impl Target {
    /// Opens the target `name` at `url`: `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `az://container/prefix` (or `abfs://`, `azure://`), `file:///dir` or a plain directory
    /// path (created when missing).
    pub fn open(name: &str, url: &str) -> Result<Self> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("file", url));
        let bucket_and_prefix = |rest: &str| -> Result<Path> {
            let prefix = rest.split_once('/').map_or("", |(_, p)| p);
            Path::parse(prefix.trim_matches('/')).map_err(|e| config_err(name, url, e))
        };
        let (store, prefix, local_dir): (Arc<dyn ObjectStore>, Path, Option<PathBuf>) = match scheme
        {
            "file" => {
                let dir = PathBuf::from(rest);
                if !dir.is_absolute() {
                    return Err(config_err(
                        name,
                        url,
                        "a directory must be an absolute path",
                    ));
                }
                std::fs::create_dir_all(&dir).map_err(|e| config_err(name, url, e))?;
                let fs =
                    LocalFileSystem::new_with_prefix(&dir).map_err(|e| config_err(name, url, e))?;
                (Arc::new(fs), Path::default(), Some(dir))
            }
            "s3" | "s3a" => {
                let s3 = with_timeouts(AmazonS3Builder::from_env(), |b, k, v| {
                    b.with_config(AmazonS3ConfigKey::Client(k), v)
                })
                .with_url(url)
                .with_retry(retry())
                .build()
                .map_err(|e| config_err(name, url, e))?;
                (Arc::new(s3), bucket_and_prefix(rest)?, None)
            }
            "gs" => {
                let gcs = with_timeouts(GoogleCloudStorageBuilder::from_env(), |b, k, v| {
                    b.with_config(GoogleConfigKey::Client(k), v)
                })
                .with_url(url)
                .with_retry(retry())
                .build()
                .map_err(|e| config_err(name, url, e))?;
                (Arc::new(gcs), bucket_and_prefix(rest)?, None)
            }
            "az" | "abfs" | "abfss" | "azure" => {
                let az = with_timeouts(MicrosoftAzureBuilder::from_env(), |b, k, v| {
                    b.with_config(AzureConfigKey::Client(k), v)
                })
                .with_url(url)
                .with_retry(retry())
                .build()
                .map_err(|e| config_err(name, url, e))?;
                (Arc::new(az), bucket_and_prefix(rest)?, None)
            }
            other => {
                return Err(config_err(
                    name,
                    url,
                    format!(
                        "unknown scheme {other:?}: use a directory, file://, s3://, gs:// or \
                             az://"
                    ),
                ));
            }
        };
        Ok(Self {
            name: name.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            store,
            prefix,
            local_dir,
        })
    }

    fn path(&self, object: &str) -> Path {
        object
            .split('/')
            .fold(self.prefix.clone(), |p, part| p.join(part))
    }

    /// Where `object` is, for people: the target's URL and the object's name under it.
    pub fn location(&self, object: &str) -> String {
        format!("{}/{object}", self.url)
    }

    fn unavailable(&self, what: &str, e: object_store::Error) -> Error {
        Error::Unavailable(format!(
            "backup target {:?} ({}): {what} failed: {e}",
            self.name, self.url
        ))
    }

    /// Starts a multipart upload of `object`.
    pub async fn upload(&self, object: &str) -> Result<Upload> {
        let upload = self
            .store
            .put_multipart(&self.path(object))
            .await
            .map_err(|e| self.unavailable("starting an upload", e))?;
        Ok(Upload {
            write: WriteMultipart::new_with_chunk_size(upload, PART_BYTES),
        })
    }

    /// Stores a small object in one request.
    pub async fn put(&self, object: &str, data: Vec<u8>) -> Result<()> {
        self.store
            .put(&self.path(object), PutPayload::from(data))
            .await
            .map(drop)
            .map_err(|e| self.unavailable("writing", e))
    }

    /// Reads an object as a stream of pieces. A missing object is [`Error::DataLoss`]: the
    /// catalog says it was stored.
    pub async fn get(&self, object: &str) -> Result<BoxStream<'static, Result<Bytes>>> {
        let name = self.name.clone();
        match self.store.get(&self.path(object)).await {
            Ok(r) => Ok(r
                .into_stream()
                .map(move |piece| {
                    piece.map_err(|e| {
                        Error::Unavailable(format!("backup target {name:?}: reading failed: {e}"))
                    })
                })
                .boxed()),
            Err(object_store::Error::NotFound { .. }) => Err(Error::DataLoss(format!(
                "the backup's object {} is missing from target {:?}",
                self.location(object),
                self.name
            ))),
            Err(e) => Err(self.unavailable("reading", e)),
        }
    }

    /// Reads a small object whole.
    pub async fn get_all(&self, object: &str) -> Result<Vec<u8>> {
        let mut stream = self.get(object).await?;
        let mut data = Vec::new();
        while let Some(piece) = stream.next().await {
            data.extend_from_slice(&piece?);
            if data.len() > 16 << 20 {
                return Err(Error::DataLoss(format!(
                    "{} is larger than any manifest",
                    self.location(object)
                )));
            }
        }
        Ok(data)
    }

    /// Deletes an object; a missing one is fine.
    pub async fn delete(&self, object: &str) -> Result<()> {
        match self.store.delete(&self.path(object)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.unavailable("deleting", e)),
        }
    }

    /// Removes what an interrupted upload of `object` may have left: a local target's staging
    /// files (`<object>#<n>`). Object stores discard unfinished multipart uploads themselves
    /// (S3 with a lifecycle rule for incomplete uploads, which the README recommends).
    pub fn remove_partials(&self, object: &str) {
        let Some(dir) = &self.local_dir else { return };
        let file = dir.join(object);
        let (Some(parent), Some(stem)) = (file.parent(), file.file_name()) else {
            return;
        };
        let stem = format!("{}#", stem.to_string_lossy());
        let Ok(entries) = std::fs::read_dir(parent) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&stem) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The directory of a local target.
    pub fn local_dir(&self) -> Option<&FsPath> {
        self.local_dir.as_deref()
    }
}

/// An upload in progress.
pub struct Upload {
    write: WriteMultipart,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upload")
    }
}

impl Upload {
    /// Adds bytes, waiting while too many parts are in flight (the backpressure that keeps
    /// memory bounded).
    pub async fn write(&mut self, target: &Target, data: &[u8]) -> Result<()> {
        self.write
            .wait_for_capacity(UPLOAD_CONCURRENCY)
            .await
            .map_err(|e| target.unavailable("uploading", e))?;
        self.write.write(data);
        Ok(())
    }

    /// Completes the upload: only now does the object exist.
    pub async fn finish(self, target: &Target) -> Result<()> {
        self.write
            .finish()
            .await
            .map(drop)
            .map_err(|e| target.unavailable("completing the upload", e))
    }

    /// Abandons the upload and what it sent.
    pub async fn abort(self) {
        if let Err(e) = self.write.abort().await {
            tracing::debug!(error = %e, "aborting an upload failed");
        }
    }
}

impl Targets {
    /// Opens the configured targets; the default one, [`DEFAULT_TARGET`], is `default_dir`
    /// unless configured by name.
    pub fn open(configured: &[(String, String)], default_dir: &FsPath) -> Result<Self> {
        let mut targets = BTreeMap::new();
        for (name, url) in configured {
            if targets
                .insert(name.clone(), Arc::new(Target::open(name, url)?))
                .is_some()
            {
                return Err(Error::invalid(
                    "backup_target",
                    format!("backup target {name:?} is configured twice"),
                ));
            }
        }
        if !targets.contains_key(DEFAULT_TARGET) {
            let url = default_dir.to_string_lossy();
            targets.insert(
                DEFAULT_TARGET.to_owned(),
                Arc::new(Target::open(DEFAULT_TARGET, &url)?),
            );
        }
        Ok(Self { targets })
    }

    /// The target `name` (the default one for an empty name).
    pub fn get(&self, name: &str) -> Result<Arc<Target>> {
        let name = if name.is_empty() {
            DEFAULT_TARGET
        } else {
            name
        };
        self.targets
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                what: "backup target",
                name: format!(
                    "{name} (this server has: {})",
                    self.targets.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gateway's timeouts go on top of the client options the environment gave: an S3
    /// endpoint on plain HTTP (AWS_ALLOW_HTTP=true) stays allowed.
    #[test]
    fn timeouts_keep_the_client_options_of_the_environment() {
        let allow_http = AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp);
        let builder = AmazonS3Builder::new().with_config(allow_http, "true");
        let builder = with_timeouts(builder, |b, k, v| {
            b.with_config(AmazonS3ConfigKey::Client(k), v)
        });
        assert_eq!(
            builder.get_config_value(&allow_http).as_deref(),
            Some("true")
        );
        let timeout = |k| builder.get_config_value(&AmazonS3ConfigKey::Client(k));
        assert_eq!(timeout(ClientConfigKey::Timeout).as_deref(), Some("60s"));
        assert_eq!(
            timeout(ClientConfigKey::ConnectTimeout).as_deref(),
            Some("5s")
        );
    }
}
