//! The allocator's settings, shared by the example and the benchmark server
//! (`benches/src/bin/collab-bench-server.rs` includes this file), which both
//! run on jemalloc.

/// How jemalloc gives memory back. Freed pages go back to the system a
/// second after they were last used (jemalloc's default is ten seconds,
/// during which a server that just unloaded sessions or finished a big
/// load holds several times the memory it uses), in the background thread,
/// not whenever some thread happens to allocate. A page used again within
/// the second costs nothing; one used later costs a page fault.
pub fn tune() -> tikv_jemalloc_ctl::Result<()> {
    use tikv_jemalloc_ctl::{Access as _, AsName as _};
    const DECAY_MS: isize = 1_000;
    // `arenas.*` for arenas made from now on, `arena.<i>.*` for those made
    // already (few, this early; the others do not exist yet and refuse).
    b"arenas.dirty_decay_ms\0".name().write(DECAY_MS)?;
    b"arenas.muzzy_decay_ms\0".name().write(0isize)?;
    for i in 0..tikv_jemalloc_ctl::arenas::narenas::read()? {
        let _ = format!("arena.{i}.dirty_decay_ms\0")
            .as_bytes()
            .name()
            .write(DECAY_MS);
        let _ = format!("arena.{i}.muzzy_decay_ms\0")
            .as_bytes()
            .name()
            .write(0isize);
    }
    tikv_jemalloc_ctl::background_thread::write(true)
}

/// For the runtime's `on_thread_park`: a worker thread that runs out of work
/// gives the objects its thread cache keeps for quick reuse back to the
/// shared arenas, once it has freed [`CACHE_FLUSH_BYTES`] since it last did
/// (by turning its cache off and on again: jemalloc flushes a cache it
/// turns off; its `thread.idle` does the same but takes no value, which
/// only an `unsafe` call can pass). Freed objects wait in the cache, counted
/// as live and keeping their pages from going back to the system: after a
/// thousand sessions unloaded, the caches held over half of what was still
/// live. A worker other than the one that drives the runtime's timers may
/// park for good once the server is idle, so the flush is decided at every
/// park by what the thread freed, not by time: an idle worker keeps at most
/// that much in its cache, and a busy one flushes about once for every
/// [`CACHE_FLUSH_BYTES`] it frees.
#[allow(dead_code)] // the benchmark server's runtime is `#[tokio::main]`'s
pub fn thread_parked() {
    use std::cell::Cell;
    use tikv_jemalloc_ctl::{thread, Access as _, AsName as _};
    thread_local! {
        static FREED: Cell<Option<(thread::ThreadLocal<u64>, u64)>> = const { Cell::new(None) };
    }
    FREED.with(|state| {
        let (counter, at_flush) = match state.get() {
            Some(known) => known,
            None => match thread::deallocatedp::read() {
                Ok(counter) => (counter, 0),
                Err(_) => return,
            },
        };
        let freed = counter.get();
        if freed.saturating_sub(at_flush) < CACHE_FLUSH_BYTES {
            state.set(Some((counter, at_flush)));
            return;
        }
        let cache = b"thread.tcache.enabled\0".name();
        // Neither write fails for this name and a bool; if the second did,
        // the thread would allocate without a cache until its next flush.
        let _ = cache.write(false);
        let _ = cache.write(true);
        state.set(Some((counter, counter.get())));
    });
}

/// Bytes a runtime worker frees between flushes of its thread cache: about
/// the most an idle worker's cache keeps.
#[allow(dead_code)]
const CACHE_FLUSH_BYTES: u64 = 256 * 1024;

/// jemalloc's counts: bytes live (`allocated`) and bytes in the pages it
/// holds from the system (`resident`).
pub fn heap() -> Option<(usize, usize)> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    Some((
        stats::allocated::read().ok()?,
        stats::resident::read().ok()?,
    ))
}

/// [`heap`] as gauges, with the two parts of `resident` that are not live
/// objects: pages that hold at least one live object (`active`, so
/// `active - allocated` is what fragmentation costs) and jemalloc's own
/// bookkeeping (`metadata`, a few percent of the largest the heap has been,
/// which jemalloc never gives back).
#[allow(dead_code)] // the benchmark server has no /metrics
pub fn report_heap() {
    use tikv_jemalloc_ctl::stats;
    if let Some((allocated, resident)) = heap() {
        metrics::gauge!("interview_room_heap_allocated_bytes").set(allocated as f64);
        metrics::gauge!("interview_room_heap_resident_bytes").set(resident as f64);
    }
    if let (Ok(active), Ok(metadata)) = (stats::active::read(), stats::metadata::read()) {
        metrics::gauge!("interview_room_heap_active_bytes").set(active as f64);
        metrics::gauge!("interview_room_heap_metadata_bytes").set(metadata as f64);
    }
}
