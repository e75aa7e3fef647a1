//! Subcommands of the front end with many flags, one file each, beside `main.rs`.

pub mod sweep;
