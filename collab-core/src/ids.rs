//! Identifiers: sessions, participants, connections, users and sequence numbers.

pub use collab_wire::ids::*;
