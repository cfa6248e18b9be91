//! Splitting a pass's independent per-object work (route translations, Service clusters)
//! over the machine's cores.
//!
//! Only a pass with enough such work goes wide: below [`MIN_PARALLEL`] items (a pass that
//! changed a few routes) everything stays on the calling thread, where a thread start
//! would cost more than it saves. The threads take blocks of consecutive items in turn
//! and the results come back in the items' order, so the output is the same whatever
//! the number of threads and whichever thread did which block.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

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
/// [`MIN_PARALLEL`] items, else on the calling thread and up to `threads() - 1` more.
/// The threads take small blocks of consecutive items in turn from a shared counter, so
/// a thread the machine runs late (it is shared) takes fewer rather than holding up the
/// pass. Should a worker fail to start or panic, the calling thread does its blocks.
pub(crate) fn map<T, R, F>(items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    map_beside(items, f, || ()).0
}

/// [`map`], while the calling thread first runs `beside` (other work of the pass that
/// does not need the results), then joins the other threads on the items left.
pub(crate) fn map_beside<T, R, F, O>(items: &[T], f: F, beside: impl FnOnce() -> O) -> (Vec<R>, O)
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let threads = threads();
    if items.len() < MIN_PARALLEL || threads < 2 || forced_serial() {
        let other = beside();
        return (items.iter().map(&f).collect(), other);
    }
    // About 16 blocks per thread: few enough that taking one costs nothing, enough
    // that the threads finish together.
    let block = items.len().div_ceil(threads * 16).max(1);
    let blocks: Vec<&[T]> = items.chunks(block).collect();
    let next = AtomicUsize::new(0);
    let run = || {
        let mut done: Vec<(usize, Vec<R>)> = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(b) = blocks.get(i) else { break };
            done.push((i, b.iter().map(&f).collect()));
        }
        done
    };
    let (mut done, other) = std::thread::scope(|scope| {
        let workers: Vec<_> = (1..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("weir-translate".into())
                    .spawn_scoped(scope, run)
                    .ok()
            })
            .collect();
        let other = beside();
        let mut done = run();
        for w in workers {
            done.extend(w.join().unwrap_or_default());
        }
        (done, other)
    });
    // A block a panicked worker had taken is done here.
    let mut have = vec![false; blocks.len()];
    for (i, _) in &done {
        have[*i] = true;
    }
    for (i, b) in blocks.iter().enumerate() {
        if !have[i] {
            done.push((i, b.iter().map(&f).collect()));
        }
    }
    done.sort_unstable_by_key(|(i, _)| *i);
    let mut out = Vec::with_capacity(items.len());
    for (_, results) in done {
        out.extend(results);
    }
    (out, other)
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
