//! End-to-end tests of SchoolVault live in `tests/`; this library is empty.
