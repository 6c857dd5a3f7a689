//! Embedded state store on redb (being built).
