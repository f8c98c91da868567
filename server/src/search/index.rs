//! One Tantivy index per namespace under `data/index/<namespace>/`, each with its single
//! writer. The Kafka offsets a commit covers are stored in that commit's payload, so the
//! index itself says where ingest must resume: a crash repeats nothing and loses nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};

use super::schema::{index_settings, schema, Fields};
use crate::{Error, Result};

/// Next offset to read, by topic and partition.
pub type Offsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// What each index commit carries.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CommitPayload {
    offsets: Offsets,
}

/// How much a namespace's index holds.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct IndexStats {
    /// Records searchable now.
    pub documents: u64,
    /// Size of the index on disk.
    pub bytes: u64,
}

pub struct NamespaceIndex {
    pub name: String,
    pub fields: Fields,
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    /// Deletes are queued in the writer but not committed: the ingest thread commits them
    /// with its offsets, so the commit payload stays the truth about what the index holds.
    pending_changes: std::sync::atomic::AtomicBool,
}

impl NamespaceIndex {
    fn open_or_create(dir: &Path, name: &str, writer_memory: usize) -> Result<NamespaceIndex> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Io(format!("creating {}", dir.display()), e))?;
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(dir)
            .map_err(|e| Error::Internal(format!("opening index {}: {e}", dir.display())))?;
        let index = Index::builder()
            .schema(schema)
            .settings(index_settings())
            .open_or_create(directory)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer(writer_memory)?;
        Ok(NamespaceIndex {
            name: name.to_owned(),
            fields,
            dir: dir.to_owned(),
            index,
            reader,
            writer: Mutex::new(writer),
            pending_changes: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The offsets stored with the last commit.
    pub fn committed_offsets(&self) -> Result<Offsets> {
        let metas = self.index.load_metas()?;
        match metas.payload {
            Some(payload) => serde_json::from_str::<CommitPayload>(&payload)
                .map(|p| p.offsets)
                .map_err(|e| Error::Internal(format!("index {} payload: {e}", self.name))),
            None => Ok(Offsets::new()),
        }
    }

    pub fn add(&self, doc: TantivyDocument) -> Result<()> {
        self.writer.lock().expect("writer lock").add_document(doc)?;
        Ok(())
    }

    /// Makes everything added so far durable and searchable, together with `offsets`.
    pub fn commit(&self, offsets: &Offsets) -> Result<()> {
        let payload = serde_json::to_string(&CommitPayload {
            offsets: offsets.clone(),
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        let mut writer = self.writer.lock().expect("writer lock");
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        drop(writer);
        self.reader.reload()?;
        Ok(())
    }

    /// Queues a delete that does not come from ingest (retention, rehydrate) in the writer;
    /// the ingest writer commits it with its next commit. Returns its opstamp: it is
    /// committed once the index's last commit has a greater one.
    pub fn queue_delete(&self, query: Box<dyn tantivy::query::Query>) -> Result<u64> {
        let opstamp = self
            .writer
            .lock()
            .expect("writer lock")
            .delete_query(query)?;
        self.pending_changes
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(opstamp)
    }

    /// Queues a document that does not come from ingest (a rehydrated record), committed
    /// like [`NamespaceIndex::queue_delete`]; returns its opstamp.
    pub fn queue_add(&self, doc: TantivyDocument) -> Result<u64> {
        let opstamp = self.writer.lock().expect("writer lock").add_document(doc)?;
        self.pending_changes
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(opstamp)
    }

    /// Whether queued changes (deletes, rehydrated records) wait for a commit; clears the flag.
    pub fn take_pending_changes(&self) -> bool {
        self.pending_changes
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// Records searchable now and the index's size on disk (files in its directory, not
    /// counting what the writer holds in memory).
    pub fn stats(&self) -> Result<IndexStats> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| Error::Io(format!("listing {}", self.dir.display()), e))?;
        let bytes = entries
            .flatten()
            .filter_map(|entry| entry.metadata().ok())
            .filter(|metadata| metadata.is_file())
            .map(|metadata| metadata.len())
            .sum();
        Ok(IndexStats {
            documents: self.searcher().num_docs(),
            bytes,
        })
    }

    pub fn searcher(&self) -> tantivy::Searcher {
        self.reader.searcher()
    }

    pub fn tantivy_index(&self) -> &Index {
        &self.index
    }
}

/// Every namespace index of this server.
pub struct IndexRegistry {
    dir: PathBuf,
    writer_memory: usize,
    indexes: RwLock<HashMap<String, Arc<NamespaceIndex>>>,
}

impl IndexRegistry {
    /// Opens every index found under `dir`.
    pub fn open(dir: &Path, writer_memory_mb: usize) -> Result<IndexRegistry> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Io(format!("creating {}", dir.display()), e))?;
        let registry = IndexRegistry {
            dir: dir.to_owned(),
            writer_memory: writer_memory_mb * 1024 * 1024,
            indexes: RwLock::new(HashMap::new()),
        };
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::Io(format!("listing {}", dir.display()), e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && bitesize_record::validate_namespace(&name).is_ok() {
                registry.get_or_create(&name)?;
            }
        }
        Ok(registry)
    }

    pub fn get(&self, namespace: &str) -> Option<Arc<NamespaceIndex>> {
        self.indexes
            .read()
            .expect("registry lock")
            .get(namespace)
            .cloned()
    }

    pub fn get_or_create(&self, namespace: &str) -> Result<Arc<NamespaceIndex>> {
        if let Some(index) = self.get(namespace) {
            return Ok(index);
        }
        bitesize_record::validate_namespace(namespace)
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        let mut indexes = self.indexes.write().expect("registry lock");
        if let Some(index) = indexes.get(namespace) {
            return Ok(index.clone());
        }
        let index = Arc::new(NamespaceIndex::open_or_create(
            &self.dir.join(namespace),
            namespace,
            self.writer_memory,
        )?);
        indexes.insert(namespace.to_owned(), index.clone());
        Ok(index)
    }

    /// Namespaces with an index, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .indexes
            .read()
            .expect("registry lock")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The committed offsets of every index, merged.
    pub fn committed_offsets(&self) -> Result<Offsets> {
        let mut all = Offsets::new();
        for name in self.names() {
            if let Some(index) = self.get(&name) {
                for (topic, partitions) in index.committed_offsets()? {
                    all.entry(topic).or_default().extend(partitions);
                }
            }
        }
        Ok(all)
    }
}
