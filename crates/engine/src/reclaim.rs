//! Disk that comes back by itself: a background thread removes the records of deleted
//! collections and hands the pages deletes freed back to the file system, a bounded step at a
//! time.
//!
//! Deleting a collection is one short catalog transaction that marks its key for purging
//! (docs/format/sqlite.md); this thread then deletes its records [`PURGE_STEP`] at a time. Free
//! pages go back with SQLite's incremental auto-vacuum, [`STEP_PAGES`] at a time. Each step is
//! one short transaction and the store is let go between steps, so writers interleave with
//! them; readers use their own connections and never wait for a step. The thread is named
//! `ochre-reclaim`, holds the store and the poison flag but not the database, and is stopped and
//! joined before the store closes.

use std::collections::VecDeque;
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
/// Records of a deleted collection removed per step.
const PURGE_STEP: u32 = 2048;
/// How often an idle reclaimer looks at the free list.
const POLL: Duration = Duration::from_secs(1);

/// What the thread is told: stop, and which collections to purge.
#[derive(Default)]
struct Orders {
    stop: bool,
    purges: VecDeque<i64>,
}

type Shared = Arc<(Mutex<Orders>, Condvar)>;

/// The running reclaimer; dropping it stops and joins the thread.
pub(crate) struct Reclaimer {
    orders: Shared,
    thread: Option<JoinHandle<()>>,
}

impl Reclaimer {
    /// Starts purging `purges` (keys of deleted collections whose records remain) and reclaiming
    /// free pages for `store` (if its file supports it: stores created without incremental
    /// auto-vacuum do not until `ochre vacuum` converts them); `None` if the thread could not
    /// start.
    pub(crate) fn start(
        store: Arc<Mutex<Store>>,
        poisoned: Arc<AtomicBool>,
        purges: Vec<i64>,
    ) -> Option<Reclaimer> {
        let reclaims = match store.lock().reclaims() {
            Ok(true) => true,
            Ok(false) => {
                tracing::info!(
                    "the store predates incremental auto-vacuum; `ochre vacuum` converts it"
                );
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the store's auto-vacuum mode");
                false
            }
        };
        let orders: Shared = Arc::new((
            Mutex::new(Orders {
                stop: false,
                purges: purges.into(),
            }),
            Condvar::new(),
        ));
        let shared = orders.clone();
        let thread = std::thread::Builder::new()
            .name("ochre-reclaim".into())
            .spawn(move || run(&store, &poisoned, &shared, reclaims))
            .map_err(|e| tracing::warn!(error = %e, "cannot start the reclaim thread"))
            .ok()?;
        Some(Reclaimer {
            orders,
            thread: Some(thread),
        })
    }

    /// Asks for the records of deleted collection `key` to be removed.
    pub(crate) fn purge(&self, key: i64) {
        let (orders, wake) = &*self.orders;
        orders.lock().purges.push_back(key);
        wake.notify_all();
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        let (orders, wake) = &*self.orders;
        orders.lock().stop = true;
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(store: &Mutex<Store>, poisoned: &AtomicBool, shared: &Shared, reclaims: bool) {
    let (orders, wake) = &**shared;
    let stopped = || orders.lock().stop;
    // Set after a failed purge step, so the next one waits a poll interval.
    let mut failed = false;
    loop {
        {
            let mut o = orders.lock();
            if o.stop {
                return;
            }
            if o.purges.is_empty() || failed {
                let _ = wake.wait_for(&mut o, POLL);
            }
            failed = false;
            if o.stop {
                return;
            }
        }
        // An instance whose last commit has an unknown outcome writes nothing more (and the
        // thread only looks again after a poll interval).
        if poisoned.load(Ordering::SeqCst) {
            failed = true;
            continue;
        }
        // Purges first: they free the pages the next loop gives back.
        loop {
            // Its own statement: the queue's lock is let go before the step.
            let next = orders.lock().purges.front().copied();
            let Some(key) = next else { break };
            if poisoned.load(Ordering::SeqCst) || stopped() {
                break;
            }
            let mut s = store.lock();
            match s.purge_step(key, PURGE_STEP) {
                Ok(true) => {
                    orders.lock().purges.pop_front();
                    tracing::debug!(key, "purged a deleted collection's records");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, key, "purging a deleted collection failed; will try again");
                    failed = true;
                    break;
                }
            }
            // Waiting writers go first.
            parking_lot::MutexGuard::unlock_fair(s);
            std::thread::yield_now();
        }
        if !reclaims {
            continue;
        }
        // Steps until the free list is small.
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
            parking_lot::MutexGuard::unlock_fair(s);
            if stopped() {
                return;
            }
            std::thread::yield_now();
        }
        // The file shrinks when the WAL holding the moved pages is checkpointed.
        if reclaimed && !poisoned.load(Ordering::SeqCst) {
            if let Err(e) = store.lock().checkpoint_wal_passive() {
                tracing::warn!(error = %e, "checkpointing the WAL after reclaiming failed");
            }
        }
    }
}
