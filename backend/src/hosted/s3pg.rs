//! The scale-out store (`--database-url` + `--object-store-url`): records in PostgreSQL, bytes
//! in S3-compatible object storage (S3, R2, MinIO, Ceph…), so any number of stateless backends
//! share one store.
//!
//! - An upload puts its object under a new random key (`<prefix>/blobs/<key>`; an S3 PUT is
//!   atomic: the object exists whole or not at all), then inserts the record. Delete removes the
//!   record, then the object. A crash between the two leaves at worst an object no record names
//!   (never a record without bytes); such objects are invisible and can be removed with a bucket
//!   lifecycle rule or by comparing keys with the table.
//! - Every operation is one SQL statement, so concurrent backends need no lock beyond the
//!   database's own; a taken id is the primary key's unique violation (9433).
//! - `list` pages by an identity column (`position`) that only grows.
//! - The metadata filter runs in SQL on `jsonb`, with `Condition::matches`' strict semantics.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use imgbind_wire::{Error, ErrorCode};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use serde_json::{Map, Value};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::Row;

use super::filter::{Condition, Op, Scalar};
use super::store::{
    Blob, BlobRef, Changes, Completion, ListQuery, NewBlob, NewImage, Store, StoredImage,
};

/// PostgreSQL + an S3-compatible bucket.
pub(crate) struct S3PgStore {
    db: PgPool,
    objects: Arc<dyn ObjectStore>,
    prefix: String,
    /// For the log: database host/name and bucket, no credentials.
    description: String,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS imgbind_images (
        position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        custom_id BOOLEAN NOT NULL,
        filename TEXT,
        uploaded_ms BIGINT NOT NULL,
        require_signed_urls BOOLEAN NOT NULL,
        meta JSONB NOT NULL,
        creator TEXT,
        draft BOOLEAN NOT NULL,
        upload_expires BIGINT,
        blob_key TEXT,
        blob_size BIGINT,
        content_type TEXT
    )",
    "CREATE INDEX IF NOT EXISTS imgbind_images_by_creator ON imgbind_images (creator, position) WHERE NOT draft",
    "CREATE INDEX IF NOT EXISTS imgbind_images_listed ON imgbind_images (draft, position)",
];

/// Taken while the schema is created, so backends starting together do not race.
const SCHEMA_LOCK: i64 = 0x696d_6762_696e_6401;

const COLUMNS: &str = "position, id, custom_id, filename, uploaded_ms, require_signed_urls, meta, \
                       creator, draft, upload_expires, blob_key, blob_size, content_type";

