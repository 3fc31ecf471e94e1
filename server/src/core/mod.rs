//! The domain: spawning, pruning and using databases, free of gRPC and wire types.

pub mod access;
pub mod audit;
pub mod backup;
pub mod catalog;
pub mod clock;
pub mod csv;
pub mod engine;
pub mod error;
pub mod events;
pub mod forge;
pub mod fork;
pub mod handles;
pub mod lifecycle;
pub mod limits;
pub mod names;
pub mod preview;
pub mod registry;
pub mod replay;
pub mod resume;
pub mod schema;
pub mod script;
pub mod summary;
pub mod table;
pub mod transfer;
pub mod value;
