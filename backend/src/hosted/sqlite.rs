//! The embedded store (`--data DIR`): image bytes as files, records in SQLite.
//!
//! ```text
//! DIR/lock                  held (flock) while a backend uses DIR: one process per directory
//! DIR/images.sqlite3        the records (WAL, synchronous=FULL)
//! DIR/blobs/<k0k1>/<key>    one file per image, named by a random key (never by the id)
//! DIR/tmp/<key>.part        an upload being written; removed at start-up if one was cut off
//! ```
//!
//! An upload is written to `tmp/`, fsynced, renamed into `blobs/` and the directory fsynced;
//! only then is its record inserted (one transaction). A delete removes the record, then the
//! file. So a crash at any point leaves no record without its bytes; what it can leave (a
//! `.part` file, or a blob whose record was never committed or was deleted) is removed at the
//! next start. SQLite calls run on the blocking pool, one at a time (one connection).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use imgbind_wire::{Error, ErrorCode};
use nix::fcntl::{Flock, FlockArg};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde_json::{Map, Value};
use tokio_util::io::ReaderStream;

use super::filter::{Condition, Op, Scalar};
use super::store::{
    Blob, BlobRef, Changes, Completion, ListQuery, NewBlob, NewImage, Store, StoredImage,
};

/// Files and SQLite under one directory.
pub(crate) struct SqliteStore {
    dir: PathBuf,
    db: Arc<Mutex<Connection>>,
    /// Held for the store's life: a second backend on the same directory is refused.
    _lock: Arc<Flock<File>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS images (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    custom_id INTEGER NOT NULL,
    filename TEXT,
    uploaded_ms INTEGER NOT NULL,
    require_signed_urls INTEGER NOT NULL,
    meta TEXT NOT NULL,
    creator TEXT,
    draft INTEGER NOT NULL,
    upload_expires INTEGER,
    blob_key TEXT,
    blob_size INTEGER,
    content_type TEXT
);
CREATE INDEX IF NOT EXISTS images_by_creator ON images (creator, position) WHERE draft = 0;
CREATE INDEX IF NOT EXISTS images_listed ON images (draft, position);
";

const COLUMNS: &str = "position, id, custom_id, filename, uploaded_ms, require_signed_urls, meta, \
                       creator, draft, upload_expires, blob_key, blob_size, content_type";

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir`, removes what a cut-off upload or delete
    /// left, and takes the directory's lock.
    pub(crate) fn open(dir: &Path) -> Result<SqliteStore, Error> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            Error::internal(format!("hosted store {}: {what}: {e}", dir.display()))
        };
        for sub in ["blobs", "tmp"] {
            fs::create_dir_all(dir.join(sub)).map_err(|e| fail("cannot create", &e))?;
        }
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| fail("cannot open the lock file", &e))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| fail("another imgbind process is using this directory", &e))?;
        let db = Connection::open(dir.join("images.sqlite3"))
            .map_err(|e| fail("cannot open images.sqlite3", &e))?;
        db.pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| db.pragma_update(None, "synchronous", "FULL"))
            .and_then(|()| db.execute_batch(SCHEMA))
            .map_err(|e| fail("cannot set up images.sqlite3", &e))?;
        let store = SqliteStore {
            dir: dir.to_owned(),
            db: Arc::new(Mutex::new(db)),
            _lock: Arc::new(lock),
        };
        store.sweep().map_err(|e| fail("cannot clean up", &e))?;
        Ok(store)
    }

    /// Removes `.part` files and blobs no record names (what a crash can leave).
    fn sweep(&self) -> io::Result<()> {
        for entry in fs::read_dir(self.dir.join("tmp"))? {
            fs::remove_file(entry?.path())?;
        }
        let known: HashSet<String> = {
            let db = self.db.lock().expect("store lock");
            let mut query = db
                .prepare("SELECT blob_key FROM images WHERE blob_key IS NOT NULL")
                .map_err(io::Error::other)?;
            let keys = query
                .query_map([], |row| row.get::<_, String>(0))
                .map_err(io::Error::other)?
                .collect::<Result<_, _>>()
                .map_err(io::Error::other)?;
            keys
        };
        let mut removed = 0;
        for shard in fs::read_dir(self.dir.join("blobs"))? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for blob in fs::read_dir(shard.path())? {
                let blob = blob?;
                if !known.contains(blob.file_name().to_string_lossy().as_ref()) {
                    fs::remove_file(blob.path())?;
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "hosted store: removed blobs no record names");
        }
        Ok(())
    }

    fn blob_path(&self, key: &str) -> PathBuf {
        self.dir.join("blobs").join(&key[..2]).join(key)
    }

    /// Writes `bytes` under a new random key: temp file, fsync, rename, fsync the directory.
    fn write_blob(&self, blob: &NewBlob) -> io::Result<BlobRef> {
        let key = uuid::Uuid::new_v4().simple().to_string();
        let part = self.dir.join("tmp").join(format!("{key}.part"));
        let mut file = File::create(&part)?;
        let written = file.write_all(&blob.bytes).and_then(|()| file.sync_all());
        drop(file);
        if let Err(e) = written {
            let _ = fs::remove_file(&part);
            return Err(e);
        }
        let path = self.blob_path(&key);
        let shard = path.parent().expect("blob paths have a shard");
        fs::create_dir_all(shard)?;
        fs::rename(&part, &path)?;
        File::open(shard)?.sync_all()?;
        Ok(BlobRef {
            key,
            size: blob.bytes.len() as u64,
            content_type: blob.content_type.clone(),
        })
    }

    fn remove_blob(&self, key: &str) {
        if let Err(e) = fs::remove_file(self.blob_path(key)) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(key, error = %e, "hosted store: could not remove a blob (removed at next start)");
            }
        }
    }

    /// Runs `work` with the connection on the blocking pool.
    async fn with_db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let mut db = db.lock().expect("store lock");
            work(&mut db)
        })
        .await
        .map_err(|e| Error::internal(format!("hosted store task failed: {e}")))?
        .map_err(sql_error)
    }

    /// Runs blocking file work on the blocking pool.
    async fn with_files<T: Send + 'static>(
        self: &SqliteStore,
        work: impl FnOnce(&SqliteStore) -> io::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let this = SqliteStore {
            dir: self.dir.clone(),
            db: Arc::clone(&self.db),
            _lock: Arc::clone(&self._lock),
        };
        tokio::task::spawn_blocking(move || work(&this))
            .await
            .map_err(|e| Error::internal(format!("hosted store task failed: {e}")))?
            .map_err(|e| Error::internal(format!("hosted store: {e}")))
    }
}

fn sql_error(e: rusqlite::Error) -> Error {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Error::new(ErrorCode::Conflict, "an image with this id already exists")
        }
        _ => Error::internal(format!("hosted store database: {e}")),
    }
}

fn row_image(row: &Row<'_>) -> rusqlite::Result<StoredImage> {
    let meta: String = row.get(6)?;
    let meta: Map<String, Value> = serde_json::from_str(&meta).unwrap_or_default();
    let blob = match row.get::<_, Option<String>>(10)? {
        Some(key) => Some(BlobRef {
            key,
            size: row.get::<_, i64>(11)? as u64,
            content_type: row.get(12)?,
        }),
        None => None,
    };
    Ok(StoredImage {
        position: row.get(0)?,
        id: row.get(1)?,
        custom_id: row.get(2)?,
        filename: row.get(3)?,
        uploaded_ms: row.get(4)?,
        require_signed_urls: row.get(5)?,
        meta,
        creator: row.get(7)?,
        draft: row.get(8)?,
        upload_expires: row.get(9)?,
        blob,
    })
}

fn get_row(db: &Connection, id: &str) -> rusqlite::Result<Option<StoredImage>> {
    db.query_row(
        &format!("SELECT {COLUMNS} FROM images WHERE id = ?1"),
        [id],
        row_image,
    )
    .optional()
}

fn insert_row(
    db: &Connection,
    image: &NewImage,
    draft: bool,
    expires: Option<i64>,
    blob: Option<&BlobRef>,
) -> rusqlite::Result<StoredImage> {
    db.execute(
        "INSERT INTO images (id, custom_id, filename, uploaded_ms, require_signed_urls, meta, creator, \
         draft, upload_expires, blob_key, blob_size, content_type) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            image.id,
            image.custom_id,
            image.filename,
            image.uploaded_ms,
            image.require_signed_urls,
            Value::Object(image.meta.clone()).to_string(),
            image.creator,
            draft,
            expires,
            blob.map(|b| b.key.clone()),
            blob.map(|b| b.size as i64),
            blob.map(|b| b.content_type.clone()),
        ],
    )?;
    Ok(get_row(db, &image.id)?.expect("the row just inserted"))
}

/// The SQL for one condition, with its parameters (the JSON path is a parameter too).
fn condition_sql(condition: &Condition, params: &mut Vec<SqlValue>) -> String {
    let path: String = std::iter::once("$".to_owned())
        .chain(condition.path.iter().map(|s| format!(".\"{s}\"")))
        .collect();
    let eq = |scalar: &Scalar, params: &mut Vec<SqlValue>| -> String {
        params.push(SqlValue::Text(path.clone()));
        match scalar {
            Scalar::Str(s) => {
                params.push(SqlValue::Text(path.clone()));
                params.push(SqlValue::Text(s.clone()));
                "(json_type(meta, ?) = 'text' AND json_extract(meta, ?) = ?)".to_owned()
            }
            Scalar::Num(n) => {
                params.push(SqlValue::Text(path.clone()));
                params.push(SqlValue::Real(*n));
                "(json_type(meta, ?) IN ('integer', 'real') AND json_extract(meta, ?) = ?)"
                    .to_owned()
            }
            Scalar::Bool(b) => format!("(json_type(meta, ?) = '{b}')"),
        }
    };
    let compare = |sign: &str, n: f64, params: &mut Vec<SqlValue>| -> String {
        params.push(SqlValue::Text(path.clone()));
        params.push(SqlValue::Text(path.clone()));
        params.push(SqlValue::Real(n));
        format!("(json_type(meta, ?) IN ('integer', 'real') AND json_extract(meta, ?) {sign} ?)")
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
impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("embedded (SQLite and files in {})", self.dir.display())
    }

    async fn insert(&self, image: NewImage, blob: NewBlob) -> Result<StoredImage, Error> {
        let blob = self.with_files(move |s| s.write_blob(&blob)).await?;
        let key = blob.key.clone();
        let inserted = self
            .with_db(move |db| insert_row(db, &image, false, None, Some(&blob)))
            .await;
        if inserted.is_err() {
            self.with_files(move |s| {
                s.remove_blob(&key);
                Ok(())
            })
            .await?;
        }
        inserted
    }

    async fn create_draft(&self, image: NewImage, expires: i64) -> Result<StoredImage, Error> {
        self.with_db(move |db| insert_row(db, &image, true, Some(expires), None))
            .await
    }

    async fn complete_draft(
        &self,
        id: &str,
        filename: Option<String>,
        blob: NewBlob,
        now: i64,
    ) -> Result<Result<StoredImage, Completion>, Error> {
        // Cheap refusals first, so a used or expired link does not write a file.
        let Some(current) = self.get(id).await? else {
            return Ok(Err(Completion::Unknown));
        };
        if let Some(refused) = current.upload_refusal(now) {
            return Ok(Err(refused));
        }
        let blob = self.with_files(move |s| s.write_blob(&blob)).await?;
        let key = blob.key.clone();
        let id = id.to_owned();
        let outcome = self
            .with_db(move |db| {
                let tx = db.transaction()?;
                let changed = tx.execute(
                    "UPDATE images SET draft = 0, upload_expires = NULL, filename = ?2, \
                     blob_key = ?3, blob_size = ?4, content_type = ?5 \
                     WHERE id = ?1 AND draft = 1 AND upload_expires >= ?6",
                    params![
                        id,
                        filename,
                        blob.key,
                        blob.size as i64,
                        blob.content_type,
                        now
                    ],
                )?;
                let row = get_row(&tx, &id)?;
                tx.commit()?;
                Ok(match row {
                    Some(image) if changed == 1 => Ok(image),
                    Some(image) => Err(image.upload_refusal(now).unwrap_or(Completion::Used)),
                    None => Err(Completion::Unknown),
                })
            })
            .await;
        if !matches!(outcome, Ok(Ok(_))) {
            self.with_files(move |s| {
                s.remove_blob(&key);
                Ok(())
            })
            .await?;
        }
        outcome
    }

    async fn get(&self, id: &str) -> Result<Option<StoredImage>, Error> {
        let id = id.to_owned();
        self.with_db(move |db| get_row(db, &id)).await
    }

    async fn read(&self, blob: &BlobRef) -> Result<Option<Blob>, Error> {
        match tokio::fs::File::open(self.blob_path(&blob.key)).await {
            Ok(file) => Ok(Some(Blob {
                size: blob.size,
                stream: Box::pin(ReaderStream::with_capacity(file, 64 * 1024)),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::internal(format!("hosted store: {e}"))),
        }
    }

    async fn update(&self, id: &str, changes: Changes) -> Result<Option<StoredImage>, Error> {
        let id = id.to_owned();
        self.with_db(move |db| {
            let meta = changes.meta.map(|m| Value::Object(m).to_string());
            db.execute(
                "UPDATE images SET require_signed_urls = COALESCE(?2, require_signed_urls), \
                 meta = COALESCE(?3, meta), creator = COALESCE(?4, creator) WHERE id = ?1",
                params![id, changes.require_signed_urls, meta, changes.creator],
            )?;
            get_row(db, &id)
        })
        .await
    }

    async fn delete(&self, id: &str) -> Result<bool, Error> {
        let id = id.to_owned();
        let removed = self
            .with_db(move |db| {
                db.query_row(
                    "DELETE FROM images WHERE id = ?1 RETURNING blob_key",
                    [id],
                    |row| row.get::<_, Option<String>>(0),
                )
                .optional()
            })
            .await?;
        match removed {
            None => Ok(false),
            Some(key) => {
                if let Some(key) = key {
                    self.with_files(move |s| {
                        s.remove_blob(&key);
                        Ok(())
                    })
                    .await?;
                }
                Ok(true)
            }
        }
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<StoredImage>, Error> {
        let mut sql = format!("SELECT {COLUMNS} FROM images WHERE draft = 0");
        let mut params: Vec<SqlValue> = Vec::new();
        if let Some(after) = query.after {
            sql += if query.descending {
                " AND position < ?"
            } else {
                " AND position > ?"
            };
            params.push(SqlValue::Integer(after));
        }
        match query.creator.as_deref() {
            Some("") => sql += " AND creator IS NULL",
            Some(creator) => {
                sql += " AND creator = ?";
                params.push(SqlValue::Text(creator.to_owned()));
            }
            None => {}
        }
        for condition in &query.conditions {
            sql += " AND ";
            sql += &condition_sql(condition, &mut params);
        }
        sql += if query.descending {
            " ORDER BY position DESC LIMIT ?"
        } else {
            " ORDER BY position ASC LIMIT ?"
        };
        params.push(SqlValue::Integer(i64::from(query.limit)));
        self.with_db(move |db| {
            let mut statement = db.prepare_cached(&sql)?;
            let rows = statement.query_map(params_from_iter(params), row_image)?;
            rows.collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosted::filter;
    use bytes::Bytes;
    use serde_json::json;

    fn new_image(id: &str, meta: Value, creator: Option<&str>) -> NewImage {
        NewImage {
            id: id.to_owned(),
            custom_id: true,
            filename: Some("a.png".to_owned()),
            uploaded_ms: 1,
            require_signed_urls: false,
            meta: meta.as_object().unwrap().clone(),
            creator: creator.map(str::to_owned),
        }
    }

    fn blob() -> NewBlob {
        NewBlob {
            bytes: Bytes::from_static(b"bytes"),
            content_type: "image/png".to_owned(),
        }
    }

    fn query(conditions: Vec<Condition>) -> ListQuery {
        ListQuery {
            after: None,
            limit: 1000,
            descending: false,
            creator: None,
            conditions,
        }
    }

    /// The SQL filter agrees with `Condition::matches` on every stored value and filter.
    #[tokio::test]
    async fn sql_filter_agrees_with_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let values = [
            json!(3),
            json!(3.0),
            json!(2.5),
            json!("3"),
            json!("x"),
            json!(true),
            json!(false),
            json!(null),
            json!([3]),
            json!({"n": 3}),
        ];
        let mut metas = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let meta = json!({"a": v, "b": {"c": v}});
            store
                .insert(new_image(&format!("img{i}"), meta.clone(), None), blob())
                .await
                .unwrap();
            metas.push((format!("img{i}"), meta));
        }
        store
            .insert(new_image("empty", json!({}), None), blob())
            .await
            .unwrap();
        metas.push(("empty".to_owned(), json!({})));
        let filters = [
            json!({"a": 3}),
            json!({"a": "3"}),
            json!({"a": true}),
            json!({"a": false}),
            json!({"a": {"eq": "x"}}),
            json!({"a": {"in": [3, 2.5]}}),
            json!({"a": {"in": ["x", "3"]}}),
            json!({"a": {"gt": 2.5}}),
            json!({"a": {"gte": 2.5}}),
            json!({"a": {"lt": 3}}),
            json!({"a": {"lte": 3}}),
            json!({"b.c": 3}),
            json!({"b.c": {"gte": 2, "lt": 3}}),
            json!({"a.n": 3}),
            json!({"b.c.n": 3}),
            json!({"a": 3, "b.c": {"in": [3]}}),
        ];
        for f in filters {
            let conditions = filter::parse(&f).unwrap();
            let got: Vec<String> = store
                .list(&query(conditions.clone()))
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.id)
                .collect();
            let want: Vec<String> = metas
                .iter()
                .filter(|(_, m)| conditions.iter().all(|c| c.matches(m.as_object().unwrap())))
                .map(|(id, _)| id.clone())
                .collect();
            assert_eq!(got, want, "filter {f}");
        }
    }

    #[tokio::test]
    async fn a_second_process_cannot_open_the_same_directory() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SqliteStore::open(dir.path()).unwrap();
        let second = SqliteStore::open(dir.path()).err().expect("refused");
        assert!(
            second.message().contains("another imgbind process"),
            "{second:?}"
        );
    }

    #[tokio::test]
    async fn leftovers_of_a_crash_are_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SqliteStore::open(dir.path()).unwrap();
            store
                .insert(new_image("kept", json!({}), None), blob())
                .await
                .unwrap();
        }
        fs::write(dir.path().join("tmp/abc.part"), b"half").unwrap();
        fs::create_dir_all(dir.path().join("blobs/ff")).unwrap();
        fs::write(dir.path().join("blobs/ff/fforphan"), b"orphan").unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        assert!(!dir.path().join("tmp/abc.part").exists());
        assert!(!dir.path().join("blobs/ff/fforphan").exists());
        let kept = store.get("kept").await.unwrap().unwrap();
        assert!(store
            .read(kept.blob.as_ref().unwrap())
            .await
            .unwrap()
            .is_some());
    }
}
