//! The benchmark program (see the benchmark issue).

fn main() {}
