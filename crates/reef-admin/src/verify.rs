//! `reef verify`: checks a namespace from the bucket alone and reports
//! every problem by object key. Read-only: it never writes or deletes.
//!
//! What it checks (issue #11; DESIGN §3):
//! - every manifest decodes (framing, checksum) and names its own version;
//!   HEAD decodes and names the newest manifest;
//! - the current manifest's own invariants (segment order, id and version
//!   ranges, no overlap within a level above 0, totals equal to the sum of
//!   its segments);
//! - every segment the current manifest, a live lease or a checkpoint
//!   reaches exists with its recorded size, and its footer (checksummed)
//!   matches the manifest's record of it; `--deep` also decodes every
//!   block and checks the setsums against the footer and the manifest's
//!   totals, which catches a well-formed segment with the wrong content;
//! - the WAL after `last_applied_lsn` is contiguous, every record decodes,
//!   sits under its own LSN and its versions follow on;
//! - leases and checkpoints decode, and what they pin exists.
//!
//! Problems make the report unclean (exit 4). Notes are what a healthy
//! bucket can hold and GC removes in time: folded WAL, superseded
//! manifests, orphan segments, expired leases.
//!
//! Memory: one manifest of each kind at a time, and in `--deep` one
//! segment (objects are bounded by the compactor's output size).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::Result;
use reef_format::segment::{Segment, SegmentFooter};
use reef_format::{Checkpoint, Head, Lease, Manifest, Setsum, WalRecord};
use reef_manifest::store::{DynStore, list_all};
use reef_manifest::{BlockCache, Clock, Layout, SegmentReader};

/// One finding, by object key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The object (or the namespace root, for a namespace-wide finding).
    pub key: String,
    /// What is wrong, or worth knowing.
    pub what: String,
}

/// What `verify` found in one namespace (`--json` prints it, with `clean`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// The namespace.
    pub namespace: String,
    /// The manifest version the checks started from, if any decodes.
    #[serde(rename = "manifest_version")]
    pub current_version: Option<u64>,
    /// Problems: the namespace is not as Reef left it.
    pub problems: Vec<Finding>,
    /// Notes: expected leftovers that GC removes in time.
    pub notes: Vec<Finding>,
    /// Objects looked at, by kind.
    pub checked: BTreeMap<&'static str, u64>,
    /// Bytes read.
    pub bytes_read: u64,
    /// Where reads are shown as they happen (a terminal's progress bar).
    #[serde(skip)]
    pub progress: Option<indicatif::ProgressBar>,
}

impl Report {
    /// No problems.
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, key: impl Into<String>, what: impl Into<String>) {
        self.problems.push(Finding {
            key: key.into(),
            what: what.into(),
        });
    }

    fn note(&mut self, key: impl Into<String>, what: impl Into<String>) {
        self.notes.push(Finding {
            key: key.into(),
            what: what.into(),
        });
    }

    fn read(&mut self, bytes: u64) {
        self.bytes_read += bytes;
        if let Some(bar) = &self.progress {
            bar.inc(bytes);
        }
    }

    fn count(&mut self, kind: &'static str) {
        *self.checked.entry(kind).or_default() += 1;
    }
}

/// The namespace's objects, by kind, from one listing (shared with
/// `repair` and `rebuild`).
#[derive(Default)]
pub(crate) struct Listing {
    pub head: Option<u64>,
    pub manifests: BTreeMap<u64, String>,
    pub wal: BTreeMap<u64, String>,
    pub segments: BTreeMap<u128, (String, u64)>,
    pub leases: BTreeMap<String, String>,
    pub checkpoints: BTreeMap<String, String>,
    pub quarantined: Vec<String>,
    pub other: Vec<String>,
}

