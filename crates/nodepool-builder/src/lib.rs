//! The image builder (spec section 3, DESIGN.md section 7).
//!
//! Nodepool's builder runs three kinds of loops: build workers (scheduled builds by
//! `rebuild-age` and manual `image-build` requests), upload workers (the newest READY build
//! to every provider that takes the image) and a janitor (retention of builds, uploads and
//! local files). This crate starts with their rules: [`decide`] holds every decision as a
//! pure function over plain data (the validated [`nodepool_config::Config`] and the
//! [`nodepool_model`] records of one image), unit-tested without a store, a cloud or a disk.
//!
//! The loops will read a snapshot of the store and the images directory, ask these
//! functions what to do, and apply the answer under Nodepool's ZooKeeper locks (the image
//! build lock, the per-(build, provider) upload lock, the build-id and upload-number locks,
//! spec 3.8). Whatever depends on a lock being free (is that BUILDING build or UPLOADING
//! upload still in progress?) is left to the loop; the functions say which records are
//! candidates.
//!
//! Architecture invariant: no I/O here, and no dependency beyond `nodepool-model` and
//! `nodepool-config`.

// Tests may unwrap: a panic there is a test failure with a backtrace.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod decide;
