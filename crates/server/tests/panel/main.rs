//! The panel's tests, one binary: `http` checks sign-in, sessions, CSRF and account
//! isolation over plain HTTP; `campaigns` the campaign pages over HTTP (actions, edit,
//! statistics and test sends against an SMTP sink in the test); `browser` walks through
//! the panel in headless Chromium.
#![allow(clippy::unwrap_used, clippy::panic)]

mod browser;
mod campaigns;
mod http;
mod imports;
#[path = "../support/smtp.rs"]
mod smtp;