/// Checks namespace `ns` (see the module doc). `Err` only when the bucket
/// cannot be read at all; everything found is in the report.
/// `progress`, when given, counts the bytes read.
pub async fn verify(
    store: &DynStore,
    ns: &str,
    deep: bool,
    clock: &dyn Clock,
    progress: Option<indicatif::ProgressBar>,
) -> Result<Report> {
    let layout = Layout::new(ns)?;
    let mut report = Report {
        namespace: ns.to_owned(),
        progress,
        ..Report::default()
    };
    let listing = list(store, &layout).await?;
    for key in &listing.other {
        report.note(key, "not an object Reef writes");
    }
    for key in &listing.quarantined {
        report.note(key, "quarantined by reef repair (nothing reads it)");
    }

    // Manifests: every one decodes; the newest that does is current.
    let mut decodable = BTreeSet::new();
    let mut current: Option<Manifest> = None;
    for (&version, key) in &listing.manifests {
        report.count("manifest");
        if let Some(m) = load_manifest(store, key, version, &mut report).await? {
            decodable.insert(version);
            current = Some(m);
        }
    }
    let newest = listing.manifests.keys().next_back().copied();
    if let Some(n) = newest
        && !decodable.contains(&n)
    {
        report.problem(
            layout.manifest_key(n),
            "the newest manifest is unreadable; reads use an older one",
        );
    }
    check_head(store, &layout, &listing, newest, &mut report).await?;
    let Some(current) = current else {
        if !listing.wal.is_empty() || !listing.segments.is_empty() {
            report.problem(layout.root(), "data objects exist but no manifest decodes");
        }
        check_wal(store, &layout, &listing, 0, 0, &mut report).await?;
        return Ok(report);
    };
    report.current_version = Some(current.version);
    for (&version, key) in &listing.manifests {
        if version < current.version {
            report.note(key, format!("superseded by manifest {}", current.version));
        }
    }

    // What must stay readable: the current manifest and every pinned one.
    let mut reachable: BTreeSet<u128> = BTreeSet::new();
    check_manifest(store, &layout, &listing, &current, deep, &mut report).await?;
    reachable.extend(current.segments.iter().map(|s| s.id));
    let pinned = check_pins(store, &listing, clock, &mut report).await?;
    for version in pinned {
        if version == current.version || version == 0 {
            continue;
        }
        let key = layout.manifest_key(version);
        if !listing.manifests.contains_key(&version) {
            report.problem(&key, "pinned by a lease or checkpoint, but missing");
            continue;
        }
        if let Some(m) = load_manifest(store, &key, version, &mut report).await? {
            check_segments_exist(&layout, &listing, &m, &mut report);
            reachable.extend(m.segments.iter().map(|s| s.id));
        }
    }
    for (id, (key, _)) in &listing.segments {
        if !reachable.contains(id) {
            report.note(
                key,
                "orphan: no current or pinned manifest lists it (GC collects it)",
            );
        }
    }
    check_wal(
        store,
        &layout,
        &listing,
        current.last_applied_lsn,
        current.last_version,
        &mut report,
    )
    .await?;
    Ok(report)
}

pub(crate) async fn list(store: &DynStore, layout: &Layout) -> Result<Listing> {
    let mut l = Listing::default();
    for o in list_all(store.as_ref(), layout.root()).await? {
        let k = o.key;
        if k == layout.head_key() {
            l.head = Some(o.size);
        } else if let Some(v) = layout.parse_manifest_key(&k) {
            l.manifests.insert(v, k);
        } else if let Some(lsn) = layout.parse_wal_key(&k) {
            l.wal.insert(lsn, k);
        } else if let Some(id) = layout.parse_segment_key(&k) {
            l.segments.insert(id, (k, o.size));
        } else if let Some(id) = layout.parse_lease_key(&k) {
            l.leases.insert(id, k);
        } else if let Some(name) = layout.parse_checkpoint_key(&k) {
            l.checkpoints.insert(name, k);
        } else if k.starts_with(&layout.quarantine_prefix()) {
            l.quarantined.push(k);
        } else {
            l.other.push(k);
        }
    }
    Ok(l)
}

/// Reads and decodes one manifest; a problem (and `None`) if it does not
/// decode or names another version.
async fn load_manifest(
    store: &DynStore,
    key: &str,
    version: u64,
    report: &mut Report,
) -> Result<Option<Manifest>> {
    let Some(obj) = store.get(key).await? else {
        report.problem(key, "listed, then gone while verify read it");
        return Ok(None);
    };
    report.read(obj.bytes.len() as u64);
    match Manifest::decode(&obj.bytes, key) {
        Ok(m) if m.version == version => Ok(Some(m)),
        Ok(m) => {
            report.problem(key, format!("holds manifest version {}", m.version));
            Ok(None)
        }
        Err(e) => {
            report.problem(key, e.to_string());
            Ok(None)
        }
    }
}

