//! route-check (being written).
