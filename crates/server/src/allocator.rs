//! When a process whose global allocator is mimalloc (`ochre run`, the CLI, the Python module)
//! hands freed memory back to the system. Without mimalloc as the allocator these do nothing.

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3 headers; the Rust
/// bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the OS at once instead of after 10 ms, unless the user set
/// `MIMALLOC_PURGE_DELAY`. mimalloc purges a thread's freed pages only when that thread
/// allocates again, and worker threads sit idle between requests, so a burst of writes or a
/// background index rebuild left tens of MiB resident: deleting 20,000 records with 2 KiB
/// documents peaked at 225 MiB this way and at 160 MiB with it, at the same throughput and
/// latency (docs/benchmarks.md, soak); 100k records ingested in a Python process ended 21 MiB
/// lower. For processes that do not run an embedding model.
pub fn return_freed_memory_at_once() {
    set_purge_delay(0);
}

/// Freed memory is kept for reuse, never returned (unless the user set `MIMALLOC_PURGE_DELAY`):
/// for processes that run the embedding model, whose forward passes allocate and free the same
/// large activations batch after batch; returning them made every batch fault its pages in
/// again (14,000 page faults and an eighth of the time for 300 texts, against 700 this way).
pub fn keep_freed_memory() {
    set_purge_delay(-1);
}

/// mimalloc's `mi_option_arena_eager_commit` (index 4 in its v2 and v3 headers).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// The memory mimalloc reserves for its heap is committed as it is used instead of all at once
/// (unless the user set `MIMALLOC_ARENA_EAGER_COMMIT`). Eagerly committed, the reservation is
/// advised to use transparent huge pages as a whole, so every 2 MiB region a small allocation
/// touches becomes resident: 100k records ingested in a Python process peaked 27 MiB higher
/// (462 against 435 MiB), at the same speed. Takes effect for reservations made after it, so it
/// is called before anything else allocates much. The vector arenas are mapped on their own
/// and still ask for huge pages (`ochre_index::memory`).
pub fn commit_heap_on_demand() {
    set_option(
        MI_OPTION_ARENA_EAGER_COMMIT,
        "MIMALLOC_ARENA_EAGER_COMMIT",
        0,
    );
}

/// Sets mimalloc's purge delay (milliseconds; -1 never purges) unless the user chose one.
fn set_purge_delay(ms: std::ffi::c_long) {
    set_option(MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY", ms);
}

/// Sets a mimalloc option unless the user set it through its environment variable `env`.
fn set_option(option: libmimalloc_sys::mi_option_t, env: &str, value: std::ffi::c_long) {
    if std::env::var_os(env).is_some() {
        return;
    }
    // SAFETY: sets a process-wide allocator option, an aligned `long` that mimalloc reads
    // without synchronisation: `commit_heap_on_demand` runs before any other thread exists; the
    // purge delay may change while threads allocate, and a reader then sees the old or the new
    // value (aligned word stores do not tear on the targets Ochre builds for). It only changes
    // how memory is committed and handed back.
    unsafe { libmimalloc_sys::mi_option_set(option, value) };
}
