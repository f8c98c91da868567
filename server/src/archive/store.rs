//! The object store the archive lives in: a local directory (`file://`, by default
//! `archive/` in the data directory) or an S3-compatible bucket (`s3://bucket/prefix`),
//! through the `object_store` crate. Credentials come from `[archive.s3]` (the secret from
//! `BITESIZE_ARCHIVE__S3__SECRET_ACCESS_KEY` or a file) or the usual `AWS_*` variables, and
//! are never logged: only the URL is shown.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload};

use super::catalog::{ArchivedObject, Catalog};
use super::object_name::ObjectName;
use crate::config::Config;
use crate::{Error, Result};

pub struct ArchiveStore {
    store: Arc<dyn ObjectStore>,
    url: String,
}

impl ArchiveStore {
    /// Opens the configured store (creating the local directory when it is one).
    pub fn open(config: &Config) -> Result<ArchiveStore> {
        let url = config.archive_url();
        let parsed = openidconnect::url::Url::parse(&url)
            .map_err(|e| Error::Config(format!("archive.url: {url:?}: {e}")))?;
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "file" => {
                let dir = parsed.to_file_path().map_err(|()| {
                    Error::Config(format!("archive.url: {url:?} is not an absolute file path"))
                })?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::Io(format!("creating {}", dir.display()), e))?;
                Arc::new(LocalFileSystem::new_with_prefix(&dir)?)
            }
            "s3" => {
                let s3 = &config.archive.s3;
                let bucket = parsed.host_str().unwrap_or_default();
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_allow_http(s3.allow_http)
                    .with_virtual_hosted_style_request(s3.virtual_hosted_style);
                if let Some(region) = &s3.region {
                    builder = builder.with_region(region);
                }
                if let Some(endpoint) = &s3.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(key) = &s3.access_key_id {
                    builder = builder.with_access_key_id(key);
                }
                if let Some(secret) = s3.secret_access_key().map_err(Error::Config)? {
                    builder = builder.with_secret_access_key(secret.expose());
                }
                if let Some(token) = &s3.session_token {
                    builder = builder.with_token(token.expose());
                }
                let bucket_store = builder.build()?;
                let prefix = parsed.path().trim_matches('/');
                if prefix.is_empty() {
                    Arc::new(bucket_store)
                } else {
                    Arc::new(PrefixStore::new(bucket_store, prefix))
                }
            }
            other => {
                return Err(Error::Config(format!(
                    "archive.url: scheme {other:?}: use file:///dir or s3://bucket/prefix"
                )))
            }
        };
        Ok(ArchiveStore { store, url })
    }

    /// Where the archive is (no credentials in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every archive object of `namespace` (other files under its prefix are ignored).
    pub async fn catalog(&self, namespace: &str) -> Result<Catalog> {
        let prefix = Path::from(namespace);
        let mut catalog = Catalog::default();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.try_next().await? {
            if let Some(name) = ObjectName::parse(&meta.location) {
                catalog.add(ArchivedObject {
                    name,
                    size: meta.size,
                });
            }
        }
        Ok(catalog)
    }

    /// The namespaces with anything in the archive.
    pub async fn namespaces(&self) -> Result<Vec<String>> {
        let listing = self.store.list_with_delimiter(None).await?;
        let mut names: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .filter(|n| bitesize_record::validate_namespace(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Writes one object whole (atomically: it exists complete or not at all).
    pub async fn put(&self, name: &ObjectName, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&name.path(), PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    pub async fn get(&self, name: &ObjectName) -> Result<actix_web::web::Bytes> {
        Ok(self.store.get(&name.path()).await?.bytes().await?)
    }

    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
