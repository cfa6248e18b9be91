//! The directory `weir serve` watches, read once and then re-read file by file.
//!
//! [`DirSource`] keeps every manifest file's parsed documents. [`DirSource::rescan`]
//! walks the whole tree but re-parses only files whose size or modification time
//! changed; [`DirSource::update`] looks only at the paths a file watcher reported (a
//! file, or a directory created, moved or removed). Either way the result is a list of
//! [`SourceEvent::Apply`] / [`SourceEvent::Delete`] for exactly the keys whose effective
//! definition changed, so the store and the translator see a small change as a small
//! change.
//!
//! Files are read exactly as [`super::file::load`] reads them (same extensions, hidden
//! entries skipped, same diagnostics); a key defined in several files resolves the same
//! way too: the last definition in path order wins, with a warning. A path under a
//! hidden entry (a ConfigMap mount's `..data` swap, an editor's swap file) triggers a
//! full rescan, because the visible files it feeds may be symlinks into it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::model::{Object, ObjectKey};

use super::SourceEvent;
use super::file::{Diagnostic, Error, ParsedFile, collect, duplicate, read_file};

/// What identifies a version of a file without reading it: size and modification time.
type Stamp = (u64, Option<SystemTime>);

/// A directory of manifests, cached file by file.
#[derive(Debug)]
pub struct DirSource {
    /// The directory as given (diagnostics name files under it).
    root: PathBuf,
    /// The same directory as an absolute path (what file watchers report).
    absolute_root: PathBuf,
    /// Every manifest file read, in path order (the order definitions resolve in).
    files: BTreeMap<Arc<Path>, CachedFile>,
    /// The files defining each key, in path order: almost always one, shared with `files`.
    defined_in: BTreeMap<ObjectKey, Vec<Arc<Path>>>,
}

#[derive(Debug)]
struct CachedFile {
    stamp: Stamp,
    parsed: ParsedFile,
    /// Each key with where it sits in `parsed.objects`, ordered by key (then position),
    /// so looking a key up does not scan the file (a file of N objects would otherwise
    /// cost N² per change). A sorted list: most files define one object or a few.
    index: Vec<(ObjectKey, usize)>,
}

impl CachedFile {
    fn new(stamp: Stamp, parsed: ParsedFile) -> Self {
        let mut index: Vec<(ObjectKey, usize)> = parsed
            .objects
            .iter()
            .enumerate()
            .map(|(position, (object, _))| (object.key(), position))
            .collect();
        index.sort_unstable();
        Self {
            stamp,
            parsed,
            index,
        }
    }

    /// Where `key` sits in `parsed.objects`, in file order.
    fn positions<'a>(&'a self, key: &ObjectKey) -> impl Iterator<Item = usize> + 'a {
        let start = self.index.partition_point(|(k, _)| k < key);
        let end = start + self.index[start..].partition_point(|(k, _)| k == key);
        self.index[start..end].iter().map(|&(_, at)| at)
    }

    /// Whether the file defines `key`.
    fn defines(&self, key: &ObjectKey) -> bool {
        self.positions(key).next().is_some()
    }

    /// The keys the file defines, each once, in key order.
    fn into_keys(self) -> impl Iterator<Item = ObjectKey> {
        let mut keys: Vec<ObjectKey> = self.index.into_iter().map(|(k, _)| k).collect();
        keys.dedup();
        keys.into_iter()
    }

    /// The same, borrowed.
    fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        let mut last: Option<&ObjectKey> = None;
        self.index.iter().filter_map(move |(k, _)| {
            let new = last != Some(k);
            last = Some(k);
            new.then_some(k)
        })
    }
}

/// What one refresh changed.
#[derive(Debug, Default)]
pub struct Refresh {
    /// One `Apply` or `Delete` per key whose effective definition changed, in key order.
    pub events: Vec<SourceEvent>,
    /// The diagnostics of the files read, then duplicate-definition warnings for the keys
    /// that changed.
    pub diagnostics: Vec<Diagnostic>,
    /// How many files were (re-)read.
    pub files_read: usize,
    /// How many files disappeared.
    pub files_removed: usize,
}

