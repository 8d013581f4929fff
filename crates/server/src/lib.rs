//! segmentd, the service: HTTP API, CLI, demo data.

pub mod api;
pub mod auth;
pub mod bench;
pub mod campaigns;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod demo;
pub mod error;
pub mod export;
pub mod extract;
pub mod guard;
pub mod history;
pub mod imports;
pub mod index;
pub mod listener;
pub mod panel;
pub mod rebuild;
pub mod settings;
pub mod snapshot;
pub mod startup;
pub mod state;
pub mod tracking;
pub mod writes;
