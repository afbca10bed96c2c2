//! Hosted images (issue #13) through the real binary's HTTP API, run against every store: the
//! same suite for the embedded store (files + SQLite) and the scale-out one (S3 + PostgreSQL).
//! Covers Cloudflare's semantics (upload forms, ids, limits, list paging and filters, nulls,
//! update, delete, signed URLs, direct uploads, delivery), durability (SIGKILL mid-upload, a
//! restart keeps everything, 64 concurrent writers lose and duplicate nothing) and who may write.
//! The scale-out store runs on a real PostgreSQL and moto's S3 server (`support/s3pg.rs`).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use support::common::{file, multipart};
use support::hosted::*;
use support::spawned::multipart_type;

/// One test per function, per store.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Store::embedded()).await
                }
            )*
        }
        mod scale_out {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(store) = super::Store::scale_out() {
                        super::$name(store).await
                    }
                }
            )*
        }
    };
}

suite!(
    upload_details_bytes_round_trip,
    upload_forms_and_refusals,
    image_limits,
    missing_images_are_null_false_and_not_found,
    update_replaces_and_keeps,
    list_pages_sorts_and_filters,
    concurrent_writers_lose_and_duplicate_nothing,
    signed_urls_and_private_images,
    direct_uploads,
    delivery_variants_and_caching,
    who_may_write,
    hostile_ids_and_filenames_are_data,
    sigkill_mid_upload_leaves_nothing_half_written,
);

