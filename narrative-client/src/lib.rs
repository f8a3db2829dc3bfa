//! Work in progress: implemented by its own issue.
