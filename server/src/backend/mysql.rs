//! The mysql backend (being written).
