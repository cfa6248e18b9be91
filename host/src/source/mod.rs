//! Sources: where the store's objects come from.
//!
//! Every source — the file source here (`file` reads paths once, `dir` keeps a watched
//! directory cached file by file), the Kubernetes watchers later — reports changes as
//! [`SourceEvent`]s, which [`crate::store::Store::handle`] applies. Nothing downstream of
//! the store knows which source is in use.

pub mod dir;
pub mod file;
pub mod kubernetes;

use crate::model::{Object, ObjectKey};

/// One change reported by a source, in Kubernetes terms.
#[derive(Clone, Debug)]
pub enum SourceEvent {
    /// An object was created or changed.
    Apply(Object),
    /// An object is gone.
    Delete(ObjectKey),
    /// The complete current set of objects (a relist, or a reread directory): anything not
    /// in it is gone.
    Reset(Vec<Object>),
}
