//! What `repair` and `rebuild` need to know about a namespace before they
//! decide anything: which manifests decode, what HEAD holds, which
//! segments are intact, and how far the WAL after a given LSN is a clean
//! chain. Read-only.

use std::collections::BTreeMap;

use anyhow::Result;
use reef_format::segment::SegmentFooter;
use reef_format::{Head, Manifest, SegmentMeta, WalRecord};
use reef_manifest::store::{DynStore, Tag};
use reef_manifest::{BlockCache, Layout};
use std::sync::Arc;

use crate::verify::{Listing, read_footer};

/// HEAD as found.
#[derive(Clone, Debug)]
pub(crate) enum HeadState {
    Missing,
    /// Present but not a HEAD of this namespace's manifests.
    Unreadable {
        tag: Tag,
        why: String,
    },
    Names {
        version: u64,
    },
}

/// The manifests, by what reading them gave.
#[derive(Default)]
pub(crate) struct Manifests {
    /// Every manifest that decodes and names its own version.
    pub decodable: BTreeMap<u64, Manifest>,
    /// Listed but unreadable (or holding another version), with why.
    pub unreadable: BTreeMap<u64, String>,
}

impl Manifests {
    /// The newest decodable manifest.
    pub fn newest(&self) -> Option<&Manifest> {
        self.decodable.values().next_back()
    }
}

pub(crate) async fn read_head(store: &DynStore, layout: &Layout) -> Result<HeadState> {
    let key = layout.head_key();
    let Some(obj) = store.get(&key).await? else {
        return Ok(HeadState::Missing);
    };
    Ok(match Head::decode(&obj.bytes, &key) {
        Ok(h) => HeadState::Names {
            version: h.manifest_version,
        },
        Err(e) => HeadState::Unreadable {
            tag: obj.tag,
            why: e.to_string(),
        },
    })
}

/// Reads every listed manifest. Memory: all decodable manifests at once
/// (GC keeps few; a namespace with thousands of uncollected versions
/// wants `reef gc` first).
pub(crate) async fn read_manifests(store: &DynStore, listing: &Listing) -> Result<Manifests> {
    let mut out = Manifests::default();
    for (&version, key) in &listing.manifests {
        let Some(obj) = store.get(key).await? else {
            // Collected by a GC since the listing (GC never deletes the
            // newest): absent, not damaged.
            continue;
        };
        match Manifest::decode(&obj.bytes, key) {
            Ok(m) if m.version == version => {
                out.decodable.insert(version, m);
            }
            Ok(m) => {
                out.unreadable
                    .insert(version, format!("holds manifest version {}", m.version));
            }
            Err(e) => {
                out.unreadable.insert(version, e.to_string());
            }
        }
    }
    Ok(out)
}

/// Segment health, each id read at most once.
pub(crate) struct SegmentCheck<'a> {
    store: &'a DynStore,
    layout: &'a Layout,
    listing: &'a Listing,
    cache: Arc<BlockCache>,
    seen: BTreeMap<u128, Option<String>>,
}

impl<'a> SegmentCheck<'a> {
    pub fn new(store: &'a DynStore, layout: &'a Layout, listing: &'a Listing) -> Self {
        SegmentCheck {
            store,
            layout,
            listing,
            cache: Arc::new(BlockCache::new(1 << 20)),
            seen: BTreeMap::new(),
        }
    }

    /// Why the segment `meta` records cannot be read as recorded, or
    /// `None` when it is intact (present at its size, every block and the
    /// footer checksummed, the entries adding up to the footer, and the
    /// footer equal to the record). Memory: one segment at a time.
    pub async fn damage(&mut self, meta: &SegmentMeta) -> Result<Option<String>> {
        if let Some(found) = self.seen.get(&meta.id) {
            return Ok(found.clone());
        }
        let key = self.layout.segment_key(meta.id);
        let found = match self.listing.segments.get(&meta.id) {
            None => Some("missing".to_owned()),
            Some((_, size)) if *size != meta.object_bytes => Some(format!(
                "{size} bytes, but {} were recorded",
                meta.object_bytes
            )),
            Some(_) => {
                let mut scratch = crate::verify::Report::default();
                // Deep: a flipped bit inside a block leaves the footer and
                // index intact; only reading every block finds it.
                match read_footer(
                    self.store,
                    &key,
                    meta.object_bytes,
                    true,
                    &self.cache,
                    &mut scratch,
                )
                .await?
                {
                    Ok(f) if meta.matches(meta.object_bytes, &f) => None,
                    Ok(_) => Some("its footer differs from the manifest's record".to_owned()),
                    Err(why) => Some(why),
                }
            }
        };
        self.seen.insert(meta.id, found.clone());
        Ok(found)
    }

