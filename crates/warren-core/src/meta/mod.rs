//! Metadata (to be written).
