//! Cross-crate integration tests live under `tests/`.
