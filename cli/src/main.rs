//! The `dbforge` command-line client (being written).
fn main() {}
