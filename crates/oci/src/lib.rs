//! OCI and Docker image vocabulary: image references as Docker normalises them
//! ([`Reference`]), platforms ([`Platform`]), media types, and our own serde structs for
//! image configs, manifests and indexes.
//!
//! The structs are ours, not `oci-spec`'s (design §3): maps are `BTreeMap`s so the bytes
//! we write are stable, Docker's extensions (`Healthcheck`, `OnBuild`, `Shell`,
//! `ArgsEscaped`) are kept, and unknown fields of base images survive in `extra`.
//! Pulled manifests are stored as raw bytes elsewhere and never re-serialized.
//!
//! Depends only on `strata-digest`; performs no I/O.

mod config;
mod manifest;
pub mod media_types;
mod platform;
mod reference;

pub use config::{EmptyObject, Healthcheck, History, ImageConfig, RootFs, RunConfig};
pub use manifest::{Descriptor, ImageIndex, ImageManifest};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError};
