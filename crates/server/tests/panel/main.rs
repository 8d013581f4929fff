//! The panel's tests, one binary: `http` checks sign-in, sessions, CSRF and account
//! isolation over plain HTTP; `browser` walks through the panel in headless Chromium.
#![allow(clippy::unwrap_used, clippy::panic)]

mod browser;
mod http;
