//! [`Arena`]: the global allocator of plugins built for wasm32.
//!
//! A plugin call allocates a few dozen small blocks (the lifted input strings, the
//! parsed configuration, the Envoy message, its encoding) and frees every one of them
//! before the call ends: the host's `post-return` frees the output. A general-purpose
//! `malloc` spends most of a short call on its bookkeeping, so plugins allocate from a
//! bump arena instead. It counts its live blocks and starts again from the bottom when
//! the count falls to zero, which happens between calls. A block that does not fit
//! (a huge input, or an arena kept busy by a long-lived allocation) comes from the
//! system allocator as before, so nothing fails that would not fail without the arena.
//!
//! Enabled by the default `arena-allocator` feature; turn it off to use your own
//! `#[global_allocator]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

/// Bytes of the arena plugins allocate from: enough for every block of a typical call.
pub const ARENA_BYTES: usize = 256 * 1024;

/// A bump allocator over `N` bytes that resets when its last live block is freed,
/// falling back to the system allocator for what does not fit. Single-threaded.
pub struct Arena<const N: usize> {
    region: UnsafeCell<Region<N>>,
    state: UnsafeCell<State>,
}

#[repr(C, align(16))]
struct Region<const N: usize>([u8; N]);

struct State {
    /// Offset of the first free byte.
    next: usize,
    /// Offset of the most recent block still at the top, if any (it may grow in place).
    top: Option<usize>,
    /// Blocks handed out from the arena and not yet freed.
    live: usize,
}

// SAFETY: wasm32 plugins without the `atomics` feature run on one thread, so the
// allocator is never entered concurrently.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<const N: usize> Sync for Arena<N> {}

impl<const N: usize> Arena<N> {
    /// An empty arena.
    pub const fn new() -> Self {
        Arena {
            region: UnsafeCell::new(Region([0; N])),
            state: UnsafeCell::new(State {
                next: 0,
                top: None,
                live: 0,
            }),
        }
    }

    fn base(&self) -> usize {
        self.region.get() as usize
    }

    /// The offset of `ptr` in the arena, if it points into it.
    fn offset_of(&self, ptr: *mut u8) -> Option<usize> {
        let offset = (ptr as usize).wrapping_sub(self.base());
        (offset < N).then_some(offset)
    }

