//! The backend's receive + parse path: a whole `/transform` body (multipart framing, part order,
//! byte limits, then op-list and output validation) into a job. The first byte picks the chunk
//! size the body arrives in, so part boundaries fall across chunks.
#![no_main]

use bytes::Bytes;

/// The boundary the seeds use.
const CONTENT_TYPE: &str = "multipart/form-data; boundary=xYz";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let chunk = if chunk == 0 {
        body.len().max(1)
    } else {
        usize::from(chunk)
    };
    let chunks = body.chunks(chunk).map(Bytes::copy_from_slice).collect();
    if let Ok(job) = imgbind_backend::parse_transform_request(CONTENT_TYPE, chunks, 64 * 1024) {
        assert!(!job.sources.is_empty());
        let bytes: usize = job
            .sources
            .iter()
            .map(|s| match s {
                imgbind_engine::Source::Image(b) => b.len(),
                imgbind_engine::Source::Text(t) => t.len(),
            })
            .sum();
        assert!(bytes <= 64 * 1024);
    }
});
