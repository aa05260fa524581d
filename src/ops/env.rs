//! Environment lookup behind a trait, so tests inject a map and never mutate the process env.
//!
//! Invariant: the only place gait's ops code reads `std::env::var` is [`ProcessEnv`].

use std::collections::BTreeMap;

/// Read-only access to environment variables.
pub trait Env {
    /// The value of `key`, or `None` when unset or not valid UTF-8.
    fn get(&self, key: &str) -> Option<String>;
}

/// `value` (surrounding whitespace ignored) as a number within `range`; `None` when it is
/// unset, not a number, or out of range (the caller's default applies then).
pub fn parse_bounded<T>(value: Option<&str>, range: std::ops::RangeInclusive<T>) -> Option<T>
where
    T: std::str::FromStr + PartialOrd,
{
    value
        .and_then(|v| v.trim().parse::<T>().ok())
        .filter(|n| range.contains(n))
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

/// A fixed map (tests, or a snapshot of the environment).
#[derive(Debug, Clone, Default)]
pub struct MapEnv(pub BTreeMap<String, String>);

impl MapEnv {
    pub fn new() -> Self {
        MapEnv(BTreeMap::new())
    }

    /// Builder: add one variable.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.0.insert(key.to_string(), value.to_string());
        self
    }
}

impl<const N: usize> From<[(&str, &str); N]> for MapEnv {
    fn from(pairs: [(&str, &str); N]) -> Self {
        MapEnv(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        )
    }
}

impl Env for MapEnv {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

impl<E: Env + ?Sized> Env for &E {
    fn get(&self, key: &str) -> Option<String> {
        (**self).get(key)
    }
}

/// Whether an env var named by a `*_env` config key is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvStatus {
    Set,
    Empty,
    Unset,
}

impl EnvStatus {
    pub fn of(env: &dyn Env, var: &str) -> EnvStatus {
        match env.get(var) {
            None => EnvStatus::Unset,
            Some(v) if v.trim().is_empty() => EnvStatus::Empty,
            Some(_) => EnvStatus::Set,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EnvStatus::Set => "set",
            EnvStatus::Empty => "empty",
            EnvStatus::Unset => "unset",
        }
    }
}
