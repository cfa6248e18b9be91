//! The memory allocator of every binary built on this crate (`weir`, its tests and
//! benchmarks): jemalloc, which returns freed memory to the system.
//!
//! With the system allocator (glibc), the memory a burst frees — a thousand proxies'
//! initial sync — stayed in `weir serve`'s RSS: 1,000 delta clients left it at ~950 MiB,
//! of which `malloc_trim` could hand back ~400 MiB. jemalloc's background thread purges
//! pages unused for a second.

/// The global allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at start: a background thread returns dirty pages to
/// the system after one second (the default waits ten), without a muzzy stage.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";
