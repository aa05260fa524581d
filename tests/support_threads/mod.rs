//! Thread counts of the test process, from `/proc/self/task` (shared by the tests that check
//! that a pool's threads do not grow with the number of sessions).

#![allow(dead_code)]

/// Threads of this process.
pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Threads of this process whose name starts with `prefix`.
pub fn named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|c| c.starts_with(prefix))
        .count()
}
