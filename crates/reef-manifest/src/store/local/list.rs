//! The local store's listings: a directory walk in key order that reads
//! only the directories a page touches, and `any_under`'s walk that stops
//! at the first file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::super::{Listed, validate_prefix};
use super::{LOCAL_LIST_PAGE_MAX, LocalStore, join_failed};
use crate::error::{Error, Result};

impl LocalStore {
    /// The directory a prefix's last `/` ends, and its keys' prefix.
    pub(super) fn dir_of(&self, prefix: &str) -> (PathBuf, String) {
        match prefix.rfind('/') {
            Some(i) => (self.root.join(&prefix[..i]), prefix[..=i].to_owned()),
            None => (self.root.clone(), String::new()),
        }
    }

    /// The objects under `prefix` after `start_after`, one more than a
    /// page (whether another page follows), with sizes if `sized`.
    pub(super) async fn walk_prefix(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        sized: bool,
    ) -> Result<Vec<Listed>> {
        validate_prefix(prefix)?;
        let owned = prefix.to_owned();
        let (start_dir, dir_key) = self.dir_of(prefix);
        let after = start_after.map(str::to_owned);
        let want = limit.clamp(1, LOCAL_LIST_PAGE_MAX) + 1;
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(
                &start_dir,
                &dir_key,
                &owned,
                after.as_deref(),
                want,
                sized,
                &mut out,
            )
            .map(|()| out)
        })
        .await
        .map_err(|e| join_failed("list", prefix, e))?
        .map_err(|e| Error::io("list", prefix, e))
    }
}

/// Collects files under `dir` (whose keys start with `dir_key`) that start
/// with `prefix`, skipping dot-files and directories that cannot match.
/// Appends to `out`, in key order, the objects below `dir` whose keys
/// start with `prefix` and sort after `after`, stopping once `out` holds
/// `want`. Entries are visited sorted by key (a directory `d` as `d/`,
/// which orders it exactly as the keys inside it), and a directory whose
/// keys all sort at or before `after` is skipped unread: a page costs the
/// directories it touches, not the whole prefix.
///
/// Without `sized`, every size is 0 and no file is `statx`ed: the entry's
/// type comes from the directory itself (`d_type`).
fn walk(
    dir: &Path,
    dir_key: &str,
    prefix: &str,
    after: Option<&str>,
    want: usize,
    sized: bool,
    out: &mut Vec<Listed>,
) -> io::Result<()> {
    let Some(entries) = entries(dir)? else {
        return Ok(());
    };
    // Only entries that can contribute are kept (and allocated for): a
    // WAL directory of 10,000 objects listed after its newest-but-one
    // key keeps one. Each is `(order, is_dir, entry)`, `order` being the
    // key, or `key/` for a directory.
    let mut sorted = Vec::new();
    for entry in entries {
        let (name, file_type, entry) = entry?;
        let is_dir = file_type.is_dir();
        if !is_dir && !file_type.is_file() && !sized {
            continue;
        }
        let mut order = String::with_capacity(dir_key.len() + name.len() + 1);
        order.push_str(dir_key);
        order.push_str(&name);
        let keep = if is_dir {
            // `order` is `key/`: every key inside extends it.
            order.push('/');
            let relevant = order.starts_with(prefix) || prefix.starts_with(&order);
            let all_before = after.is_some_and(|a| a > order.as_str() && !a.starts_with(&order));
            relevant && !all_before
        } else {
            order.starts_with(prefix) && after.is_none_or(|a| order.as_str() > a)
        };
        if keep {
            sorted.push((order, is_dir, entry));
        }
    }
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (order, is_dir, entry) in sorted {
        if out.len() >= want {
            break;
        }
        if is_dir {
            walk(&entry.path(), &order, prefix, after, want, sized, out)?;
        } else if !sized {
            out.push(Listed {
                key: order,
                size: 0,
            });
        } else {
            // A file deleted between read_dir and metadata is just gone.
            match entry.metadata() {
                Ok(m) if m.is_file() => out.push(Listed {
                    key: order,
                    size: m.len(),
                }),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// An entry of a listed directory: its name, type and entry.
type Entry = (String, fs::FileType, fs::DirEntry);

/// The entries of `dir` that can be objects or hold them (`None` if `dir`
/// does not exist): UTF-8 names not starting with `.`, each with its type,
/// from the directory itself (`d_type`) or, where the file system does
/// not say, an `lstat`; an entry deleted since the directory was read is
/// just gone.
fn entries(dir: &Path) -> io::Result<Option<impl Iterator<Item = io::Result<Entry>>>> {
    let read = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(read.filter_map(|entry| {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        let name = entry.file_name().into_string().ok()?;
        if name.starts_with('.') {
            return None;
        }
        match entry.file_type() {
            Ok(t) => Some(Ok((name, t, entry))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => Some(Err(e)),
        }
    })))
}

/// Whether any object below `dir` (whose keys start with `dir_key`)
/// starts with `prefix`: `walk`'s test on each entry, in directory order,
/// ending at the first file that passes (a directory's own files first,
/// then its subdirectories).
pub(super) fn any_file(dir: &Path, dir_key: &str, prefix: &str) -> io::Result<bool> {
    let Some(entries) = entries(dir)? else {
        return Ok(false);
    };
    let mut subdirs = Vec::new();
    for entry in entries {
        let (name, file_type, entry) = entry?;
        let key = format!("{dir_key}{name}");
        if file_type.is_file() && key.starts_with(prefix) {
            return Ok(true);
        }
        if file_type.is_dir() {
            let order = key + "/";
            if order.starts_with(prefix) || prefix.starts_with(&order) {
                subdirs.push((entry.path(), order));
            }
        }
    }
    for (path, order) in subdirs {
        if any_file(&path, &order, prefix)? {
            return Ok(true);
        }
    }
    Ok(false)
}
