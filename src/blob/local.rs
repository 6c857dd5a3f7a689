//! Local-filesystem blob store (being built).
