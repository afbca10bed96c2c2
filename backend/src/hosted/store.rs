//! The storage behind hosted images: one trait, two implementations (`sqlite.rs`: files + SQLite,
//! the embedded default; `s3pg.rs`: S3-compatible objects + PostgreSQL, for many backends).
//!
//! A store keeps image records and their bytes. It never sees HTTP, and it never builds a
//! filesystem path or object key from an id: bytes live under a random blob key that the record
//! names. Every method is safe to call concurrently from many requests (and, for the scale-out
//! store, many processes):
//! - `insert` and `create_draft` fail with 9433 when the id is taken, drafts included;
//! - a record becomes visible only once its bytes are durably written, and is removed before its
//!   bytes are, so a crash leaves at worst an unreferenced blob, never a record without bytes;
//! - `list` pages by the upload sequence (`position`), which only grows, so paging neither skips
//!   nor repeats the images that existed when it began, whatever is uploaded or deleted meanwhile.

use std::io;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use imgbind_wire::Error;
use serde_json::{Map, Value};

use super::filter::Condition;

/// One stored image (or draft), as a store returns it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredImage {
    /// The image id (a UUID, or the caller's custom id).
    pub(crate) id: String,
    /// The caller gave the id (custom ids cannot require signed URLs).
    pub(crate) custom_id: bool,
    pub(crate) filename: Option<String>,
    /// When it was uploaded (or the draft created), milliseconds since the Unix epoch.
    pub(crate) uploaded_ms: i64,
    pub(crate) require_signed_urls: bool,
    /// The caller's metadata object (`meta`), at most 1024 bytes as JSON.
    pub(crate) meta: Map<String, Value>,
    pub(crate) creator: Option<String>,
    /// A direct-upload draft: no bytes yet.
    pub(crate) draft: bool,
    /// Unix seconds after which a draft's upload link is refused (410).
    pub(crate) upload_expires: Option<i64>,
    /// The stored bytes: `None` for a draft.
    pub(crate) blob: Option<BlobRef>,
    /// Upload order: grows with every insert (and draft completion keeps the draft's).
    pub(crate) position: i64,
}

/// Where an image's bytes are, and what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobRef {
    /// A random key chosen by the store (never derived from the id).
    pub(crate) key: String,
    /// Length in bytes.
    pub(crate) size: u64,
    /// The stored format's media type (`image/png`, …), from the upload's validation.
    pub(crate) content_type: String,
}

/// A record to insert: everything but the store's own fields (position, blob key).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewImage {
    pub(crate) id: String,
    pub(crate) custom_id: bool,
    pub(crate) filename: Option<String>,
    pub(crate) uploaded_ms: i64,
    pub(crate) require_signed_urls: bool,
    pub(crate) meta: Map<String, Value>,
    pub(crate) creator: Option<String>,
}

/// The bytes of an upload, validated as an image.
#[derive(Debug, Clone)]
pub(crate) struct NewBlob {
    pub(crate) bytes: Bytes,
    pub(crate) content_type: String,
}

/// What `update` changes: `None` keeps the stored value (as Cloudflare's `update`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Changes {
    pub(crate) require_signed_urls: Option<bool>,
    /// Replaces the whole object (never merged).
    pub(crate) meta: Option<Map<String, Value>>,
    pub(crate) creator: Option<String>,
}

/// One page of `list`, before the cursor is encoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListQuery {
    /// Start after this position (exclusive), in the list's order.
    pub(crate) after: Option<i64>,
    /// At most this many images (the caller asks for one more to know if the list goes on).
    pub(crate) limit: u32,
    pub(crate) descending: bool,
    /// `Some("")`: only images without a creator; `Some(c)`: created by `c`.
    pub(crate) creator: Option<String>,
    /// Every condition must hold (AND).
    pub(crate) conditions: Vec<Condition>,
}

/// A stored image's bytes, streamed.
pub(crate) struct Blob {
    pub(crate) size: u64,
    pub(crate) stream: Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>,
}

impl StoredImage {
    /// Why this record's upload link cannot be used at `now` (Unix seconds), if it cannot: the
    /// one rule the HTTP flow and both stores' conditional updates agree on.
    pub(crate) fn upload_refusal(&self, now: i64) -> Option<Completion> {
        if !self.draft {
            Some(Completion::Used)
        } else if self.upload_expires.is_none_or(|at| at < now) {
            Some(Completion::Expired)
        } else {
            None
        }
    }
}

/// How a direct upload's completion went, when it did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    /// No draft (or image) with that id: 404.
    Unknown,
    /// The id holds an image, not a draft: the link was used (409).
    Used,
    /// The link's time is up (410).
    Expired,
}

/// The hosted images' storage. Errors are the wire's coded errors: 9433 for a taken id, 9523
/// for a store that fails (I/O, database).
#[async_trait]
pub(crate) trait Store: Send + Sync + 'static {
    /// What this store is, for the start-up log (no secrets).
    fn describe(&self) -> String;

    /// Writes `blob` durably, then makes the record visible. 9433 if the id is taken.
    async fn insert(&self, image: NewImage, blob: NewBlob) -> Result<StoredImage, Error>;

    /// A draft for a direct upload, its link valid until `expires` (Unix seconds). 9433 if the
    /// id is taken.
    async fn create_draft(&self, image: NewImage, expires: i64) -> Result<StoredImage, Error>;

    /// Gives a draft its bytes (once): the draft becomes an image with `filename`. `now` is
    /// Unix seconds.
    async fn complete_draft(
        &self,
        id: &str,
        filename: Option<String>,
        blob: NewBlob,
        now: i64,
    ) -> Result<Result<StoredImage, Completion>, Error>;

    /// The record for `id`, drafts included.
    async fn get(&self, id: &str) -> Result<Option<StoredImage>, Error>;

    /// The bytes of an image the store returned (`None` if it was deleted since).
    async fn read(&self, blob: &BlobRef) -> Result<Option<Blob>, Error>;

    /// Applies `changes`; `None` if there is no such image (drafts can be updated).
    async fn update(&self, id: &str, changes: Changes) -> Result<Option<StoredImage>, Error>;

    /// Removes the record, then its bytes; `false` if there was none.
    async fn delete(&self, id: &str) -> Result<bool, Error>;

    /// Images (not drafts) in upload order (or its reverse), filtered, after `query.after`.
    async fn list(&self, query: &ListQuery) -> Result<Vec<StoredImage>, Error>;
}
