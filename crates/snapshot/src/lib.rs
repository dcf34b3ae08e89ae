//! Layers and file-system snapshots for strata.
//!
//! A file-system state is a [`Chain`] of layers, bottom to top. Each layer is
//! a directory stored once under `<store>/layers/<diffID hex>/` in overlayfs
//! *upperdir format* (a deleted path is a whiteout, a char device 0/0; an
//! opaque directory has `trusted.overlay.opaque=y`), named by its diffID: the
//! sha256 of the canonical uncompressed layer tar generated from it (see
//! [`write_dir_tar`] for the exact format). Layers never change once stored.
//!
//! - [`Layers`] stores layers: [`Layers::begin`] gives a directory to fill
//!   (COPY writes it directly, RUN uses it as the overlay upperdir through
//!   [`mount_rw`]), [`Layers::commit`] names it and moves it in
//!   ([`Layers::commit_incremental`] hashes only what differs from the layer
//!   the same step made last time, resuming from its checkpoint file),
//!   [`Layers::write_tar`] streams a layer tar, [`Layers::apply`] extracts a
//!   pulled layer with a confined applier (never `tar::Archive::unpack`).
//! - [`mount_chain`] mounts the merged read-only view of a chain,
//!   [`mount_rw`] a writable one; [`materialize`] copies the merged view into
//!   a plain directory without mounting.
//!
//! Mounting needs root (CAP_SYS_ADMIN); so do whiteouts and `trusted.*`
//! attributes. This crate knows nothing of Dockerfiles, the solver, image
//! manifests or compression: it must never depend on the frontend, solver or
//! exporter crates.

mod apply;
mod canonical;
mod chain;
mod checkpoint;
mod confine;
mod error;
mod hashpipe;
mod layers;
mod materialize;
mod midstate;
mod mount;
mod naming;
mod tarfmt;
mod whiteout;

pub use canonical::{write_dir_tar, TarOptions};
pub use chain::Chain;
pub use error::{Error, Result};
pub use layers::{layer_usage, Applied, Committed, Layers, NewLayer};
pub use materialize::materialize;
pub use mount::{mount_chain, mount_rw, MountGuard, Writable};
