//! Unit tests for the session module (failure-named).
