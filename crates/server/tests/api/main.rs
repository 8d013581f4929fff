//! HTTP API tests: a real server on port 0 with a fresh store per test.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod contacts;
mod events;
mod fields;
mod helpers;
mod isolation;
mod segments;
mod story;
