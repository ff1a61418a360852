//! The minibox image store: an OCI image layout on disk (`ROOT/oci/`) plus, beside it,
//! extracted layer directories and the other working state.
//! Owns references, blobs, manifests and configs, layer pack (diff) and unpack (extract),
//! digests, locking, GC, save and load. It never spawns processes or enters namespaces.

pub mod archive;
pub mod digest;
pub mod error;
pub mod fsck;
pub mod gc;
pub mod image;
mod layout;
pub mod lock;
pub mod pack;
pub mod pgzip;
pub mod reference;
pub mod registry;
pub mod resolve;
pub mod sources;
pub mod store;
pub mod union;
pub mod units;
pub mod unpack;
pub mod whiteout;

/// Re-exported so that every crate of the workspace uses the same version of the OCI types.
pub use oci_spec;

pub use digest::{Digest, HashReader, HashWriter};
pub use error::{Error, IoContext, Result};
pub use reference::{ImageName, Reference};
pub use store::Store;
