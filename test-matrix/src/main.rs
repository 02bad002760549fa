//! test-matrix: the routing model command, the matrix, and the emulator runners.
fn main() {}
