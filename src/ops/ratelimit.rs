//! Rate limits with `governor`: keyed limiters for policy `rate_limit` blocks (per identity,
//! per tool, per identity+tool; N requests per minute or hour) and a global per-token limit.
//!
//! The proxy maps [`RateLimited`] to verdict `block` with reason `rate_limit_exceeded`
//! (HTTP 200 in compat mode; 429 + `Retry-After` in strict mode). Limits use GCRA: `N` per
//! window means a burst of `N`, refilled at one request every `window / N`.
//!
//! Invariant: [`RateLimiter::check`] never blocks and never does I/O; state is in memory and
//! bounded by [`RateLimiter::housekeep`].

use super::config::Window;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Gcra};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// What a limit is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Identity,
    Tool,
    ToolIdentity,
    /// The global per-token limit from config.
    Token,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Identity => "identity",
            Scope::Tool => "tool",
            Scope::ToolIdentity => "tool_identity",
            Scope::Token => "token",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "identity" => Ok(Scope::Identity),
            "tool" => Ok(Scope::Tool),
            "" | "tool_identity" => Ok(Scope::ToolIdentity),
            other => Err(format!("unsupported rate_limit.scope {other:?}")),
        }
    }
}

/// One limit: `requests` per `window`, keyed by `scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateSpec {
    pub requests: NonZeroU32,
    pub window: Window,
    pub scope: Scope,
}

impl RateSpec {
    fn quota(&self) -> Quota {
        let period = self.window.as_duration() / self.requests.get();
        Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_hour(self.requests))
            .allow_burst(self.requests)
    }
}

/// A refused call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded ({scope}); retry after {retry_after:?}", scope = .scope.as_str())]
pub struct RateLimited {
    pub retry_after: Duration,
    pub scope: Scope,
}

impl RateLimited {
    /// `Retry-After` header value in whole seconds (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

type Keyed<C> =
    Gcra<String, DefaultKeyedStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;

type SpecMap<C> = HashMap<(u32, Window), Arc<Keyed<C>>>;

/// All limiters of one server.
pub struct RateLimiter<C: Clock + Clone = DefaultClock> {
    clock: C,
    per_spec: Mutex<SpecMap<C>>,
    token: Option<(RateSpec, Keyed<C>)>,
}

impl<C: Clock + Clone> std::fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("token", &self.token.as_ref().map(|(s, _)| s))
            .finish_non_exhaustive()
    }
}

impl RateLimiter<DefaultClock> {
    /// With the real clock; `per_token` comes from `rate_limits.per_token_requests`.
    pub fn new(per_token: Option<(NonZeroU32, Window)>) -> Self {
        Self::with_clock(per_token, DefaultClock::default())
    }

