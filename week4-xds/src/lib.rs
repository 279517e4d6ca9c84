//! # Week 4: dynamic configuration with xDS
//!
//! How Envoy's configuration changes at runtime without losing traffic: the xDS
//! protocol state machines, their transports, the ConfigManager that validates
//! and versions snapshots, and the DrainManager that retires old listeners.
