//! The Bitesize server: Kafka ingest into one Tantivy index per namespace, search over a
//! REST API, the dashboard host, and the all-in-one demo mode.

pub mod api;
pub mod app;
pub mod archive;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod embedded;
pub mod error;
pub mod fleet;
pub mod hardening;
pub mod ingest;
pub mod kafka;
pub mod metrics;
pub mod retention;
pub mod saved_searches;
pub mod search;

pub use error::{Error, Result};