async fn check_head(
    store: &DynStore,
    layout: &Layout,
    listing: &Listing,
    newest: Option<u64>,
    report: &mut Report,
) -> Result<()> {
    let key = layout.head_key();
    if listing.head.is_none() {
        if newest.is_some() {
            report.problem(
                &key,
                "missing (readers find the newest manifest by listing)",
            );
        }
        return Ok(());
    }
    report.count("head");
    let Some(obj) = store.get(&key).await? else {
        return Ok(());
    };
    report.read(obj.bytes.len() as u64);
    match (Head::decode(&obj.bytes, &key), newest) {
        (Err(e), _) => report.problem(&key, e.to_string()),
        (Ok(h), Some(n)) if h.manifest_version < n => report.problem(
            &key,
            format!(
                "names manifest {}, but {n} is the newest",
                h.manifest_version
            ),
        ),
        (Ok(h), n) if Some(h.manifest_version) > n => report.problem(
            layout.manifest_key(h.manifest_version),
            format!("missing, but {key} names it"),
        ),
        _ => {}
    }
    Ok(())
}

/// The current manifest's invariants and every segment it lists.
async fn check_manifest(
    store: &DynStore,
    layout: &Layout,
    listing: &Listing,
    m: &Manifest,
    deep: bool,
    report: &mut Report,
) -> Result<()> {
    let key = layout.manifest_key(m.version);
    let mut total = Setsum::EMPTY;
    let mut by_level: BTreeMap<u8, Vec<&reef_format::SegmentMeta>> = BTreeMap::new();
    for s in &m.segments {
        total = total.add(&s.setsum);
        by_level.entry(s.level).or_default().push(s);
        if s.min_version > s.max_version || s.min_id > s.max_id {
            report.problem(
                &key,
                format!("segment {:032x}: inverted id or version range", s.id),
            );
        }
        if s.max_version > m.last_version {
            report.problem(
                &key,
                format!(
                    "segment {:032x} holds version {} past the manifest's last {}",
                    s.id, s.max_version, m.last_version
                ),
            );
        }
    }
    if total != m.live().0 {
        report.problem(&key, "totals differ from the sum of its segments");
    }
    for (level, segs) in by_level.iter_mut().filter(|(l, _)| **l > 0) {
        segs.sort_by(|a, b| a.min_id.cmp(&b.min_id));
        for pair in segs.windows(2) {
            if pair[0].max_id >= pair[1].min_id {
                report.problem(
                    &key,
                    format!(
                        "level {level}: segments {:032x} and {:032x} overlap",
                        pair[0].id, pair[1].id
                    ),
                );
            }
        }
    }
    check_segments_exist(layout, listing, m, report);
    let cache = Arc::new(BlockCache::new(1 << 20));
    let mut content = Setsum::EMPTY;
    let mut all_verified = true;
    for s in &m.segments {
        let seg_key = layout.segment_key(s.id);
        if !listing.segments.contains_key(&s.id) {
            all_verified = false;
            continue;
        }
        report.count("segment");
        let footer =
            match read_footer(store, &seg_key, s.object_bytes, deep, &cache, report).await? {
                Ok(f) => f,
                Err(why) => {
                    report.problem(&seg_key, why);
                    all_verified = false;
                    continue;
                }
            };
        let same = footer.setsum == s.setsum
            && footer.entry_count == s.entry_count
            && footer.tombstone_count == s.tombstone_count
            && footer.min_version == s.min_version
            && footer.max_version == s.max_version
            && footer.min_id == s.min_id
            && footer.max_id == s.max_id;
        if !same {
            report.problem(
                &seg_key,
                format!("footer differs from manifest {}'s record of it", m.version),
            );
            all_verified = false;
            continue;
        }
        // Deep: the footer's setsum was just checked against every entry.
        content = content.add(&footer.setsum);
    }
    if deep && all_verified && content != m.live().0 {
        report.problem(
            &key,
            "the segments' contents do not add up to the manifest's totals",
        );
    }
    Ok(())
}

