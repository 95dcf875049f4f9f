//! Manifest versions and the HEAD pointer of one namespace.
//!
//! Commit protocol (DESIGN §3.4): version N+1 is created with put-if-absent
//! — that single request is the commit point, and of concurrent committers
//! exactly one wins it; the others get `Error::ManifestConflict` and must
//! reload and retry. HEAD is advanced afterwards by CAS, never backwards.
//! HEAD may lag (a committer can die between the two requests), so
//! `load_current` reads HEAD and then rolls forward over any newer
//! committed versions. HEAD only saves readers a LIST.
//!
//! Invariants: a manifest's `version` equals the number in its key (checked
//! on every load); HEAD never points at a version that was not committed.

use bytes::Bytes;
use reef_format::{Head, Manifest};

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::store::{DynStore, Object, PutOutcome, Tag, list_all};

/// Most CAS attempts to advance HEAD before giving up (the commit itself
/// is already durable; readers roll forward past a lagging HEAD).
pub const HEAD_CAS_RETRIES_MAX: u32 = 64;

/// Manifests and HEAD of one namespace.
#[derive(Clone, Debug)]
pub struct ManifestStore {
    store: DynStore,
    layout: Layout,
}

/// What a successful commit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The committed version.
    pub version: u64,
    /// Whether this call moved HEAD (false if someone already moved it
    /// further, HEAD contention outlasted the retries, or moving it
    /// failed).
    pub head_advanced: bool,
    /// Why moving HEAD failed, if it did. The commit stands (readers roll
    /// forward past a stale HEAD); callers report this, never drop it.
    pub head_error: Option<String>,
}

/// Rounds `load_current` makes when its reads race commits or GC.
const LOAD_ATTEMPTS_MAX: u32 = 8;

/// HEAD as read.
enum HeadRead {
    Missing,
    Names(u64, Tag),
    /// Present but not decodable (its tag, for the CAS that replaces it).
    Unreadable(Tag),
}

impl ManifestStore {
    /// Manifests of the namespace `layout` describes.
    pub fn new(store: DynStore, layout: Layout) -> ManifestStore {
        ManifestStore { store, layout }
    }

    /// The namespace layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The store.
    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// Loads manifest `version`, or `None` if it was never committed (or
    /// has been garbage-collected).
    pub async fn load(&self, version: u64) -> Result<Option<Manifest>> {
        let key = self.layout.manifest_key(version);
        let Some(obj) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let manifest = Manifest::decode(&obj.bytes, &key)?;
        if manifest.version != version {
            return Err(
                self.inconsistent(format!("{key} holds manifest version {}", manifest.version))
            );
        }
        Ok(Some(manifest))
    }

    /// HEAD's version and tag, if HEAD exists.
    ///
    /// HEAD is a hint that a listing can replace: an unreadable HEAD reads
    /// as the newest listed version (with the damaged object's tag, so the
    /// next `advance_head` replaces it by CAS). That keeps M2 (a HEAD read
    /// yields at least any version HEAD ever reached): HEAD only ever names
    /// committed versions, GC never deletes the newest, and a listing sees
    /// every completed put (DESIGN §5). Reads and writes go on; `reef
    /// verify` still reports the object and `reef repair` rewrites it.
    pub async fn head(&self) -> Result<Option<(u64, Tag)>> {
        let read = self.read_head().await?;
        self.head_of(read).await
    }

    /// HEAD's object as stored (`None`: absent), for `head_version_of`.
    pub async fn get_head(&self) -> Result<Option<Object>> {
        self.store.get(&self.layout.head_key()).await
    }

    /// What HEAD names, from HEAD as read by the caller (`obj`, `None`
    /// when absent), e.g. in the same store call as a WAL put.
    pub async fn head_version_of(&self, obj: Option<Object>) -> Result<Option<u64>> {
        let read = self.decode_head(obj)?;
        Ok(self.head_of(read).await?.map(|(v, _)| v))
    }

