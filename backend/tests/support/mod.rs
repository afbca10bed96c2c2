//! Helpers shared by the backend's black-box tests, in one place: `common` (an in-process server,
//! workerd-style multipart bodies, a raw HTTP/1 client that counts every byte), `spawned` (the real
//! binary on a temporary socket, with its memory read from `/proc`), `nginx` (a reverse proxy in
//! front of it) and `slow_reader` (a client that reads its answer slowly). Each test file declares
//! `mod support;` and uses what it needs.

#![allow(dead_code, unreachable_pub)]

pub mod common;
pub mod hosted;
pub mod nginx;
pub mod s3pg;
pub mod slow_reader;
pub mod spawned;
