//! Resource names shared by every stream of a server: a thousand proxies subscribing to
//! the same endpoint names hold one copy of each name, not a thousand.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The interned names (cheap to clone: one shared set).
#[derive(Debug, Clone, Default)]
pub(crate) struct Names(Arc<Mutex<Interned>>);

#[derive(Debug, Default)]
struct Interned {
    set: HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// When the set reaches this size, names no stream holds any more are dropped.
    prune_at: usize,
}

/// Below this many names, nothing is pruned.
const MIN_PRUNE: usize = 1024;

impl Names {
    /// The shared copy of each name (one lock for the whole batch).
    pub fn intern<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<Arc<str>> {
        let mut interned = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let shared = names
            .into_iter()
            .map(|name| match interned.set.get(name) {
                Some(shared) => shared.clone(),
                None => {
                    let shared: Arc<str> = name.into();
                    interned.set.insert(shared.clone());
                    shared
                }
            })
            .collect();
        interned.prune();
        shared
    }

    /// How many names are kept (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().set.len()
    }
}

impl Interned {
    /// Drops the names only the set holds once it has doubled since the last prune, so
    /// pruning costs a constant amount per name interned.
    fn prune(&mut self) {
        if self.set.len() < self.prune_at.max(MIN_PRUNE) {
            return;
        }
        self.set.retain(|name| Arc::strong_count(name) > 1);
        self.prune_at = self.set.len() * 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_name_is_one_allocation_across_streams() {
        let names = Names::default();
        let a = names.intern(["cluster_a", "cluster_b"]);
        let b = names.clone().intern(["cluster_b"]);
        assert!(Arc::ptr_eq(&a[1], &b[0]));
        assert_eq!(&*a[0], "cluster_a");
    }

    #[test]
    fn names_no_stream_holds_are_forgotten() {
        let names = Names::default();
        let kept = names.intern(["kept"]);
        for i in 0..3 * MIN_PRUNE {
            drop(names.intern([format!("gone-{i}").as_str()]));
        }
        assert!(names.len() < 2 * MIN_PRUNE, "{} names kept", names.len());
        assert!(Arc::ptr_eq(&kept[0], &names.intern(["kept"])[0]));
    }
}
