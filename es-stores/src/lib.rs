//! es-stores
