//! The solver's operations: what each graph op does to the filesystem.
//!
//! This crate grows with the solver issue: today it holds the file operations — COPY
//! and ADD with Docker's semantics ([`copy`]), the other file actions ([`fileop`]),
//! ADD's archive extraction — written into a new layer directory over a read-only view
//! of the base. They are plain functions over directories, tested without mounts.
//!
//! Must never depend on the frontend or the exporter.

pub mod chmod;
pub mod content;
pub mod copy;
pub mod fileop;
mod fsutil;
mod glob;
mod unpack;

pub use fsutil::{resolve_in_root, Attrs};
