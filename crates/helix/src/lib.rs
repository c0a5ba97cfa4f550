//! Helix.
