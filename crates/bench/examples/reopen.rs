//! Times `Ochre::open` of an existing data directory, the work `ochre run` does before it
//! answers: `cargo run --release -p ochre-bench --example reopen -- DIR [TIMES]`.
//!
//! Each open after the first in one process reuses memory the allocator already holds; the first
//! is the one a restart pays. Prints the time and the process's resident memory after each open.

use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: reopen DIR [TIMES]")?;
    let times: usize = args.next().map_or(Ok(1), |s| s.parse())?;
    let mut held = Vec::new();
    for _ in 0..times {
        let t = Instant::now();
        let db = ochre::Ochre::open(&path)?;
        let elapsed = t.elapsed();
        // Dropping releases the directory lock; the next open must not pay for this one's drop.
        drop(db);
        held.push(elapsed);
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss = status
            .lines()
            .find(|l| l.starts_with("VmHWM"))
            .unwrap_or("VmHWM: unknown");
        println!(
            "open {:.3} s  peak {}",
            elapsed.as_secs_f64(),
            rss.trim_start_matches("VmHWM:").trim()
        );
    }
    Ok(())
}