async fn upload_details_bytes_round_trip(store: Store) {
    let backend = Hosted::spawn(&store, &[]).await;
    let image = png(40, 30);
    let options =
        json!({"id": "cats/tom", "filename": "tom.png", "metadata": {"a": 1}, "creator": "u1"});
    let response = backend.upload(options, &image).await;
    assert_eq!(response.status, 201, "{}", response.text());
    let meta = json(&response);
    assert_eq!(meta["id"], "cats/tom");
    assert_eq!(meta["filename"], "tom.png");
    assert_eq!(meta["meta"], json!({"a": 1}));
    assert_eq!(meta["creator"], "u1");
    assert_eq!(meta["requireSignedURLs"], false);
    assert!(meta.get("draft").is_none());
    let uploaded = meta["uploaded"].as_str().unwrap();
    assert!(
        uploaded.ends_with('Z') && uploaded.len() == 24,
        "{uploaded}"
    );
    let variants: Vec<&str> = meta["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(variants.len(), 3, "{variants:?}");
    assert!(
        variants
            .iter()
            .any(|v| v.ends_with("/hosted/delivery/imgbind/cats/tom/public")),
        "{variants:?}"
    );

    let details = backend.on_image("GET", "cats/tom", "", b"").await;
    assert_eq!(details.status, 200);
    assert_eq!(json(&details), meta);
    let bytes = backend.on_image("GET", "cats/tom", "/bytes", b"").await;
    assert_eq!(bytes.status, 200);
    assert_eq!(bytes.header("content-type"), Some("image/png"));
    assert_eq!(bytes.body, image);

    // No id: a lower-case UUID v4.
    let generated = json(&backend.upload(json!({}), &image).await);
    let id = generated["id"].as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(id, id.to_lowercase());
    assert_eq!(&id[14..15], "4");
}

async fn upload_forms_and_refusals(store: Store) {
    use base64::Engine as _;
    let backend = Hosted::spawn(&store, &[]).await;
    let image = png(8, 8);
    // base64, with line breaks, is decoded by the backend (as Cloudflare's binding does).
    let text = base64::engine::general_purpose::STANDARD.encode(&image);
    let wrapped: String = text
        .as_bytes()
        .chunks(60)
        .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
        .collect();
    let response = backend
        .upload(
            json!({"id": "b64", "encoding": "base64"}),
            wrapped.as_bytes(),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(
        backend.on_image("GET", "b64", "/bytes", b"").await.body,
        image
    );
    let bad = backend
        .upload(json!({"encoding": "base64"}), b"not base64 !!!")
        .await;
    assert_eq!((bad.status, code(&bad)), (400, 9401));
    let odd = backend.upload(json!({"encoding": "hex"}), b"00").await;
    assert_eq!(code(&odd), 9401);
    // A taken id is a coded error, and the first image is untouched.
    let again = backend.upload(json!({"id": "b64"}), &png(4, 4)).await;
    assert_eq!((again.status, code(&again)), (409, 9433));
    assert_eq!(
        backend.on_image("GET", "b64", "/bytes", b"").await.body,
        image
    );
    // Not an image, empty.
    for body in [&b"hello, world"[..], b""] {
        let r = backend.upload(json!({}), body).await;
        assert_eq!((r.status, code(&r)), (415, 9412), "{}", r.text());
    }
    // Options that are wrong.
    let long_meta = json!({"metadata": {"x": "y".repeat(1100)}});
    for options in [
        long_meta,
        json!({"id": "550e8400-e29b-41d4-a716-446655440000"}),
        json!({"id": "/lead"}),
        json!({"id": "trail/"}),
        json!({"id": ""}),
        json!({"id": "x".repeat(1025)}),
        json!({"id": "custom", "requireSignedURLs": true}),
        json!({"metadata": "not an object"}),
        json!({"creator": "c".repeat(1025)}),
    ] {
        let r = backend.upload(options.clone(), &image).await;
        assert_eq!((r.status, code(&r)), (400, 9401), "{options}: {}", r.text());
    }
    // A malformed options query.
    let r = backend
        .call(
            Via::Unix,
            "POST",
            "/hosted/images?options=%7Bnope",
            &[],
            &image,
        )
        .await;
    assert_eq!(code(&r), 9401);
    // Nothing refused was stored.
    let all = backend.list_all(100, "asc").await;
    assert_eq!(all, vec!["b64".to_owned()]);
}

async fn image_limits(store: Store) {
    let backend = Hosted::spawn(&store, &[("IMGBIND_HOSTED_MAX_BYTES", "200000")]).await;
    // Over the byte limit (a 300 KB PNG of noise).
    let noise: Vec<u8> = (0..300 * 400 * 3)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut big = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_raw(300, 400, noise)
        .unwrap()
        .write_to(&mut big, image::ImageFormat::Png)
        .unwrap();
    assert!(big.get_ref().len() > 200_000);
    let r = backend.upload(json!({}), big.get_ref()).await;
    assert_eq!((r.status, code(&r)), (413, 9402), "{}", r.text());
    // Over 12 000 px a side, and over 100 MP (from the header: nothing is decoded).
    let wide = png(12_001, 1);
    let r = backend.upload(json!({}), &wide).await;
    assert_eq!((r.status, code(&r)), (413, 9413), "{}", r.text());
    let r = backend
        .upload(json!({}), &imgbind_testkit::png_header_only(10_001, 10_000))
        .await;
    assert_eq!((r.status, code(&r)), (413, 9413), "{}", r.text());
    // At the limits: fine.
    let r = backend.upload(json!({}), &png(12_000, 1)).await;
    assert_eq!(r.status, 201, "{}", r.text());
}

async fn missing_images_are_null_false_and_not_found(store: Store) {
    let backend = Hosted::spawn(&store, &[]).await;
    for (method, suffix, body) in [
        ("GET", "", &b""[..]),
        ("GET", "/bytes", b""),
        ("DELETE", "", b""),
        ("PATCH", "", br#"{"creator":"x"}"#),
        ("POST", "/signed-url", br#"{"variant":"public"}"#),
    ] {
        let r = backend.on_image(method, "nobody", suffix, body).await;
        assert_eq!(
            (r.status, code(&r)),
            (404, 9431),
            "{method} {suffix}: {}",
            r.text()
        );
        assert!(r.text().contains("not found"), "{}", r.text());
    }
    // Deleting twice: true, then not found.
    backend.upload(json!({"id": "once"}), &png(4, 4)).await;
    let first = backend.on_image("DELETE", "once", "", b"").await;
    assert_eq!(
        (first.status, json(&first)),
        (200, json!({"deleted": true}))
    );
    assert_eq!(
        backend.on_image("DELETE", "once", "", b"").await.status,
        404
    );
    assert_eq!(
        backend.on_image("GET", "once", "/bytes", b"").await.status,
        404
    );
}

async fn update_replaces_and_keeps(store: Store) {
    let backend = Hosted::spawn(&store, &[]).await;
    let made = json(
        &backend
            .upload(
                json!({"metadata": {"a": 1, "b": 2}, "creator": "c1"}),
                &png(4, 4),
            )
            .await,
    );
    let id = made["id"].as_str().unwrap();
    let r = backend
        .on_image("PATCH", id, "", br#"{"metadata":{"z":9}}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let updated = json(&r);
    assert_eq!(
        updated["meta"],
        json!({"z": 9}),
        "metadata replaces, never merges"
    );
    assert_eq!(updated["creator"], "c1", "omitted fields keep their value");
    assert_eq!(updated["uploaded"], made["uploaded"]);
    let r = json(
        &backend
            .on_image(
                "PATCH",
                id,
                "",
                br#"{"creator":null,"requireSignedURLs":true}"#,
            )
            .await,
    );
    assert_eq!(
        (r["creator"].as_str(), r["requireSignedURLs"].as_bool()),
        (Some("c1"), Some(true))
    );
    let same = json(&backend.on_image("PATCH", id, "", b"{}").await);
    assert_eq!(same["meta"], json!({"z": 9}));
    // A custom id cannot require signed URLs.
    backend.upload(json!({"id": "named"}), &png(4, 4)).await;
    let r = backend
        .on_image("PATCH", "named", "", br#"{"requireSignedURLs":true}"#)
        .await;
    assert_eq!(code(&r), 9401);
    let r = backend
        .on_image("PATCH", id, "", br#"{"metadata":7}"#)
        .await;
    assert_eq!(code(&r), 9401);
    assert_eq!(
        json(&backend.on_image("GET", id, "", b"").await)["meta"],
        json!({"z": 9})
    );
}

async fn list_pages_sorts_and_filters(store: Store) {
    let backend = Hosted::spawn(&store, &[]).await;
    let image = png(4, 4);
    let rows = [
        (
            "i0",
            json!({"n": 1, "tag": "red", "deep": {"x": true}}),
            Some("ann"),
        ),
        ("i1", json!({"n": 2, "tag": "blue"}), Some("bob")),
        ("i2", json!({"n": 3, "tag": "red"}), None),
        ("i3", json!({"n": "3", "tag": "green"}), Some("ann")),
        ("i4", json!({"n": 5.5}), Some("")),
        ("i5", json!({}), Some("bob")),
        ("i6", json!({"n": 8, "deep": {"x": false}}), Some("ann")),
    ];
    for (id, meta, creator) in &rows {
        let mut options = json!({"id": id, "metadata": meta});
        if let Some(c) = creator {
            options["creator"] = (*c).into();
        }
        assert_eq!(backend.upload(options, &image).await.status, 201);
    }
    // A draft is not listed.
    let draft = backend
        .call(Via::Unix, "POST", "/hosted/direct-uploads", &[], b"{}")
        .await;
    assert_eq!(draft.status, 201);
    let all: Vec<String> = rows.iter().map(|r| r.0.to_owned()).collect();
    assert_eq!(backend.list_all(3, "asc").await, all);
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(backend.list_all(2, "desc").await, reversed);
    assert_eq!(backend.list_all(1000, "asc").await, all);
    let default = backend.list(json!({})).await;
    assert_eq!(ids_of(&default), all);
    assert_eq!(default["listComplete"], true);
    assert!(default.get("cursor").is_none());

    let ids = |page: Value| ids_of(&page);
    assert_eq!(
        ids(backend.list(json!({"creator": "ann"})).await),
        ["i0", "i3", "i6"]
    );
    assert_eq!(
        ids(backend.list(json!({"creator": ""})).await),
        ["i2", "i4"]
    );
    let cases = [
        (json!({"n": 3}), vec!["i2"]),
        (json!({"n": "3"}), vec!["i3"]),
        (
            json!({"tag": {"in": ["red", "green"]}}),
            vec!["i0", "i2", "i3"],
        ),
        (json!({"n": {"gt": 2}}), vec!["i2", "i4", "i6"]),
        (json!({"n": {"gte": 2, "lte": 5.5}}), vec!["i1", "i2", "i4"]),
        (json!({"n": {"lt": 2}}), vec!["i0"]),
        (json!({"deep.x": true}), vec!["i0"]),
        (json!({"deep.x": {"eq": false}}), vec!["i6"]),
        (json!({"tag": "red", "n": {"in": [1, 2]}}), vec!["i0"]),
        (json!({"missing": 1}), vec![]),
    ];
    for (filter, want) in cases {
        let got = ids(backend.list(json!({"filter": {"metadata": filter}})).await);
        assert_eq!(got, want, "{filter}");
    }
    // The docs' spelling, combined with creator.
    assert_eq!(
        ids(backend
            .list(json!({"metadataFilter": {"tag": "red"}, "creator": "ann"}))
            .await),
        ["i0"]
    );
    // Filtered paging.
    let first = backend
        .list(json!({"limit": 1, "filter": {"metadata": {"tag": "red"}}}))
        .await;
    assert_eq!(ids_of(&first), ["i0"]);
    let second = backend
        .list(
            json!({"limit": 1, "cursor": first["cursor"], "filter": {"metadata": {"tag": "red"}}}),
        )
        .await;
    assert_eq!(
        (ids_of(&second), second["listComplete"].clone()),
        (vec!["i2".to_owned()], json!(true))
    );
    // Invalid requests are errors, never "everything".
    for bad in [
        json!({"limit": 0}),
        json!({"limit": 1001}),
        json!({"limit": 1.5}),
        json!({"sortOrder": "sideways"}),
        json!({"cursor": "bogus"}),
        json!({"cursor": first["cursor"], "sortOrder": "desc"}),
        json!({"filter": {"metadata": {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}}}),
        json!({"filter": {"metadata": {"bad-name": 1}}}),
        json!({"filter": {"metadata": {"n": {"ne": 1}}}}),
        json!({"filter": {"metadata": {"n": {"in": [1,2,3,4,5,6,7,8,9,10,11]}}}}),
        json!({"filter": {"metadata": {"a.b.c.d.e.f": 1}}}),
    ] {
        let r = backend.list_raw(bad.clone()).await;
        assert_eq!((r.status, code(&r)), (400, 9401), "{bad}: {}", r.text());
    }
}

async fn concurrent_writers_lose_and_duplicate_nothing(store: Store) {
    let backend = std::sync::Arc::new(Hosted::spawn(&store, &[]).await);
    let image = png(6, 6);
    // 40 images that exist before the churn starts; every other one is deleted during it.
    for i in 0..40 {
        assert_eq!(
            backend
                .upload(json!({"id": format!("old{i:02}")}), &image)
                .await
                .status,
            201
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let (backend, image) = (backend.clone(), image.clone());
        tasks.spawn(async move {
            let r = backend
                .upload(json!({"id": format!("new{i:02}")}), &image)
                .await;
            assert_eq!(r.status, 201, "{}", r.text());
            if i % 2 == 0 {
                let r = backend
                    .on_image("DELETE", &format!("old{:02}", i % 40), "", b"")
                    .await;
                assert!(r.status == 200 || r.status == 404, "{}", r.text());
            }
            backend.list(json!({"limit": 7})).await;
        });
    }
    // Meanwhile, one paged walk: every old image that survives is seen exactly once.
    let walker = {
        let backend = backend.clone();
        tokio::spawn(async move { backend.list_all(5, "asc").await })
    };
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let walked = walker.await.unwrap();
    let walked_set: BTreeSet<&String> = walked.iter().collect();
    assert_eq!(
        walked_set.len(),
        walked.len(),
        "a page repeated an id: {walked:?}"
    );
    let deleted: BTreeSet<String> = (0..64)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("old{:02}", i % 40))
        .collect();
    for i in 0..40 {
        let id = format!("old{i:02}");
        if !deleted.contains(&id) {
            assert!(walked_set.contains(&id), "{id} skipped: {walked:?}");
        }
    }
    // Afterwards: exactly the survivors, once each, in both orders.
    let mut want: BTreeSet<String> = (0..40)
        .map(|i| format!("old{i:02}"))
        .filter(|id| !deleted.contains(id))
        .collect();
    want.extend((0..64).map(|i| format!("new{i:02}")));
    for order in ["asc", "desc"] {
        let all = backend.list_all(9, order).await;
        assert_eq!(all.len(), want.len(), "{order}");
        assert_eq!(
            all.iter().cloned().collect::<BTreeSet<_>>(),
            want,
            "{order}"
        );
    }
    for id in &want {
        assert_eq!(
            backend.on_image("GET", id, "/bytes", b"").await.body,
            image,
            "{id}"
        );
    }
}

async fn signed_urls_and_private_images(store: Store) {
    let backend = Hosted::spawn(&store, &[]).await;
    let made = json(
        &backend
            .upload(json!({"requireSignedURLs": true}), &png(40, 30))
            .await,
    );
    let id = made["id"].as_str().unwrap().to_owned();
    let public_url = made["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .find(|v| v.ends_with("/public"))
        .unwrap()
        .to_owned();
    let r = backend.get_url(&public_url, &[]).await;
    assert_eq!((r.status, code(&r)), (401, 9430));
    let sign = |body: Value| {
        let backend = &backend;
        let id = id.clone();
        async move {
            backend
                .on_image("POST", &id, "/signed-url", body.to_string().as_bytes())
                .await
        }
    };
    // Never expiring: no exp.
    let url = json(&sign(json!({"variant": "public"})).await)["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!url.contains("exp=") && url.contains("?sig="), "{url}");
    let ok = backend.get_url(&url, &[]).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.header("cache-control"), Some("private, max-age=3600"));
    // Tampered: another variant, an extra parameter, a flipped digit.
    let thumb = url.replace("/public?", "/thumb?");
    assert_eq!(backend.get_url(&thumb, &[]).await.status, 401);
    assert_eq!(
        backend.get_url(&format!("{url}&x=1"), &[]).await.status,
        401
    );
    let flipped = format!(
        "{}{}",
        &url[..url.len() - 1],
        if url.ends_with('0') { '1' } else { '0' }
    );
    assert_eq!(backend.get_url(&flipped, &[]).await.status, 401);
    // Expiring.
    let url = json(&sign(json!({"variant": "thumb", "expiresIn": 1})).await)["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.contains("?exp=") && url.contains("&sig="), "{url}");
    assert_eq!(backend.get_url(&url, &[]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = backend.get_url(&url, &[]).await;
    assert_eq!((late.status, code(&late)), (401, 9430));
    assert!(late.text().contains("expired"), "{}", late.text());
    // A variant that is always public needs no signature; flexible variants never serve it.
    let open = public_url.replace("/public", "/open");
    assert_eq!(backend.get_url(&open, &[]).await.status, 200);
    assert_eq!(
        backend
            .get_url(&public_url.replace("/public", "/w=10"), &[])
            .await
            .status,
        401
    );
    // Bad requests.
    for body in [
        json!({}),
        json!({"variant": ""}),
        json!({"variant": "nope"}),
        json!({"variant": "public", "keyName": "other"}),
        json!({"variant": "public", "expiresIn": 0}),
        json!({"variant": "public", "expiresIn": 1.5}),
    ] {
        let r = sign(body.clone()).await;
        assert_eq!(code(&r), 9401, "{body}: {}", r.text());
    }
}

async fn direct_uploads(store: Store) {
    let backend = Hosted::spawn(&store, &[]).await;
    let create = |body: Value| {
        let backend = &backend;
        async move {
            backend
                .call(
                    Via::Unix,
                    "POST",
                    "/hosted/direct-uploads",
                    &[],
                    body.to_string().as_bytes(),
                )
                .await
        }
    };
    let r = create(json!({"metadata": {"k": "v"}, "creator": "cr"})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let link = json(&r);
    let id = link["id"].as_str().unwrap().to_owned();
    let upload_url = link["uploadURL"].as_str().unwrap().to_owned();
    assert!(
        upload_url.ends_with(&format!("/hosted/upload/{id}")),
        "{upload_url}"
    );
    let draft = json(&backend.on_image("GET", &id, "", b"").await);
    assert_eq!(draft["draft"], true);
    assert_eq!(
        backend.on_image("GET", &id, "/bytes", b"").await.status,
        404
    );
    assert!(ids_of(&backend.list(json!({})).await).is_empty());

    let image = png(10, 10);
    let form = |name: &str, content: &[u8]| multipart(&[file(name, content)]);
    let path = upload_url
        .strip_prefix(&format!("http://{}", backend.tcp))
        .unwrap()
        .to_owned();
    let post = |body: Vec<u8>, path: String| {
        let backend = &backend;
        async move {
            let ct = multipart_type();
            backend
                .call(
                    Via::TcpAnonymous,
                    "POST",
                    &path,
                    &[("content-type", ct.as_str())],
                    &body,
                )
                .await
        }
    };
    // Not an image: refused, and the link stays usable.
    let r = post(form("file", b"text"), path.clone()).await;
    assert_eq!(code(&r), 9412);
    let r = post(form("other", &image), path.clone()).await;
    assert_eq!(code(&r), 9401);
    let r = post(form("file", &image), path.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let done = json(&r);
    assert_eq!(done["success"], true);
    assert_eq!(done["result"]["meta"], json!({"k": "v"}));
    assert_eq!(done["result"]["creator"], "cr");
    assert!(done["result"].get("draft").is_none());
    assert_eq!(
        backend.on_image("GET", &id, "/bytes", b"").await.body,
        image
    );
    assert_eq!(ids_of(&backend.list(json!({})).await), vec![id.clone()]);
    // Used, unknown, expired.
    let r = post(form("file", &image), path.clone()).await;
    assert_eq!((r.status, code(&r)), (409, 9433));
    let r = post(
        form("file", &image),
        "/hosted/upload/no-such-link".to_owned(),
    )
    .await;
    assert_eq!((r.status, code(&r)), (404, 9431));
    let custom = json(&create(json!({"id": "dcu/custom", "expiresIn": 120})).await);
    assert_eq!(custom["id"], "dcu/custom");
    expire_draft(&store, "dcu/custom").await;
    let expired_path = custom["uploadURL"]
        .as_str()
        .unwrap()
        .strip_prefix(&format!("http://{}", backend.tcp))
        .unwrap()
        .to_owned();
    let r = post(form("file", &image), expired_path).await;
    assert_eq!((r.status, code(&r)), (410, 9434));
    // A taken id, bad lifetimes, a UUID as custom id.
    assert_eq!(code(&create(json!({"id": "dcu/custom"})).await), 9433);
    for bad in [
        json!({"expiresIn": 119}),
        json!({"expiresIn": 21601}),
        json!({"expiresIn": 200.5}),
        json!({"id": "550e8400-e29b-41d4-a716-446655440000"}),
    ] {
        let r = create(bad.clone()).await;
        assert_eq!(code(&r), 9401, "{bad}");
    }
    assert_eq!(create(json!({"expiresIn": 21600})).await.status, 201);
}

/// Makes a draft's link expire (the store's own clock cannot be moved from outside).
async fn expire_draft(store: &Store, id: &str) {
    if let Some(services) = &store.scale_out {
        let id = id.replace('\'', "''");
        services
            .sql(&format!(
                "UPDATE imgbind_images SET upload_expires = 1 WHERE id = '{id}'"
            ))
            .unwrap();
        return;
    }
    let data = store.data.as_ref().expect("an embedded store");
    let db = rusqlite::Connection::open(data.join("images.sqlite3")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let changed = db
        .execute("UPDATE images SET upload_expires = 1 WHERE id = ?1", [id])
        .unwrap();
    assert_eq!(changed, 1);
}

async fn delivery_variants_and_caching(store: Store) {
    let backend = Hosted::spawn(&store, &[]).await;
    let original = png(400, 300);
    let made = json(&backend.upload(json!({"id": "pics/a b%c"}), &original).await);
    let url = |variant: &str| {
        made["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .find(|v| v.ends_with("/public"))
            .unwrap()
            .replace("/public", &format!("/{variant}"))
    };
    assert!(
        url("public").contains("/pics/a%20b%25c/public"),
        "{}",
        url("public")
    );
    // The original, untouched.
    let r = backend.get_url(&url("public"), &[]).await;
    assert_eq!((r.status, r.body == original), (200, true));
    assert_eq!(r.header("cache-control"), Some("public, max-age=172800"));
    assert_eq!(r.header("vary"), Some("Accept"));
    let etag = r.header("etag").unwrap().to_owned();
    let again = backend
        .get_url(&url("public"), &[("if-none-match", etag.as_str())])
        .await;
    assert_eq!((again.status, again.body.len()), (304, 0));
    // Negotiated formats.
    let avif = backend
        .get_url(&url("public"), &[("accept", "image/avif,image/webp,*/*")])
        .await;
    assert_eq!(avif.header("content-type"), Some("image/avif"));
    assert_ne!(avif.header("etag"), Some(etag.as_str()));
    let webp = backend
        .get_url(&url("thumb"), &[("accept", "image/webp,*/*")])
        .await;
    assert_eq!(webp.header("content-type"), Some("image/webp"));
    let decoded = image::load_from_memory(&webp.body).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (32, 24));
    // Flexible variants.
    let flex = backend.get_url(&url("w=100,h=100,fit=contain"), &[]).await;
    assert_eq!(flex.status, 200, "{}", flex.text());
    let decoded = image::load_from_memory(&flex.body).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (100, 75));
    let r = backend.get_url(&url("w=abc"), &[]).await;
    assert_eq!(code(&r), 9401);
    let r = backend.get_url(&url("nosuch"), &[]).await;
    assert_eq!((r.status, code(&r)), (404, 9431));
    let r = backend
        .get_url(&url("public").replace("/imgbind/", "/otherhash/"), &[])
        .await;
    assert_eq!(r.status, 404);
    let r = backend
        .get_url("/hosted/delivery/imgbind/nobody/public", &[])
        .await;
    assert_eq!(r.status, 404);
    // Without flexible variants, an options segment is just an unknown variant.
    backend.kill().await;
    let strict = Hosted::spawn(&store, &[("IMGBIND_FLEXIBLE_VARIANTS", "")]).await;
    let r = strict
        .get_url("/hosted/delivery/imgbind/pics/a%20b%25c/w=100", &[])
        .await;
    assert_eq!((r.status, code(&r)), (404, 9431), "{}", r.text());
    assert_eq!(
        strict
            .get_url("/hosted/delivery/imgbind/pics/a%20b%25c/thumb", &[])
            .await
            .status,
        200
    );
}

async fn who_may_write(store: Store) {
    let backend = Hosted::spawn(&store, &[]).await;
    let image = png(4, 4);
    for via in [
        Via::TcpAnonymous,
        Via::TcpToken("wrong-token-0123456789"),
        Via::TcpToken(""),
    ] {
        let r = backend
            .upload_via(via, json!({"id": "sneaky"}), &image)
            .await;
        assert_eq!((r.status, code(&r)), (401, 9430), "{via:?}");
        let r = backend.call(via, "GET", "/hosted/images", &[], b"").await;
        assert_eq!(r.status, 401);
        let r = backend
            .call(via, "POST", "/hosted/direct-uploads", &[], b"{}")
            .await;
        assert_eq!(r.status, 401);
    }
    assert!(
        ids_of(&backend.list(json!({})).await).is_empty(),
        "a refused write changed nothing"
    );
    let r = backend
        .upload_via(Via::Tcp, json!({"id": "ok"}), &image)
        .await;
    assert_eq!(r.status, 201);
    let r = backend
        .call(Via::TcpAnonymous, "DELETE", "/hosted/images/ok", &[], b"")
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(backend.on_image("GET", "ok", "", b"").await.status, 200);
    // Delivery needs no token.
    assert_eq!(
        backend
            .get_url("/hosted/delivery/imgbind/ok/public", &[])
            .await
            .status,
        200
    );
    backend.kill().await;
    // No token configured: hosted routes over TCP are refused; the socket still works.
    let unset = Hosted::spawn(&store, &[("IMGBIND_API_TOKEN", "")]).await;
    let r = unset
        .upload_via(Via::TcpAnonymous, json!({"id": "t"}), &image)
        .await;
    assert_eq!((r.status, code(&r)), (401, 9430));
    assert!(r.text().contains("--api-token"), "{}", r.text());
    assert_eq!(unset.upload(json!({"id": "t"}), &image).await.status, 201);
}

async fn hostile_ids_and_filenames_are_data(store: Store) {
    let backend = Hosted::spawn(&store, &[]).await;
    let image = png(4, 4);
    let hostile: Vec<String> = [
        "etc/passwd",
        "..%2F..%2Fescape",
        "a/b/x./x./c",
        "\"><script>alert(1)</script>",
        "%00",
        "日本/語",
    ]
    .map(String::from)
    .to_vec();
    for id in &hostile {
        let r = backend
            .upload(
                json!({"id": id, "filename": "../../../../tmp/evil.png"}),
                &image,
            )
            .await;
        assert_eq!(r.status, 201, "{id}: {}", r.text());
        let details = json(&backend.on_image("GET", id, "", b"").await);
        assert_eq!(details["id"], id.as_str());
        assert_eq!(details["filename"], "../../../../tmp/evil.png");
        assert_eq!(backend.on_image("GET", id, "/bytes", b"").await.body, image);
        let variant = details["variants"][0].as_str().unwrap().to_owned();
        assert_eq!(
            backend.get_url(&variant, &[]).await.status,
            200,
            "{variant}"
        );
    }
    for id in ["../x", "a/../b", "/abs", "a/./b"] {
        let r = backend.upload(json!({"id": id}), &image).await;
        assert_eq!(code(&r), 9401, "{id}");
    }
    let mut listed = backend.list_all(100, "asc").await;
    listed.sort();
    let mut want = hostile.clone();
    want.sort();
    assert_eq!(listed, want);
    assert!(!std::path::Path::new("/tmp/evil.png").exists());
    if let Some(data) = &store.data {
        for path in files_under(data) {
            let name = path
                .strip_prefix(data)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            assert!(
                name == "lock" || name.starts_with("images.sqlite3") || name.starts_with("blobs/"),
                "unexpected file {name}"
            );
            assert!(!name.contains("evil") && !name.contains("passwd"), "{name}");
        }
    }
}

async fn sigkill_mid_upload_leaves_nothing_half_written(store: Store) {
    use tokio::io::AsyncWriteExt;
    let backend = Hosted::spawn(&store, &[]).await;
    let image = png(64, 64);
    for i in 0..5 {
        assert_eq!(
            backend
                .upload(json!({"id": format!("kept{i}")}), &image)
                .await
                .status,
            201
        );
    }
    // An upload that has sent half its body when the process is killed.
    let big = png(900, 900);
    let mut conn = tokio::net::UnixStream::connect(&backend.socket)
        .await
        .unwrap();
    let head = format!(
        "POST /hosted/images?options={} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        encode(&json!({"id": "half"}).to_string()),
        big.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&big[..big.len() / 2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    backend.kill().await;
    drop(conn);
    // A restart on the same store keeps every finished image and shows no trace of the other.
    let backend = Hosted::spawn(&store, &[]).await;
    let all = backend.list_all(100, "asc").await;
    assert_eq!(all, (0..5).map(|i| format!("kept{i}")).collect::<Vec<_>>());
    assert_eq!(backend.on_image("GET", "half", "", b"").await.status, 404);
    for id in &all {
        assert_eq!(backend.on_image("GET", id, "/bytes", b"").await.body, image);
    }
    if let Some(data) = &store.data {
        assert!(files_under(&data.join("tmp")).is_empty());
        assert_eq!(
            files_under(&data.join("blobs")).len(),
            5,
            "one blob per image, no orphan"
        );
    }
    // The id is free: the cut-off upload left no record.
    assert_eq!(
        backend.upload(json!({"id": "half"}), &image).await.status,
        201
    );
}

/// Any number of backends share one scale-out store: what one writes, the others serve, and a
/// race for one id has exactly one winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backends_share_one_scale_out_store() {
    let Some(store) = Store::scale_out() else {
        return;
    };
    let a = std::sync::Arc::new(Hosted::spawn(&store, &[]).await);
    let b = std::sync::Arc::new(Hosted::spawn(&store, &[]).await);
    let image = png(12, 12);
    assert_eq!(a.upload(json!({"id": "shared"}), &image).await.status, 201);
    assert_eq!(b.on_image("GET", "shared", "/bytes", b"").await.body, image);
    for i in 0..16 {
        let id = format!("race{i}");
        let (ra, rb) = tokio::join!(
            a.upload(json!({"id": id}), &image),
            b.upload(json!({"id": id}), &image)
        );
        let mut statuses = [ra.status, rb.status];
        statuses.sort();
        assert_eq!(statuses, [201, 409], "{id}");
    }
    assert_eq!(a.list_all(5, "asc").await, b.list_all(5, "asc").await);
    assert_eq!(b.list_all(100, "desc").await.len(), 17);
    assert_eq!(b.on_image("DELETE", "shared", "", b"").await.status, 200);
    assert_eq!(a.on_image("GET", "shared", "", b"").await.status, 404);
}
