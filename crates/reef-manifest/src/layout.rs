//! The object layout of a namespace (DESIGN §4), in one place:
//!
//! ```text
//! ns/<ns>/wal/<lsn:020>.wal
//! ns/<ns>/seg/<id:032x>.seg
//! ns/<ns>/manifest/<version:020>.mf
//! ns/<ns>/HEAD
//! ns/<ns>/lease/<id>.lease
//! ns/<ns>/checkpoint/<name>.ckpt
//! ```
//! Zero-padded numbers make lexicographic order numeric order, so a LIST
//! returns WAL objects and manifests in sequence. Every prefix ends in `/`,
//! so no key of one kind is a prefix match of another (the fusio list
//! quirk: `wal` would also match `walX/`).

use crate::error::{Error, Result};

/// Prefix of every namespace.
pub const NAMESPACES_PREFIX: &str = "ns/";

/// Checks a namespace name: `[a-z0-9][a-z0-9._-]{0,127}` without `..`.
pub fn validate_namespace(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidName {
            what: "namespace",
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return bad("empty"),
        Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => {
            return bad("must start with [a-z0-9]");
        }
        Some(_) => {}
    }
    if name.len() > 128 {
        return bad("longer than 128 characters");
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        return bad("only [a-z0-9._-] allowed");
    }
    if name.contains("..") {
        return bad("may not contain '..'");
    }
    Ok(())
}

/// Checks a checkpoint name: `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`.
pub fn validate_checkpoint_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what: "checkpoint",
            name: name.to_owned(),
            reason: "must be 1..=128 of [A-Za-z0-9._-], starting alphanumeric".to_owned(),
        })
    }
}

/// Keys of one namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    namespace: String,
    root: String,
}

impl Layout {
    /// The layout of a valid namespace.
    pub fn new(namespace: &str) -> Result<Layout> {
        validate_namespace(namespace)?;
        Ok(Layout {
            namespace: namespace.to_owned(),
            root: format!("{NAMESPACES_PREFIX}{namespace}/"),
        })
    }

    /// The namespace name.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `ns/<ns>/`: every object of the namespace.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Prefix of WAL objects.
    pub fn wal_prefix(&self) -> String {
        format!("{}wal/", self.root)
    }

    /// Key of WAL object `lsn`.
    pub fn wal_key(&self, lsn: u64) -> String {
        format!("{}wal/{lsn:020}.wal", self.root)
    }

    /// The LSN named by a WAL key of this namespace.
    pub fn parse_wal_key(&self, key: &str) -> Option<u64> {
        parse_number(
            key.strip_prefix(&self.wal_prefix())?.strip_suffix(".wal")?,
            20,
        )
    }

    /// Prefix of segment objects.
    pub fn segment_prefix(&self) -> String {
        format!("{}seg/", self.root)
    }

    /// Key of segment `id`.
    pub fn segment_key(&self, id: u128) -> String {
        format!("{}seg/{id:032x}.seg", self.root)
    }

    /// The segment id named by a segment key of this namespace.
    pub fn parse_segment_key(&self, key: &str) -> Option<u128> {
        let hex = key
            .strip_prefix(&self.segment_prefix())?
            .strip_suffix(".seg")?;
        let canonical = hex.len() == 32
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        canonical
            .then(|| u128::from_str_radix(hex, 16).ok())
            .flatten()
    }

    /// Prefix of manifest versions.
    pub fn manifest_prefix(&self) -> String {
        format!("{}manifest/", self.root)
    }

    /// Key of manifest `version`.
    pub fn manifest_key(&self, version: u64) -> String {
        format!("{}manifest/{version:020}.mf", self.root)
    }

    /// The version named by a manifest key of this namespace.
    pub fn parse_manifest_key(&self, key: &str) -> Option<u64> {
        parse_number(
            key.strip_prefix(&self.manifest_prefix())?
                .strip_suffix(".mf")?,
            20,
        )
    }

    /// Key of the HEAD pointer.
    pub fn head_key(&self) -> String {
        format!("{}HEAD", self.root)
    }

    /// Prefix of leases.
    pub fn lease_prefix(&self) -> String {
        format!("{}lease/", self.root)
    }

    /// Key of lease `id` (an id made by `LeaseStore`).
    pub fn lease_key(&self, id: &str) -> String {
        format!("{}lease/{id}.lease", self.root)
    }

    /// The lease id named by a lease key.
    pub fn parse_lease_key(&self, key: &str) -> Option<String> {
        Some(
            key.strip_prefix(&self.lease_prefix())?
                .strip_suffix(".lease")?
                .to_owned(),
        )
    }

