//! The `minute` binary as operators and clients use it: roles and configuration, the
//! deployment files, and the whole product end to end in one process.

mod all_in_one;
mod binary;
mod deploy;
mod observability;
mod readme;