impl DirSource {
    /// A source over `root`; nothing is read until the first [`DirSource::rescan`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let absolute_root = std::path::absolute(&root).unwrap_or_else(|_| root.clone());
        Self {
            root,
            absolute_root,
            files: BTreeMap::new(),
            defined_in: BTreeMap::new(),
        }
    }

    /// The directory, as an absolute path (what to hand a file watcher).
    pub fn absolute_root(&self) -> &Path {
        &self.absolute_root
    }

    /// How many manifest files are cached.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Walks the whole directory, re-reading files whose size or modification time
    /// changed and forgetting files that are gone. Fails, changing nothing, when the
    /// directory (or a file in it) cannot be read.
    pub fn rescan(&mut self) -> Result<Refresh, Error> {
        let root = self.root.clone();
        self.refresh(&[root], &BTreeSet::new())
    }

    /// Re-reads what changed at `paths` (absolute, as a watcher reports them): a file is
    /// re-read, a directory is walked, a path that no longer exists is forgotten with
    /// everything under it. Paths outside the directory are ignored. Fails, changing
    /// nothing, when the directory cannot be read.
    pub fn update(&mut self, paths: &[PathBuf]) -> Result<Refresh, Error> {
        let mut scopes = Vec::new();
        let mut forced = BTreeSet::new();
        for path in paths {
            let Ok(relative) = path.strip_prefix(&self.absolute_root) else {
                continue;
            };
            let hidden = relative
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.'));
            if relative.as_os_str().is_empty() || hidden {
                return self.rescan();
            }
            let path = self.root.join(relative);
            forced.insert(path.clone());
            scopes.push(path);
        }
        if scopes.is_empty() {
            return Ok(Refresh::default());
        }
        // Moving the directory away is a change too: report it as unreadable.
        std::fs::metadata(&self.root).map_err(|source| Error::Read {
            path: self.root.clone(),
            source,
        })?;
        self.refresh(&scopes, &forced)
    }

    /// Brings everything under each of `scopes` up to date; files in `forced` are re-read
    /// even when their stamp is unchanged (a watcher saw them change).
    fn refresh(
        &mut self,
        scopes: &[PathBuf],
        forced: &BTreeSet<PathBuf>,
    ) -> Result<Refresh, Error> {
        // Read everything first, so a failure changes nothing.
        let mut present = BTreeSet::new();
        for scope in scopes {
            let mut found = Vec::new();
            match collect(scope, false, &mut found, &mut BTreeSet::new()) {
                Ok(()) => present.extend(found),
                Err(Error::Read { source, .. })
                    if *scope != self.root && source.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        let mut read = Vec::new();
        // A scope's files are one contiguous range of the path-ordered map.
        let mut removed: Vec<Arc<Path>> = scopes
            .iter()
            .flat_map(|scope| {
                self.files
                    .range::<Path, _>((
                        std::ops::Bound::Included(scope.as_path()),
                        std::ops::Bound::Unbounded,
                    ))
                    .map(|(file, _)| file)
                    .take_while(move |file| file.starts_with(scope))
            })
            .filter(|file| !present.contains(&***file))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for file in present {
            let stamp = match std::fs::metadata(&file) {
                Ok(meta) => (meta.len(), meta.modified().ok()),
                Err(source) if source.kind() == std::io::ErrorKind::NotFound => {
                    removed.push(Arc::from(file));
                    continue;
                }
                Err(source) => return Err(Error::Read { path: file, source }),
            };
            let unchanged = self
                .files
                .get(file.as_path())
                .is_some_and(|c| c.stamp == stamp);
            if unchanged && !forced.contains(&file) {
                continue;
            }
            match read_file(&file) {
                Ok(parsed) => read.push((file, CachedFile::new(stamp, parsed))),
                Err(Error::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    removed.push(Arc::from(file));
                }
                Err(err) => return Err(err),
            }
        }

        // Commit.
        let mut refresh = Refresh {
            files_read: read.len(),
            files_removed: 0,
            ..Refresh::default()
        };
        let mut touched = BTreeSet::new();
        for file in removed {
            if let Some(old) = self.files.remove(&file) {
                refresh.files_removed += 1;
                self.forget(&file, old, &mut touched);
            }
        }
        for (file, cached) in read {
            refresh
                .diagnostics
                .extend(cached.parsed.diagnostics.iter().cloned());
            // One shared copy of the path names the file everywhere.
            let file: Arc<Path> = match self.files.get_key_value(file.as_path()) {
                Some((known, _)) => known.clone(),
                None => Arc::from(file),
            };
            for key in cached.keys() {
                let files = self.defined_in.entry(key.clone()).or_default();
                if let Err(at) = files.binary_search(&file) {
                    files.reserve_exact(1);
                    files.insert(at, file.clone());
                }
                touched.insert(key.clone());
            }
            if let Some(old) = self.files.insert(file.clone(), cached) {
                // Keys the file still defines keep their `defined_in` entry.
                for key in old.into_keys() {
                    if !self.files[&file].defines(&key) {
                        self.undefine(&key, &file);
                    }
                    touched.insert(key);
                }
            }
        }
        for key in touched {
            refresh.diagnostics.extend(self.duplicates(&key));
            refresh.events.push(match self.effective(&key) {
                Some(object) => SourceEvent::Apply(object),
                None => SourceEvent::Delete(key),
            });
        }
        Ok(refresh)
    }

    fn forget(&mut self, file: &Path, old: CachedFile, touched: &mut BTreeSet<ObjectKey>) {
        for key in old.into_keys() {
            self.undefine(&key, file);
            touched.insert(key);
        }
    }

    fn undefine(&mut self, key: &ObjectKey, file: &Path) {
        if let Some(files) = self.defined_in.get_mut(key) {
            files.retain(|f| **f != *file);
            if files.is_empty() {
                self.defined_in.remove(key);
            }
        }
    }

    /// Every definition of `key`, in the order they resolve: (file, line, object).
    fn definitions<'a>(
        &'a self,
        key: &'a ObjectKey,
    ) -> impl Iterator<Item = (&'a Path, usize, &'a Object)> + 'a {
        self.defined_in
            .get(key)
            .into_iter()
            .flatten()
            .flat_map(|file| {
                let cached = &self.files[file];
                cached.positions(key).map(move |at| {
                    let (object, line) = &cached.parsed.objects[at];
                    (&**file, *line, object)
                })
            })
    }

    /// The definition of `key` that wins: the last one.
    fn effective(&self, key: &ObjectKey) -> Option<Object> {
        self.definitions(key).last().map(|(_, _, o)| o.clone())
    }

    /// A warning for every definition of `key` after its first.
    fn duplicates(&self, key: &ObjectKey) -> Vec<Diagnostic> {
        let mut all = self.definitions(key);
        let Some((first_file, first_line, _)) = all.next() else {
            return Vec::new();
        };
        all.map(|(file, line, _)| duplicate(key, file, line, first_file, first_line))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_direct_response(name: &str, status: u16) -> String {
        format!(
            "apiVersion: gateway.weir.dev/v1alpha1\nkind: DirectResponse\nmetadata:\n  name: {name}\n  namespace: a\nspec:\n  status: {status}\n"
        )
    }

    /// The events as `apply KEY` / `delete KEY`.
    fn shown(refresh: &Refresh) -> Vec<String> {
        refresh
            .events
            .iter()
            .map(|e| match e {
                SourceEvent::Apply(o) => format!("apply {}", o.key()),
                SourceEvent::Delete(k) => format!("delete {k}"),
                SourceEvent::Reset(_) => "reset".to_string(),
            })
            .collect()
    }

    #[test]
    fn rescan_rereads_only_changed_files_and_reports_changed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("a.yaml"), mk_direct_response("a", 200)).unwrap();
        std::fs::write(root.join("sub/b.yaml"), mk_direct_response("b", 200)).unwrap();
        let mut source = DirSource::new(root);
        let first = source.rescan().unwrap();
        assert_eq!(first.files_read, 2);
        assert_eq!(
            shown(&first),
            ["apply DirectResponse/a/a", "apply DirectResponse/a/b"]
        );
        assert_eq!(source.rescan().unwrap().files_read, 0, "nothing changed");

        std::fs::write(root.join("sub/b.yaml"), mk_direct_response("b", 503)).unwrap();
        std::fs::remove_file(root.join("a.yaml")).unwrap();
        let second = source.rescan().unwrap();
        assert_eq!((second.files_read, second.files_removed), (1, 1));
        assert_eq!(
            shown(&second),
            ["delete DirectResponse/a/a", "apply DirectResponse/a/b"]
        );
        assert_eq!(source.file_count(), 1);
    }

    #[test]
    fn update_reads_only_the_reported_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.yaml"), mk_direct_response("a", 200)).unwrap();
        std::fs::write(root.join("b.yaml"), mk_direct_response("b", 200)).unwrap();
        let mut source = DirSource::new(root);
        source.rescan().unwrap();
        let abs = source.absolute_root().to_path_buf();

        // b changes too, but only a is reported: only a is read.
        std::fs::write(root.join("a.yaml"), mk_direct_response("a", 201)).unwrap();
        std::fs::write(root.join("b.yaml"), mk_direct_response("b", 201)).unwrap();
        let update = source.update(&[abs.join("a.yaml")]).unwrap();
        assert_eq!(update.files_read, 1);
        assert_eq!(shown(&update), ["apply DirectResponse/a/a"]);

        // A directory moved in is walked; one moved out is forgotten.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("c.yaml"), mk_direct_response("c", 200)).unwrap();
        std::fs::rename(outside.path(), root.join("moved")).unwrap();
        let moved_in = source.update(&[abs.join("moved")]).unwrap();
        assert_eq!(shown(&moved_in), ["apply DirectResponse/a/c"]);
        std::fs::rename(root.join("moved"), dir.path().with_extension("gone")).unwrap();
        let moved_out = source.update(&[abs.join("moved")]).unwrap();
        assert_eq!(shown(&moved_out), ["delete DirectResponse/a/c"]);
        std::fs::remove_dir_all(dir.path().with_extension("gone")).unwrap();

        // Paths outside the directory are ignored.
        let ignored = source
            .update(&[PathBuf::from("/elsewhere/x.yaml")])
            .unwrap();
        assert!(ignored.events.is_empty());
    }

    #[test]
    fn a_duplicate_resolves_to_the_last_file_and_back_when_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.yaml"), mk_direct_response("x", 200)).unwrap();
        let mut source = DirSource::new(root);
        source.rescan().unwrap();
        let abs = source.absolute_root().to_path_buf();

        std::fs::write(root.join("b.yaml"), mk_direct_response("x", 503)).unwrap();
        let added = source.update(&[abs.join("b.yaml")]).unwrap();
        assert_eq!(shown(&added), ["apply DirectResponse/a/x"]);
        let SourceEvent::Apply(Object::DirectResponse(dr)) = &added.events[0] else {
            panic!("{:?}", added.events);
        };
        assert_eq!(dr.spec.status, 503, "the later file wins");
        assert_eq!(added.diagnostics.len(), 1);
        assert!(
            added.diagnostics[0].message.contains("a.yaml:1"),
            "{}",
            added.diagnostics[0]
        );

        std::fs::remove_file(root.join("b.yaml")).unwrap();
        let removed = source.update(&[abs.join("b.yaml")]).unwrap();
        let SourceEvent::Apply(Object::DirectResponse(dr)) = &removed.events[0] else {
            panic!("{:?}", removed.events);
        };
        assert_eq!(dr.spec.status, 200, "the remaining definition is back");
    }

    #[test]
    fn an_unreadable_directory_is_an_error_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("m");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.yaml"), mk_direct_response("a", 200)).unwrap();
        let mut source = DirSource::new(&root);
        source.rescan().unwrap();
        let abs = source.absolute_root().to_path_buf();
        std::fs::rename(&root, dir.path().join("away")).unwrap();
        assert!(source.rescan().is_err());
        assert!(source.update(&[abs.join("a.yaml")]).is_err());
        std::fs::rename(dir.path().join("away"), &root).unwrap();
        assert!(source.rescan().unwrap().events.is_empty());
    }
}
