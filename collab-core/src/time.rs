//! Time as the core sees it: a [`Timestamp`] passed in by the caller. The
//! core reads no clock; drivers do, and pass the time in.

pub use collab_wire::time::{duration_ms, Timestamp};
