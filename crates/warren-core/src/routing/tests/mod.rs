//! Tests of the matchers on their own, against independent references.

mod headers;
mod topic;