    async fn head_of(&self, read: HeadRead) -> Result<Option<(u64, Tag)>> {
        match read {
            HeadRead::Missing => Ok(None),
            HeadRead::Names(version, tag) => Ok(Some((version, tag))),
            HeadRead::Unreadable(tag) => match Box::pin(self.list_versions()).await?.last() {
                Some(&v) => Ok(Some((v, tag))),
                // HEAD existed, so a manifest was committed: none listed
                // means they are lost, not that the namespace is new.
                None => Err(self.inconsistent(format!(
                    "{} is unreadable and no manifest is listed: run `reef rebuild`",
                    self.layout.head_key()
                ))),
            },
        }
    }

    async fn read_head(&self) -> Result<HeadRead> {
        let obj = self.get_head().await?;
        self.decode_head(obj)
    }

    fn decode_head(&self, obj: Option<Object>) -> Result<HeadRead> {
        let key = self.layout.head_key();
        let Some(obj) = obj else {
            return Ok(HeadRead::Missing);
        };
        match Head::decode(&obj.bytes, &key) {
            Ok(head) => Ok(HeadRead::Names(head.manifest_version, obj.tag)),
            Err(e) if e.is_corruption() => {
                tracing::warn!(
                    key = %key,
                    error = %e,
                    "HEAD is unreadable; the newest manifest is found by listing"
                );
                Ok(HeadRead::Unreadable(obj.tag))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The version HEAD names, if HEAD exists.
    pub async fn head_version(&self) -> Result<Option<u64>> {
        Ok(self.head().await?.map(|(v, _)| v))
    }

    /// Makes sure HEAD names `version` or a later one, moving it if needed,
    /// and confirms it by reading HEAD back. GC calls this before deleting
    /// anything `version` made unreachable: a writer that reads HEAD after
    /// its WAL put then sees at least `version` (the stale-writer fence).
    pub async fn ensure_head_at_least(&self, version: u64) -> Result<()> {
        self.advance_head(version).await?;
        match self.head_version().await? {
            Some(h) if h >= version => Ok(()),
            head => Err(Error::HeadBehind {
                namespace: self.layout.namespace().to_owned(),
                version,
                head,
            }),
        }
    }

    /// All committed versions still in the bucket, ascending.
    pub async fn list_versions(&self) -> Result<Vec<u64>> {
        let listed = list_all(self.store.as_ref(), &self.layout.manifest_prefix()).await?;
        let mut versions: Vec<u64> = listed
            .iter()
            .filter_map(|o| self.layout.parse_manifest_key(&o.key))
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }

    /// The newest committed manifest, or `None` for a namespace with none.
    /// A LIST or HEAD read that races a commit or a collection is retried
    /// (at most `LOAD_ATTEMPTS_MAX` rounds) rather than taken for damage.
    pub async fn load_current(&self) -> Result<Option<Manifest>> {
        let mut attempts = 0;
        let mut current = loop {
            attempts += 1;
            if let Some((version, _)) = self.head().await?
                && let Some(m) = self.load(version).await?
            {
                break Some(m);
            }
            // No HEAD (a new namespace, or a first committer that died
            // before writing it), or HEAD names a version that is gone (a
            // lagging HEAD whose version was collected): a LIST settles it.
            break match self.list_versions().await?.last() {
                Some(&v) => match self.load(v).await? {
                    Some(m) => Some(m),
                    // Collected between our LIST and our GET (GC keeps the
                    // newest versions, so a newer one exists): start over.
                    None if attempts < LOAD_ATTEMPTS_MAX => continue,
                    None => {
                        return Err(self.inconsistent(format!(
                            "{} was listed but cannot be read",
                            self.layout.manifest_key(v)
                        )));
                    }
                },
                // Nothing listed: either there is no manifest, or the first
                // commit landed between our HEAD read and our LIST (found
                // by the simulation). HEAD is written only after its
                // manifest, so a HEAD read now settles it.
                None => match self.head().await? {
                    Some((version, _)) => match self.load(version).await? {
                        Some(m) => Some(m),
                        None if attempts < LOAD_ATTEMPTS_MAX => continue,
                        None => {
                            return Err(self.inconsistent(format!(
                                "HEAD points at manifest {version}, but no manifest exists"
                            )));
                        }
                    },
                    None => None,
                },
            };
        };
        // Roll forward past versions committed after HEAD was last moved.
        while let Some(m) = &current {
            match self.load(m.version + 1).await? {
                Some(next) => current = Some(next),
                None => break,
            }
        }
        Ok(current)
    }

    /// Commits `manifest` as version `manifest.version` (the caller's base
    /// plus one), then advances HEAD to it.
    pub async fn commit(&self, manifest: &Manifest) -> Result<Committed> {
        let key = self.layout.manifest_key(manifest.version);
        let bytes = Bytes::from(manifest.encode()?);
        // Check twice: what we are about to commit must decode.
        Manifest::decode(&bytes, &key)?;
        match self.store.put_if_absent(&key, bytes.clone()).await? {
            PutOutcome::Written(_) => {}
            // Ours if an earlier attempt landed and only its response was
            // lost: the bytes say whose it is.
            PutOutcome::ConditionFailed if self.holds(&key, &bytes).await? => {}
            PutOutcome::ConditionFailed => {
                return Err(Error::ManifestConflict {
                    namespace: self.layout.namespace().to_owned(),
                    version: manifest.version,
                });
            }
        }
        // The commit stands from here on. Moving HEAD only saves readers a
        // probe (they roll forward), so a failure to move it must not make
        // the commit look failed (a caller would stop short of adopting
        // what it committed); it is returned for the caller to report.
        let (head_advanced, head_error) = match self.advance_head(manifest.version).await {
            Ok(moved) => (moved, None),
            Err(e) => (false, Some(e.to_string())),
        };
        Ok(Committed {
            version: manifest.version,
            head_advanced,
            head_error,
        })
    }

    async fn holds(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        Ok(self
            .store
            .get(key)
            .await?
            .is_some_and(|o| o.bytes.as_ref() == bytes))
    }

    /// Moves HEAD to `version` unless it already points at or past it.
    /// Returns whether this call moved it.
    pub async fn advance_head(&self, version: u64) -> Result<bool> {
        let key = self.layout.head_key();
        let bytes = Bytes::from(
            Head {
                manifest_version: version,
            }
            .encode()?,
        );
        for _ in 0..HEAD_CAS_RETRIES_MAX {
            let outcome = match self.read_head().await? {
                HeadRead::Names(current, _) if current >= version => return Ok(false),
                HeadRead::Names(_, tag) => {
                    self.store.put_if_match(&key, bytes.clone(), &tag).await?
                }
                HeadRead::Missing => self.store.put_if_absent(&key, bytes.clone()).await?,
                // Replaced, naming at least the newest listed version: an
                // unreadable HEAD read as that (see `head`), so the value
                // readers see never goes back.
                HeadRead::Unreadable(tag) => {
                    let newest = Box::pin(self.list_versions())
                        .await?
                        .last()
                        .copied()
                        .unwrap_or(0);
                    let repaired = Bytes::from(
                        Head {
                            manifest_version: newest.max(version),
                        }
                        .encode()?,
                    );
                    match self.store.put_if_match(&key, repaired, &tag).await? {
                        // Moved to our version only if nothing newer is
                        // listed: a put into a collected slot (newer
                        // versions exist) must still look off the chain.
                        PutOutcome::Written(_) => return Ok(newest <= version),
                        other => other,
                    }
                }
            };
            if let PutOutcome::Written(_) = outcome {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn inconsistent(&self, reason: String) -> Error {
        Error::Inconsistent {
            namespace: self.layout.namespace().to_owned(),
            reason,
        }
    }
}
