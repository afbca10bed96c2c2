//! Hosted images: the storage half of the Images binding (`docs/HOSTED.md`).

pub(crate) mod filter;
pub(crate) mod store;
