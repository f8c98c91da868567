//! The Bitesize query language (being written; see docs/query.md).