/// Connects to both, creates the table if needed, and says clearly what could not be reached.
pub(crate) async fn open(database_url: &str, object_store_url: &str) -> Result<S3PgStore, Error> {
    let database = without_credentials(database_url);
    let db = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect(database_url)
        .await
        .map_err(|e| {
            Error::internal(format!(
                "cannot reach PostgreSQL at {database}: {}",
                sql_text(&e)
            ))
        })?;
    let mut tx = db.begin().await.map_err(db_error)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    for statement in SCHEMA {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;

    let rest = object_store_url.strip_prefix("s3://").ok_or_else(|| {
        Error::internal(format!(
            "--object-store-url {object_store_url:?} must be s3://BUCKET[/PREFIX]"
        ))
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let objects = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| Error::internal(format!("object store {object_store_url}: {e}")))?;
    let store = S3PgStore {
        db,
        objects: Arc::new(objects),
        prefix: prefix.trim_matches('/').to_owned(),
        description: format!("S3 + PostgreSQL (database {database}, bucket {bucket})"),
    };
    // Reach the bucket now, not at the first upload: a HEAD of a key that need not exist.
    let probe = ObjectPath::from(store.key_path("probe").to_string());
    match store.objects.head(&probe).await {
        Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(store),
        Err(e) => Err(Error::internal(format!(
            "cannot reach the bucket {bucket}: {e}"
        ))),
    }
}

/// `postgres://user:secret@host/db` → `host/db`.
fn without_credentials(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('?').next().unwrap_or(rest).to_owned()
}

fn sql_text(e: &sqlx::Error) -> String {
    e.to_string()
}

fn db_error(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e {
        if db.code().as_deref() == Some("23505") {
            return Error::new(ErrorCode::Conflict, "an image with this id already exists");
        }
    }
    Error::internal(format!("hosted store database: {}", sql_text(&e)))
}

fn object_error(e: object_store::Error) -> Error {
    Error::internal(format!("hosted store objects: {e}"))
}

fn row_image(row: &PgRow) -> Result<StoredImage, sqlx::Error> {
    let Json(meta): Json<Map<String, Value>> = row.try_get(6)?;
    let blob = match row.try_get::<Option<String>, _>(10)? {
        Some(key) => Some(BlobRef {
            key,
            size: row.try_get::<Option<i64>, _>(11)?.unwrap_or(0) as u64,
            content_type: row.try_get::<Option<String>, _>(12)?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(StoredImage {
        position: row.try_get(0)?,
        id: row.try_get(1)?,
        custom_id: row.try_get(2)?,
        filename: row.try_get(3)?,
        uploaded_ms: row.try_get(4)?,
        require_signed_urls: row.try_get(5)?,
        meta,
        creator: row.try_get(7)?,
        draft: row.try_get(8)?,
        upload_expires: row.try_get(9)?,
        blob,
    })
}

/// A bound parameter of a built query.
enum Param {
    Int(i64),
    Text(String),
    Path(Vec<String>),
    Float(f64),
    Bool(bool),
}

impl S3PgStore {
    fn key_path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(format!("blobs/{key}"))
        } else {
            ObjectPath::from(format!("{}/blobs/{key}", self.prefix))
        }
    }

    async fn put_blob(&self, blob: &NewBlob) -> Result<BlobRef, Error> {
        let key = uuid::Uuid::new_v4().simple().to_string();
        self.objects
            .put(&self.key_path(&key), PutPayload::from(blob.bytes.clone()))
            .await
            .map_err(object_error)?;
        Ok(BlobRef {
            key,
            size: blob.bytes.len() as u64,
            content_type: blob.content_type.clone(),
        })
    }

    async fn remove_blob(&self, key: &str) {
        match self.objects.delete(&self.key_path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(key, error = %e, "hosted store: could not remove an object"),
        }
    }

    async fn insert_row(
        &self,
        image: &NewImage,
        draft: bool,
        expires: Option<i64>,
        blob: Option<&BlobRef>,
    ) -> Result<StoredImage, Error> {
        let sql = format!(
            "INSERT INTO imgbind_images (id, custom_id, filename, uploaded_ms, require_signed_urls, \
             meta, creator, draft, upload_expires, blob_key, blob_size, content_type) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&image.id)
            .bind(image.custom_id)
            .bind(&image.filename)
            .bind(image.uploaded_ms)
            .bind(image.require_signed_urls)
            .bind(Json(&image.meta))
            .bind(&image.creator)
            .bind(draft)
            .bind(expires)
            .bind(blob.map(|b| b.key.clone()))
            .bind(blob.map(|b| b.size as i64))
            .bind(blob.map(|b| b.content_type.clone()))
            .fetch_one(&self.db)
            .await
            .map_err(db_error)?;
        row_image(&row).map_err(db_error)
    }
}

/// The SQL for one condition on `meta` (jsonb), pushing its parameters.
fn condition_sql(condition: &Condition, params: &mut Vec<Param>) -> String {
    let path = |params: &mut Vec<Param>| {
        params.push(Param::Path(condition.path.clone()));
        format!("${}", params.len())
    };
    let eq = |scalar: &Scalar, params: &mut Vec<Param>| -> String {
        let p = path(params);
        // jsonb equality is typed: a string never equals a number, 3 equals 3.0.
        let value = match scalar {
            Scalar::Str(s) => {
                params.push(Param::Text(s.clone()));
                format!("to_jsonb(${}::text)", params.len())
            }
            Scalar::Num(n) => {
                params.push(Param::Float(*n));
                format!("to_jsonb(${}::float8)", params.len())
            }
            Scalar::Bool(b) => {
                params.push(Param::Bool(*b));
                format!("to_jsonb(${}::boolean)", params.len())
            }
        };
        format!("(meta #> {p}::text[]) = {value}")
    };
    let compare = |sign: &str, n: f64, params: &mut Vec<Param>| -> String {
        let p = path(params);
        params.push(Param::Float(n));
        format!(
            "(CASE WHEN jsonb_typeof(meta #> {p}::text[]) = 'number' \
             THEN (meta #>> {p}::text[])::float8 {sign} ${} ELSE false END)",
            params.len()
        )
    };
    match &condition.op {
        Op::Eq(s) => eq(s, params),
        Op::In(values) => {
            let any: Vec<String> = values.iter().map(|s| eq(s, params)).collect();
            format!("({})", any.join(" OR "))
        }
        Op::Gt(n) => compare(">", *n, params),
        Op::Gte(n) => compare(">=", *n, params),
        Op::Lt(n) => compare("<", *n, params),
        Op::Lte(n) => compare("<=", *n, params),
    }
}

#[async_trait]
impl Store for S3PgStore {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn insert(&self, image: NewImage, blob: NewBlob) -> Result<StoredImage, Error> {
        let blob = self.put_blob(&blob).await?;
        let inserted = self.insert_row(&image, false, None, Some(&blob)).await;
        if inserted.is_err() {
            self.remove_blob(&blob.key).await;
        }
        inserted
    }

    async fn create_draft(&self, image: NewImage, expires: i64) -> Result<StoredImage, Error> {
        self.insert_row(&image, true, Some(expires), None).await
    }

    async fn complete_draft(
        &self,
        id: &str,
        filename: Option<String>,
        blob: NewBlob,
        now: i64,
    ) -> Result<Result<StoredImage, Completion>, Error> {
        let Some(current) = self.get(id).await? else {
            return Ok(Err(Completion::Unknown));
        };
        if let Some(refused) = current.upload_refusal(now) {
            return Ok(Err(refused));
        }
        let blob = self.put_blob(&blob).await?;
        let sql = format!(
            "UPDATE imgbind_images SET draft = false, upload_expires = NULL, filename = $2, \
             blob_key = $3, blob_size = $4, content_type = $5 \
             WHERE id = $1 AND draft AND upload_expires >= $6 RETURNING {COLUMNS}"
        );
        let updated = sqlx::query(&sql)
            .bind(id)
            .bind(&filename)
            .bind(&blob.key)
            .bind(blob.size as i64)
            .bind(&blob.content_type)
            .bind(now)
            .fetch_optional(&self.db)
            .await
            .map_err(db_error);
        match updated {
            Ok(Some(row)) => Ok(Ok(row_image(&row).map_err(db_error)?)),
            other => {
                self.remove_blob(&blob.key).await;
                other?;
                Ok(Err(match self.get(id).await? {
                    None => Completion::Unknown,
                    Some(image) => image.upload_refusal(now).unwrap_or(Completion::Used),
                }))
            }
        }
    }

    async fn get(&self, id: &str) -> Result<Option<StoredImage>, Error> {
        let sql = format!("SELECT {COLUMNS} FROM imgbind_images WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.db)
            .await
            .map_err(db_error)?;
        row.as_ref().map(row_image).transpose().map_err(db_error)
    }

    async fn read(&self, blob: &BlobRef) -> Result<Option<Blob>, Error> {
        match self.objects.get(&self.key_path(&blob.key)).await {
            Ok(result) => Ok(Some(Blob {
                size: blob.size,
                stream: Box::pin(result.into_stream().map_err(std::io::Error::other).boxed()),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(object_error(e)),
        }
    }

    async fn update(&self, id: &str, changes: Changes) -> Result<Option<StoredImage>, Error> {
        let sql = format!(
            "UPDATE imgbind_images SET require_signed_urls = COALESCE($2, require_signed_urls), \
             meta = COALESCE($3, meta), creator = COALESCE($4, creator) WHERE id = $1 \
             RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(changes.require_signed_urls)
            .bind(changes.meta.map(Json))
            .bind(changes.creator)
            .fetch_optional(&self.db)
            .await
            .map_err(db_error)?;
        row.as_ref().map(row_image).transpose().map_err(db_error)
    }

    async fn delete(&self, id: &str) -> Result<bool, Error> {
        let removed = sqlx::query("DELETE FROM imgbind_images WHERE id = $1 RETURNING blob_key")
            .bind(id)
            .fetch_optional(&self.db)
            .await
            .map_err(db_error)?;
        let Some(row) = removed else {
            return Ok(false);
        };
        if let Some(key) = row.try_get::<Option<String>, _>(0).map_err(db_error)? {
            self.remove_blob(&key).await;
        }
        Ok(true)
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<StoredImage>, Error> {
        let mut sql = format!("SELECT {COLUMNS} FROM imgbind_images WHERE NOT draft");
        let mut params = Vec::new();
        if let Some(after) = query.after {
            params.push(Param::Int(after));
            let sign = if query.descending { "<" } else { ">" };
            sql += &format!(" AND position {sign} ${}", params.len());
        }
        match query.creator.as_deref() {
            Some("") => sql += " AND creator IS NULL",
            Some(creator) => {
                params.push(Param::Text(creator.to_owned()));
                sql += &format!(" AND creator = ${}", params.len());
            }
            None => {}
        }
        for condition in &query.conditions {
            sql += " AND ";
            sql += &condition_sql(condition, &mut params);
        }
        params.push(Param::Int(i64::from(query.limit)));
        let order = if query.descending { "DESC" } else { "ASC" };
        sql += &format!(" ORDER BY position {order} LIMIT ${}", params.len());
        let mut built = sqlx::query(&sql);
        for param in params {
            built = match param {
                Param::Int(v) => built.bind(v),
                Param::Text(v) => built.bind(v),
                Param::Path(v) => built.bind(v),
                Param::Float(v) => built.bind(v),
                Param::Bool(v) => built.bind(v),
            };
        }
        let rows = built.fetch_all(&self.db).await.map_err(db_error)?;
        rows.iter()
            .map(row_image)
            .collect::<Result<_, _>>()
            .map_err(db_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_never_shows_credentials() {
        assert_eq!(
            without_credentials("postgres://u:secret@db.internal:5432/images?sslmode=require"),
            "db.internal:5432/images"
        );
        assert_eq!(without_credentials("postgres:///images"), "/images");
    }
}
