//! Disk that comes back by itself: a background thread hands the pages deletes freed back to the
//! file system, a bounded step at a time (SQLite's incremental auto-vacuum).
//!
//! Reads never touch the store (they run on the in-memory state), so a step only makes writers
//! wait, and only for one short transaction. The thread is named `ochre-reclaim`, holds the store
//! and the poison flag but not the database, and is stopped and joined before the store closes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ochre_storage::Store;
use parking_lot::{Condvar, Mutex};

/// Free pages below which nothing is reclaimed (1 MiB at 16 KiB pages: not worth a transaction).
const MIN_FREE_PAGES: u64 = 64;
/// Pages given back per step (4 MiB at 16 KiB pages): one short transaction.
const STEP_PAGES: u32 = 256;
/// How often an idle reclaimer looks at the free list.
const POLL: Duration = Duration::from_secs(1);

/// The running reclaimer; dropping it stops and joins the thread.
pub(crate) struct Reclaimer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Reclaimer {
    /// Starts reclaiming for `store`, if its file supports it (stores created without incremental
    /// auto-vacuum do not until `ochre vacuum` converts them); `None` otherwise.
    pub(crate) fn start(store: Arc<Mutex<Store>>, poisoned: Arc<AtomicBool>) -> Option<Reclaimer> {
        match store.lock().reclaims() {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(
                    "the store predates incremental auto-vacuum; `ochre vacuum` converts it"
                );
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the store's auto-vacuum mode");
                return None;
            }
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ochre-reclaim".into())
            .spawn(move || run(&store, &poisoned, &signal))
            .map_err(|e| tracing::warn!(error = %e, "cannot start the reclaim thread"))
            .ok()?;
        Some(Reclaimer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        let (flag, wake) = &*self.stop;
        *flag.lock() = true;
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(store: &Mutex<Store>, poisoned: &AtomicBool, stop: &(Mutex<bool>, Condvar)) {
    let (flag, wake) = stop;
    loop {
        {
            let mut stopped = flag.lock();
            if *stopped {
                return;
            }
            let _ = wake.wait_for(&mut stopped, POLL);
            if *stopped {
                return;
            }
        }
        // An instance whose last commit has an unknown outcome writes nothing more.
        if poisoned.load(Ordering::SeqCst) {
            continue;
        }
        // Steps until the free list is small; the lock is let go between steps, so writers
        // interleave with them.
        let mut reclaimed = false;
        loop {
            if poisoned.load(Ordering::SeqCst) {
                break;
            }
            let mut s = store.lock();
            match s.free_pages() {
                Ok(free) if free >= MIN_FREE_PAGES => {}
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the store's free list");
                    break;
                }
            }
            if let Err(e) = s.reclaim(STEP_PAGES) {
                tracing::warn!(error = %e, "reclaiming free pages failed; will try again");
                break;
            }
            reclaimed = true;
            // Waiting writers go first.
            parking_lot::MutexGuard::unlock_fair(s);
            if *flag.lock() {
                return;
            }
            std::thread::yield_now();
        }
        // The file shrinks when the WAL holding the moved pages is checkpointed.
        if reclaimed && !poisoned.load(Ordering::SeqCst) {
            if let Err(e) = store.lock().checkpoint_wal() {
                tracing::warn!(error = %e, "checkpointing the WAL after reclaiming failed");
            }
        }
    }
}