    /// From the `rate_limits:` config section.
    pub fn from_config(s: &super::config::RateLimitsSection) -> Self {
        Self::new(
            s.per_token_requests
                .and_then(NonZeroU32::new)
                .map(|n| (n, s.window)),
        )
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    pub fn with_clock(per_token: Option<(NonZeroU32, Window)>, clock: C) -> Self {
        let token = per_token.map(|(requests, window)| {
            let spec = RateSpec {
                requests,
                window,
                scope: Scope::Token,
            };
            (spec, Gcra::dashmap_with_clock(spec.quota(), clock.clone()))
        });
        RateLimiter {
            clock,
            per_spec: Mutex::new(HashMap::new()),
            token,
        }
    }

    fn key(identity: &str, tool: &str, scope: Scope) -> String {
        match scope {
            Scope::Identity | Scope::Token => format!("i\u{1f}{identity}"),
            Scope::Tool => format!("t\u{1f}{tool}"),
            Scope::ToolIdentity => format!("ti\u{1f}{identity}\u{1f}{tool}"),
        }
    }

    fn refuse(&self, nu: governor::NotUntil<C::Instant>, scope: Scope) -> RateLimited {
        RateLimited {
            retry_after: nu.wait_time_from(self.clock.now()),
            scope,
        }
    }

    /// Check (and consume) one call against a policy `rate_limit` spec.
    pub fn check(&self, identity: &str, tool: &str, spec: &RateSpec) -> Result<(), RateLimited> {
        let limiter = {
            let mut map = self.per_spec.lock();
            Arc::clone(
                map.entry((spec.requests.get(), spec.window))
                    .or_insert_with(|| {
                        Arc::new(Gcra::dashmap_with_clock(spec.quota(), self.clock.clone()))
                    }),
            )
        };
        // Scope is part of the key, so specs sharing a quota do not share counters.
        let key = format!(
            "{}|{}",
            spec.scope.as_str(),
            Self::key(identity, tool, spec.scope)
        );
        limiter
            .check_key(&key)
            .map_err(|nu| self.refuse(nu, spec.scope))
    }

    /// Check (and consume) one request against the global per-token limit, if configured.
    pub fn check_token(&self, identity: &str) -> Result<(), RateLimited> {
        match &self.token {
            None => Ok(()),
            Some((_, l)) => l
                .check_key(&Self::key(identity, "", Scope::Token))
                .map_err(|nu| self.refuse(nu, Scope::Token)),
        }
    }

    /// Forget keys whose state is back to full capacity (call periodically).
    pub fn housekeep(&self) {
        for l in self.per_spec.lock().values() {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some((_, l)) = &self.token {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn spec(n: u32, window: Window, scope: Scope) -> RateSpec {
        RateSpec {
            requests: NonZeroU32::new(n).unwrap(),
            window,
            scope,
        }
    }

    #[test]
    fn per_minute_limit_refills_with_the_clock() {
        let clock = FakeRelativeClock::default();
        let rl = RateLimiter::with_clock(None, clock.clone());
        let s = spec(2, Window::Minute, Scope::ToolIdentity);
        assert!(rl.check("alice", "tool.write", &s).is_ok());
        assert!(rl.check("alice", "tool.write", &s).is_ok());
        let err = rl.check("alice", "tool.write", &s).unwrap_err();
        assert_eq!(err.scope, Scope::ToolIdentity);
        assert_eq!(err.retry_after, Duration::from_secs(30));
        assert_eq!(err.retry_after_secs(), 30);
        // other identity and other tool are separate keys
        assert!(rl.check("bob", "tool.write", &s).is_ok());
        assert!(rl.check("alice", "tool.read", &s).is_ok());
        clock.advance(Duration::from_secs(29));
        assert!(rl.check("alice", "tool.write", &s).is_err());
        clock.advance(Duration::from_secs(1));
        assert!(rl.check("alice", "tool.write", &s).is_ok());
    }

    #[test]
    fn scopes_key_differently() {
        let clock = FakeRelativeClock::default();
        let rl = RateLimiter::with_clock(None, clock.clone());
        let by_id = spec(1, Window::Hour, Scope::Identity);
        assert!(rl.check("alice", "a", &by_id).is_ok());
        assert!(
            rl.check("alice", "b", &by_id).is_err(),
            "identity scope spans tools"
        );
        let by_tool = spec(1, Window::Hour, Scope::Tool);
        assert!(rl.check("alice", "a", &by_tool).is_ok());
        let e = rl.check("bob", "a", &by_tool).unwrap_err();
        assert_eq!(e.retry_after, Duration::from_secs(3600));
        clock.advance(Duration::from_secs(3600));
        assert!(rl.check("bob", "a", &by_tool).is_ok());
        rl.housekeep();
    }

    #[test]
    fn global_token_limit() {
        let clock = FakeRelativeClock::default();
        let rl = RateLimiter::with_clock(
            Some((NonZeroU32::new(3).unwrap(), Window::Minute)),
            clock.clone(),
        );
        for _ in 0..3 {
            assert!(rl.check_token("t1").is_ok());
        }
        let e = rl.check_token("t1").unwrap_err();
        assert_eq!(e.scope, Scope::Token);
        assert_eq!(e.retry_after, Duration::from_secs(20));
        assert!(rl.check_token("t2").is_ok());
        clock.advance(Duration::from_secs(20));
        assert!(rl.check_token("t1").is_ok());
        let none = RateLimiter::with_clock(None, clock);
        for _ in 0..100 {
            assert!(none.check_token("x").is_ok());
        }
    }

    #[test]
    fn scope_parsing() {
        assert_eq!("".parse::<Scope>(), Ok(Scope::ToolIdentity));
        assert_eq!("Identity".parse::<Scope>(), Ok(Scope::Identity));
        assert!("global".parse::<Scope>().is_err());
    }
}
