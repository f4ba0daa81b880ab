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

/// The roles of a split deployment, one process each.
pub(crate) const SPLIT_ROLES: [&str; 6] = [
    "auth",
    "users",
    "conversations",
    "messaging",
    "realtime",
    "gateway",
];

/// Every command of the binary that runs something (`minute <role>`): `all` and the
/// split roles.
pub(crate) const ROLES: [&str; 7] = {
    let mut roles = ["all"; 7];
    let mut i = 0;
    while i < SPLIT_ROLES.len() {
        roles[i + 1] = SPLIT_ROLES[i];
        i += 1;
    }
    roles
};
