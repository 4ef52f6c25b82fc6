//! Routing matchers (to be written).
