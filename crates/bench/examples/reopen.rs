//! Times `Ochre::open` of an existing data directory, the work `ochre run` does before it
//! answers: `cargo run --release -p ochre-bench --example reopen -- DIR [TIMES]`.
//!
//! Each open after the first in one process reuses memory the allocator already holds; the first
//! is the one a restart pays. Prints the time of each open and the process's peak memory so far.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::expect_used,
    reason = "a benchmark harness: it prints its results, and a failed run should stop loudly"
)]

use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: reopen DIR [TIMES]")?;
    let times: usize = args.next().map_or(Ok(1), |s| s.parse())?;
    for _ in 0..times {
        let t = Instant::now();
        let db = ochre::Ochre::open(&path)?;
        let elapsed = t.elapsed();
        // Dropped before the next open, which needs the directory lock; not timed.
        drop(db);
        let peak =
            ochre_bench::peak_rss().map_or("unknown".to_owned(), |b| format!("{} MiB", b >> 20));
        println!("open {:.3} s  peak {peak}", elapsed.as_secs_f64());
    }
    Ok(())
}