/// A segment's footer, or why it cannot be trusted. Shallow: footer,
/// index and bloom by ranged reads (checksums, the object's size).
/// Deep: one whole read, every block decoded and the footer's claims
/// checked against the entries.
pub(crate) async fn read_footer(
    store: &DynStore,
    key: &str,
    recorded: u64,
    deep: bool,
    cache: &Arc<BlockCache>,
    report: &mut Report,
) -> Result<std::result::Result<SegmentFooter, String>> {
    if !deep {
        let opened =
            SegmentReader::open(Arc::clone(store), key, Some(recorded), Arc::clone(cache)).await;
        return Ok(opened
            .map(|r| r.footer().clone())
            .map_err(|e| e.to_string()));
    }
    let Some(obj) = store.get(key).await? else {
        return Ok(Err("listed, then gone while verify read it".to_owned()));
    };
    report.read(obj.bytes.len() as u64);
    if obj.bytes.len() as u64 != recorded {
        return Ok(Err(format!(
            "{} bytes, but {recorded} were recorded",
            obj.bytes.len()
        )));
    }
    Ok(Segment::open(obj.bytes, key)
        .and_then(|seg| seg.verify().map(|()| seg.footer().clone()))
        .map_err(|e| e.to_string()))
}

/// Every segment `m` lists is in the bucket at its recorded size.
fn check_segments_exist(layout: &Layout, listing: &Listing, m: &Manifest, report: &mut Report) {
    for s in &m.segments {
        let key = layout.segment_key(s.id);
        match listing.segments.get(&s.id) {
            None => report.problem(
                &key,
                format!("missing, but manifest {} lists it", m.version),
            ),
            Some((_, size)) if *size != s.object_bytes => report.problem(
                &key,
                format!(
                    "{size} bytes, but manifest {} records {}",
                    m.version, s.object_bytes
                ),
            ),
            Some(_) => {}
        }
    }
}

/// Leases and checkpoints decode; returns the versions live ones pin.
async fn check_pins(
    store: &DynStore,
    listing: &Listing,
    clock: &dyn Clock,
    report: &mut Report,
) -> Result<BTreeSet<u64>> {
    let mut pinned = BTreeSet::new();
    let now = clock.now_ms();
    for key in listing.leases.values() {
        report.count("lease");
        let Some(obj) = store.get(key).await? else {
            continue;
        };
        match Lease::decode(&obj.bytes, key) {
            Ok(l)
                if l.expires_at_ms
                    .saturating_add(reef_manifest::LEASE_CLOCK_SKEW_MS)
                    < now =>
            {
                report.note(
                    key,
                    format!(
                        "expired lease on manifest {} (GC removes it)",
                        l.manifest_version
                    ),
                );
            }
            Ok(l) => {
                pinned.insert(l.manifest_version);
            }
            Err(e) => report.problem(key, e.to_string()),
        }
    }
    for (name, key) in &listing.checkpoints {
        report.count("checkpoint");
        let Some(obj) = store.get(key).await? else {
            continue;
        };
        match Checkpoint::decode(&obj.bytes, key) {
            Ok(c) if &c.name != name => {
                report.problem(key, format!("holds checkpoint {:?}", c.name))
            }
            Ok(c) => {
                pinned.insert(c.manifest_version);
            }
            Err(e) => report.problem(key, e.to_string()),
        }
    }
    Ok(pinned)
}

/// WAL after `last_applied_lsn`: contiguous, decodable, in order.
async fn check_wal(
    store: &DynStore,
    layout: &Layout,
    listing: &Listing,
    last_applied_lsn: u64,
    last_version: u64,
    report: &mut Report,
) -> Result<()> {
    let mut expected = last_applied_lsn + 1;
    let mut version = last_version;
    for (&lsn, key) in &listing.wal {
        if lsn <= last_applied_lsn {
            report.note(key, "folded (GC collects it)");
            continue;
        }
        if lsn != expected {
            report.problem(
                layout.wal_key(expected),
                format!("missing: the WAL after LSN {last_applied_lsn} has a hole before {key}"),
            );
        }
        expected = lsn + 1;
        report.count("wal");
        let Some(obj) = store.get(key).await? else {
            report.problem(key, "listed, then gone while verify read it");
            continue;
        };
        report.read(obj.bytes.len() as u64);
        match WalRecord::decode(&obj.bytes, key) {
            Ok(r) if r.lsn != lsn => report.problem(key, format!("holds LSN {}", r.lsn)),
            Ok(r) => {
                if let Some(first) = r.entries().next()
                    && first.version <= version
                {
                    report.problem(
                        key,
                        format!(
                            "reuses version {} (the one before ended at {version})",
                            first.version
                        ),
                    );
                }
                if let Some(last) = r.entries().last() {
                    version = last.version;
                }
            }
            Err(e) => report.problem(key, e.to_string()),
        }
    }
    Ok(())
}
