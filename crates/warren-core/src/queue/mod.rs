//! The queue machine (to be written).