    /// Carves a block for `layout` from the arena, if it fits.
    ///
    /// # Safety
    /// No other reference to the arena's state may be live.
    unsafe fn bump(&self, layout: Layout) -> Option<*mut u8> {
        // SAFETY: single-threaded, and no caller holds a reference across this call.
        let state = unsafe { &mut *self.state.get() };
        let base = self.base();
        // `Layout` alignments are powers of two: round up with a mask, not a division.
        let mask = layout.align() - 1;
        let start = ((base + state.next).checked_add(mask)? & !mask) - base;
        let end = start.checked_add(layout.size())?;
        if end > N {
            return None;
        }
        state.next = end;
        state.top = Some(start);
        state.live += 1;
        Some((base + start) as *mut u8)
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: blocks from the arena are disjoint, aligned and at least `layout.size()`
// long, and are only reused once every block has been freed; other blocks come from
// and go back to `System`.
unsafe impl<const N: usize> GlobalAlloc for Arena<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see `bump`; no state reference is held here.
        match unsafe { self.bump(layout) } {
            Some(ptr) => ptr,
            // SAFETY: forwarded with the caller's guarantees.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see `bump`; no state reference is held here.
        match unsafe { self.bump(layout) } {
            Some(ptr) => {
                // SAFETY: the block is valid for `layout.size()` bytes; arena memory is
                // reused, so it must be cleared.
                unsafe { ptr.write_bytes(0, layout.size()) };
                ptr
            }
            // SAFETY: forwarded with the caller's guarantees; `calloc` can skip
            // clearing memory fresh from the system.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(offset) = self.offset_of(ptr) else {
            // SAFETY: `ptr` came from `System` with this layout.
            return unsafe { System.dealloc(ptr, layout) };
        };
        // SAFETY: single-threaded, and no other state reference is live.
        let state = unsafe { &mut *self.state.get() };
        state.live -= 1;
        if state.live == 0 {
            state.next = 0;
            state.top = None;
        } else if state.top == Some(offset) {
            state.next = offset;
            state.top = None;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(offset) = self.offset_of(ptr) else {
            // SAFETY: `ptr` came from `System` with this layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        };
        {
            // SAFETY: single-threaded; the reference ends before `alloc` below.
            let state = unsafe { &mut *self.state.get() };
            if state.top == Some(offset) && offset + new_size <= N {
                state.next = offset + new_size;
                return ptr;
            }
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: `layout.align()` is a valid alignment and `new_size` was checked by
        // the caller not to overflow when rounded up to it.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: forwarded with the caller's guarantees.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for `layout.size()` bytes and disjoint.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 8).unwrap()
    }

    #[test]
    fn reuses_memory_once_every_block_is_freed() {
        let arena = Box::new(Arena::<1024>::new());
        unsafe {
            let a = arena.alloc(layout(100));
            let b = arena.alloc(layout(100));
            assert!(arena.offset_of(a).is_some() && arena.offset_of(b).is_some());
            assert_ne!(a, b);
            arena.dealloc(a, layout(100));
            arena.dealloc(b, layout(100));
            assert_eq!(arena.alloc(layout(100)), a);
        }
    }

    #[test]
    fn keeps_live_blocks_intact() {
        let arena = Box::new(Arena::<1024>::new());
        unsafe {
            let a = arena.alloc(layout(16));
            a.write_bytes(0xAB, 16);
            let b = arena.alloc(layout(16));
            arena.dealloc(b, layout(16));
            let c = arena.alloc(layout(16));
            c.write_bytes(0, 16);
            assert!((0..16).all(|i| *a.add(i) == 0xAB));
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_when_memory_is_reused() {
        let arena = Box::new(Arena::<1024>::new());
        unsafe {
            let a = arena.alloc(layout(32));
            a.write_bytes(0xFF, 32);
            arena.dealloc(a, layout(32));
            let b = arena.alloc_zeroed(layout(32));
            assert_eq!(a, b);
            assert!((0..32).all(|i| *b.add(i) == 0));
        }
    }

    #[test]
    fn respects_alignment() {
        let arena = Box::new(Arena::<1024>::new());
        unsafe {
            arena.alloc(layout(3));
            let aligned = arena.alloc(Layout::from_size_align(8, 64).unwrap());
            assert_eq!(aligned as usize % 64, 0);
        }
    }

    #[test]
    fn falls_back_to_the_system_allocator_when_full() {
        let arena = Box::new(Arena::<256>::new());
        unsafe {
            let big = arena.alloc(layout(4096));
            assert!(!big.is_null() && arena.offset_of(big).is_none());
            big.write_bytes(1, 4096);
            arena.dealloc(big, layout(4096));
        }
    }

    #[test]
    fn grows_the_top_block_in_place_and_moves_others() {
        let arena = Box::new(Arena::<1024>::new());
        unsafe {
            let a = arena.alloc(layout(8));
            a.write_bytes(7, 8);
            assert_eq!(arena.realloc(a, layout(8), 64), a);
            let b = arena.alloc(layout(8));
            let moved = arena.realloc(a, layout(64), 128);
            assert_ne!(moved, a);
            assert!((0..8).all(|i| *moved.add(i) == 7));
            let outside = arena.realloc(moved, layout(128), 4096);
            assert!(arena.offset_of(outside).is_none());
            assert!((0..8).all(|i| *outside.add(i) == 7));
            arena.dealloc(outside, layout(4096));
            arena.dealloc(b, layout(8));
            assert_eq!(arena.alloc(layout(8)), a);
        }
    }
}
