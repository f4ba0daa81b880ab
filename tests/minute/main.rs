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
