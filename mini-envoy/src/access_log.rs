//! Access logs (being written).