    /// Prefix of checkpoints.
    pub fn checkpoint_prefix(&self) -> String {
        format!("{}checkpoint/", self.root)
    }

    /// Key of checkpoint `name` (validated by the caller).
    pub fn checkpoint_key(&self, name: &str) -> String {
        format!("{}checkpoint/{name}.ckpt", self.root)
    }

    /// The checkpoint name named by a checkpoint key.
    pub fn parse_checkpoint_key(&self, key: &str) -> Option<String> {
        Some(
            key.strip_prefix(&self.checkpoint_prefix())?
                .strip_suffix(".ckpt")?
                .to_owned(),
        )
    }

    /// Prefix where `reef repair` moves damaged objects: nothing reads
    /// there, GC leaves it alone, and an operator deletes it by hand.
    pub fn quarantine_prefix(&self) -> String {
        format!("{}quarantine/", self.root)
    }

    /// Where `reef repair` keeps its copy of the namespace object `key`
    /// (the same path below `quarantine/`), or `None` for a key outside
    /// the namespace.
    pub fn quarantine_key(&self, key: &str) -> Option<String> {
        let rest = key.strip_prefix(&self.root)?;
        Some(format!("{}{rest}", self.quarantine_prefix()))
    }
}

/// Whether `key` names a WAL object of any namespace
/// (`ns/<ns>/wal/<lsn:020>.wal`): the keys a local store lends inodes
/// between, so every reader must know them without knowing the namespace.
pub fn is_wal_key(key: &str) -> bool {
    key.strip_prefix(NAMESPACES_PREFIX)
        .and_then(|rest| rest.split_once("/wal/"))
        .is_some_and(|(ns, file)| {
            !ns.contains('/')
                && file
                    .strip_suffix(".wal")
                    .and_then(|n| parse_number(n, 20))
                    .is_some()
        })
}

/// Parses exactly `width` decimal digits (the canonical zero-padded form).
fn parse_number(s: &str, width: usize) -> Option<u64> {
    (s.len() == width && s.chars().all(|c| c.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::validate_key;

    #[test]
    fn keys_round_trip_and_are_valid_object_keys() {
        let l = Layout::new("orders.v2").unwrap();
        for key in [
            l.wal_key(7),
            l.segment_key(0xabc),
            l.manifest_key(12),
            l.head_key(),
            l.lease_key("x1"),
            l.checkpoint_key("nightly"),
        ] {
            validate_key(&key).unwrap();
        }
        assert_eq!(l.wal_key(7), "ns/orders.v2/wal/00000000000000000007.wal");
        assert_eq!(l.parse_wal_key(&l.wal_key(u64::MAX)), Some(u64::MAX));
        assert_eq!(
            l.parse_segment_key(&l.segment_key(u128::MAX)),
            Some(u128::MAX)
        );
        assert_eq!(l.parse_manifest_key(&l.manifest_key(3)), Some(3));
        assert_eq!(
            l.parse_lease_key(&l.lease_key("abc")).as_deref(),
            Some("abc")
        );
        assert_eq!(
            l.parse_checkpoint_key(&l.checkpoint_key("n")).as_deref(),
            Some("n")
        );
        // Non-canonical spellings are not ours.
        assert_eq!(l.parse_wal_key("ns/orders.v2/wal/7.wal"), None);
        assert!(is_wal_key(&l.wal_key(7)));
        for not in [
            "ns/orders.v2/wal/7.wal",
            "ns/orders.v2/seg/00000000000000000007.wal",
            "ns/a/b/wal/00000000000000000007.wal",
            "x/orders.v2/wal/00000000000000000007.wal",
            "ns/orders.v2/wal/00000000000000000007.wal.tmp",
        ] {
            assert!(!is_wal_key(not), "{not}");
        }
        assert_eq!(l.parse_segment_key("ns/orders.v2/seg/ABC.seg"), None);
        assert_eq!(
            Layout::new("other").unwrap().parse_wal_key(&l.wal_key(7)),
            None
        );
    }

    #[test]
    fn zero_padding_makes_key_order_numeric() {
        let l = Layout::new("n").unwrap();
        assert!(l.wal_key(9) < l.wal_key(10));
        assert!(l.manifest_key(99) < l.manifest_key(100));
    }

    #[test]
    fn namespace_rules() {
        for ok in ["a", "0", "a.b-c_d", &"x".repeat(128)] {
            validate_namespace(ok).unwrap();
        }
        for bad in ["", "A", ".a", "-a", "a..b", "a/b", "a b", &"x".repeat(129)] {
            assert!(validate_namespace(bad).is_err(), "{bad:?}");
        }
        validate_checkpoint_name("Nightly-2026.11").unwrap();
        assert!(validate_checkpoint_name(".x").is_err());
    }
}
