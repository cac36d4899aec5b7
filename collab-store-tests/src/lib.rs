//! What every `Store` implementation is tested with: builders for the data
//! a store keeps ([`build`]) and the model test against the reference
//! semantics ([`model`]). collab-sqlite and collab-redis run the same suite.
//! [`redis_server`] starts a real Redis for the tests that need one, and
//! [`proxy`] cuts one process off from it.

pub mod build;
pub mod model;
pub mod proxy;
pub mod redis_server;
