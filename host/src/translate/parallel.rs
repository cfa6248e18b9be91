//! Splitting a pass's independent per-object work (route translations, Service clusters)
//! over the machine's cores.
//!
//! Only a pass with enough such work goes wide: below [`MIN_PARALLEL`] items (a pass that
//! changed a few routes) everything stays on the calling thread, where a thread start
//! would cost more than it saves. The items are cut into contiguous chunks, one per
//! thread, and the results come back in the items' order, so the output is the same
//! whatever the number of threads.

use std::sync::OnceLock;

/// The fewest items worth spreading over threads.
pub(crate) const MIN_PARALLEL: usize = 200;

/// The most threads a pass uses: translation shares the machine with the xDS server.
const MAX_THREADS: usize = 4;

/// How many threads a pass may use (the available cores, at most [`MAX_THREADS`]).
fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            .clamp(1, MAX_THREADS)
    })
}

/// `f` of every item, in the items' order: on the calling thread for fewer than
/// [`MIN_PARALLEL`] items, else one contiguous chunk per thread, the first on the
/// calling thread. Should a worker thread fail to start or panic, its chunk is done on
/// the calling thread.
pub(crate) fn map<T, R, F>(items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let threads = threads();
    if items.len() < MIN_PARALLEL || threads < 2 || forced_serial() {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let mut chunks = items.chunks(chunk);
        let first = chunks.next().unwrap_or_default();
        let workers: Vec<_> = chunks
            .map(|c| {
                let handle = std::thread::Builder::new()
                    .name("weir-translate".into())
                    .spawn_scoped(scope, move || c.iter().map(f).collect::<Vec<R>>());
                (c, handle)
            })
            .collect();
        let mut out: Vec<R> = Vec::with_capacity(items.len());
        out.extend(first.iter().map(f));
        for (c, handle) in workers {
            match handle.ok().and_then(|h| h.join().ok()) {
                Some(done) => out.extend(done),
                None => out.extend(c.iter().map(f)),
            }
        }
        out
    })
}

#[cfg(test)]
thread_local! {
    /// Set by [`serially`].
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread runs every [`map`] on itself (tests only).
fn forced_serial() -> bool {
    #[cfg(test)]
    return SERIAL.get();
    #[cfg(not(test))]
    false
}

/// Runs `f` with every [`map`] on the calling thread, to compare with the wide output.
#[cfg(test)]
pub(crate) fn serially<R>(f: impl FnOnce() -> R) -> R {
    SERIAL.set(true);
    let out = f();
    SERIAL.set(false);
    out
}
