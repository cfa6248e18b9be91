//! Resource names shared by every stream of a server: a thousand proxies subscribing to
//! the same endpoint names hold one copy of each name, not a thousand, and one copy of
//! the set of names they subscribe to ([`NameSet`]), not a thousand.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

/// The interned names (cheap to clone: one shared set).
#[derive(Debug, Clone, Default)]
pub(crate) struct Names(Arc<Mutex<Interned>>);

#[derive(Debug, Default)]
struct Interned {
    set: HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// When the set reaches this size, names no stream holds any more are dropped.
    prune_at: usize,
    /// The name sets streams hold, by a hash of their names' addresses.
    sets: HashMap<u64, Vec<Arc<[Arc<str>]>>>,
    /// How many sets `sets` holds, and the count at which unheld ones are dropped.
    set_count: usize,
    sets_prune_at: usize,
    hasher: foldhash::fast::FixedState,
}

/// Below this many names, nothing is pruned.
const MIN_PRUNE: usize = 1024;
/// Below this many name sets, none is pruned.
const MIN_SET_PRUNE: usize = 64;

/// Subscribed names in name order, each interned, shared by every stream subscribed to
/// the same names: an endpoint subscription of a few thousand names is one list for a
/// thousand proxies.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameSet(Option<Arc<[Arc<str>]>>);

impl NameSet {
    fn names(&self) -> &[Arc<str>] {
        self.0.as_deref().unwrap_or_default()
    }

    /// Whether `name` is in the set.
    pub fn contains(&self, name: &str) -> bool {
        self.names().binary_search_by(|n| (**n).cmp(name)).is_ok()
    }

    /// The names in order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<str>> {
        self.names().iter()
    }
}

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

    /// `current` with the names of `add` and without those of `remove` (a name in both
    /// is removed), shared with any stream holding the same set.
    pub fn change_set<'a>(
        &self,
        current: &NameSet,
        add: impl IntoIterator<Item = &'a str>,
        remove: impl IntoIterator<Item = &'a str>,
    ) -> NameSet {
        let mut added = self.intern(add);
        added.sort_unstable();
        added.dedup();
        let mut removed: Vec<&str> = remove.into_iter().collect();
        removed.sort_unstable();
        let kept = |name: &Arc<str>| removed.binary_search(&&**name).is_err();
        // Merge two ordered lists, dropping the removed names.
        let old = current.names();
        let mut names = Vec::with_capacity(old.len() + added.len());
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < added.len() {
            let next = match (old.get(i), added.get(j)) {
                (Some(a), Some(b)) if a == b => {
                    i += 1;
                    j += 1;
                    a
                }
                (Some(a), Some(b)) if a < b => {
                    i += 1;
                    a
                }
                (Some(a), None) => {
                    i += 1;
                    a
                }
                (_, Some(b)) => {
                    j += 1;
                    b
                }
                (None, None) => break,
            };
            if kept(next) {
                names.push(next.clone());
            }
        }
        self.share(names)
    }

    /// `names` as a set (a SotW request replaces the subscription).
    pub fn set_of<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> NameSet {
        self.change_set(&NameSet::default(), names, [])
    }

    /// The set of these names (interned, ordered, unique) that streams already hold, or
    /// this one, kept for the next stream.
    fn share(&self, names: Vec<Arc<str>>) -> NameSet {
        if names.is_empty() {
            return NameSet::default();
        }
        let mut interned = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut hasher = interned.hasher.build_hasher();
        for name in &names {
            hasher.write_usize(Arc::as_ptr(name).cast::<u8>().addr());
        }
        let key = hasher.finish();
        let same = |set: &Arc<[Arc<str>]>| {
            set.len() == names.len() && set.iter().zip(&names).all(|(a, b)| Arc::ptr_eq(a, b))
        };
        if let Some(set) = interned
            .sets
            .get(&key)
            .and_then(|b| b.iter().find(|s| same(s)))
        {
            return NameSet(Some(set.clone()));
        }
        let set: Arc<[Arc<str>]> = names.into();
        interned.sets.entry(key).or_default().push(set.clone());
        interned.set_count += 1;
        interned.prune_sets();
        NameSet(Some(set))
    }

    /// How many names are kept (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().set.len()
    }
}

impl Interned {
    /// Drops the sets no stream holds once their number has doubled since the last
    /// prune, before their names are pruned.
    fn prune_sets(&mut self) {
        if self.set_count < self.sets_prune_at.max(MIN_SET_PRUNE) {
            return;
        }
        self.sets.retain(|_, bucket| {
            bucket.retain(|set| Arc::strong_count(set) > 1);
            !bucket.is_empty()
        });
        self.set_count = self.sets.values().map(Vec::len).sum();
        self.sets_prune_at = self.set_count * 2;
    }

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
    fn streams_subscribed_to_the_same_names_share_one_set() {
        let names = Names::default();
        let a = names.set_of(["b", "a", "c", "a"]);
        assert_eq!(a.iter().map(|n| &**n).collect::<Vec<_>>(), ["a", "b", "c"]);
        let b = names.change_set(&names.set_of(["c"]), ["a", "b"], []);
        let (a_list, b_list) = (a.0.clone().unwrap(), b.0.clone().unwrap());
        assert!(Arc::ptr_eq(&a_list, &b_list));
        // Changed, a set is its own; the other stream's is untouched.
        let c = names.change_set(&b, ["d"], ["a", "x"]);
        assert_eq!(c.iter().map(|n| &**n).collect::<Vec<_>>(), ["b", "c", "d"]);
        assert!(c.contains("d") && !c.contains("a") && a.contains("a"));
        assert!(!names.change_set(&c, [], ["b", "c", "d"]).contains("b"));
    }

    #[test]
    fn sets_no_stream_holds_are_forgotten() {
        let names = Names::default();
        let kept = names.set_of(["kept"]);
        for i in 0..3 * MIN_SET_PRUNE {
            drop(names.set_of([format!("gone-{i}").as_str()]));
        }
        let interned = names.0.lock().unwrap();
        assert!(
            interned.set_count < 2 * MIN_SET_PRUNE,
            "{}",
            interned.set_count
        );
        drop(interned);
        assert!(Arc::ptr_eq(
            kept.0.as_ref().unwrap(),
            names.set_of(["kept"]).0.as_ref().unwrap()
        ));
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
