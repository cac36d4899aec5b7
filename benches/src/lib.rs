//! Benchmarks for collab; see `benches/` and BENCHMARKS.md.
