//! Redis state store (being built).
