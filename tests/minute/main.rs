//! The `minute` binary as operators and clients use it: roles and configuration, the
//! deployment files, and the whole product end to end in one process.

mod access;
mod all_in_one;
mod bad_input;
mod binary;
mod deploy;
mod faults;
mod observability;
mod poison;
mod readme;
mod stack;

/// Every command of the binary that runs something (`minute <role>`).
pub(crate) const ROLES: [&str; 7] = [
    "all",
    "auth",
    "users",
    "conversations",
    "messaging",
    "realtime",
    "gateway",
];

/// The roles of a split deployment, one process each.
pub(crate) const SPLIT_ROLES: [&str; 6] = [
    "auth",
    "users",
    "conversations",
    "messaging",
    "realtime",
    "gateway",
];