    /// The footer of a listed segment no manifest record describes, read
    /// at its listed size.
    pub async fn footer(
        &mut self,
        id: u128,
        size: u64,
    ) -> Result<std::result::Result<SegmentFooter, String>> {
        let key = self.layout.segment_key(id);
        let mut scratch = crate::verify::Report::default();
        read_footer(self.store, &key, size, false, &self.cache, &mut scratch).await
    }

    /// Why each segment checked so far is damaged.
    pub fn damaged_so_far(&self) -> impl Iterator<Item = (u128, &str)> {
        self.seen
            .iter()
            .filter_map(|(id, why)| why.as_deref().map(|w| (*id, w)))
    }

    /// The damaged segments of `m`, with why.
    pub async fn damaged_in(&mut self, m: &Manifest) -> Result<Vec<(SegmentMeta, String)>> {
        let mut out = Vec::new();
        for s in &m.segments {
            if let Some(why) = self.damage(s).await? {
                out.push((s.clone(), why));
            }
        }
        Ok(out)
    }
}

/// The WAL after some `last_applied_lsn`, read as a chain.
#[derive(Default)]
pub(crate) struct Chain {
    /// Consecutive records that decode, hold their own LSN and follow on
    /// in version.
    pub good: Vec<WalRecord>,
    /// The first LSN that breaks the chain, and why.
    pub broken_at: Option<(u64, String)>,
    /// Records after the break, by LSN (`None`: unreadable or missing).
    pub after_break: Vec<(u64, Option<WalRecord>)>,
    /// The highest LSN listed (the chain's start when nothing is).
    pub top: u64,
}

impl Chain {
    /// The last LSN of the good run.
    pub fn good_end(&self, start: u64) -> u64 {
        self.good.last().map_or(start, |r| r.lsn)
    }

    /// The highest version any readable record of the chain holds.
    pub fn max_version(&self) -> Option<u64> {
        self.good
            .iter()
            .chain(self.after_break.iter().filter_map(|(_, r)| r.as_ref()))
            .flat_map(|r| r.entries().map(|e| e.version))
            .max()
    }
}

/// Reads the WAL after `after` (a manifest's `last_applied_lsn`) whose
/// versions must start above `last_version`. Memory: every record of the
/// unfolded WAL (bounded by the fold triggers).
pub(crate) async fn read_chain(
    store: &DynStore,
    layout: &Layout,
    listing: &Listing,
    after: u64,
    last_version: u64,
) -> Result<Chain> {
    let top = listing
        .wal
        .keys()
        .next_back()
        .copied()
        .unwrap_or(after)
        .max(after);
    let mut chain = Chain {
        top,
        ..Chain::default()
    };
    let mut version = last_version;
    for lsn in after + 1..=top {
        let record = read_wal(store, layout, listing, lsn).await?;
        if chain.broken_at.is_some() {
            chain.after_break.push((lsn, record.ok()));
            continue;
        }
        match record {
            Ok(r) => {
                let first = r.entries().next().map(|e| e.version);
                match first {
                    Some(first) if first <= version => {
                        chain.broken_at = Some((
                            lsn,
                            format!("reuses version {first} (the chain before ended at {version})"),
                        ));
                        chain.after_break.push((lsn, Some(r)));
                    }
                    _ => {
                        if let Some(last) = r.entries().last() {
                            version = last.version;
                        }
                        chain.good.push(r);
                    }
                }
            }
            Err(why) => {
                chain.broken_at = Some((lsn, why));
                chain.after_break.push((lsn, None));
            }
        }
    }
    Ok(chain)
}

async fn read_wal(
    store: &DynStore,
    layout: &Layout,
    listing: &Listing,
    lsn: u64,
) -> Result<std::result::Result<WalRecord, String>> {
    let key = layout.wal_key(lsn);
    if !listing.wal.contains_key(&lsn) {
        return Ok(Err("missing".to_owned()));
    }
    let Some(obj) = store.get(&key).await? else {
        return Ok(Err("listed, then gone".to_owned()));
    };
    Ok(match WalRecord::decode(&obj.bytes, &key) {
        Ok(r) if r.lsn == lsn => Ok(r),
        Ok(r) => Err(format!("holds LSN {}", r.lsn)),
        Err(e) => Err(e.to_string()),
    })
}
