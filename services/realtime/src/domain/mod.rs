//! The rules of the socket, free of I/O: the graphql-transport-ws messages and close codes
//! ([`protocol`]), how conversations events change who gets what ([`membership`]), and the
//! per-socket frame budget ([`rate`]).

pub mod membership;
pub mod projection;
pub mod protocol;
pub mod rate;
