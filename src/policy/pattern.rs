//! Precompiled endpoint path and domain patterns (Go `path.Match` semantics).
//!
//! Invariant: compiled once at policy load; matching never allocates.

use glob::{MatchOptions, Pattern};

const GO_PATH_MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Shell glob where `*` does not cross `/`; an invalid pattern never matches (Go returns an error
/// from `path.Match`, which the caller treats as "no match").
#[derive(Debug, Clone)]
struct Glob(Option<Pattern>);

impl Glob {
    fn new(src: &str) -> Self {
        let has_meta = src.contains(['*', '?', '[', '\\']);
        if !has_meta {
            return Glob(None);
        }
        // Go treats `**` like `*`; the glob crate rejects `**` outside a whole component.
        let mut s = src.to_string();
        while s.contains("***") {
            s = s.replace("***", "*");
        }
        let s = collapse_double_star(&s);
        Glob(Pattern::new(&s).ok())
    }

    fn matches(&self, value: &str) -> bool {
        self.0
            .as_ref()
            .is_some_and(|p| p.matches_with(value, GO_PATH_MATCH))
    }
}

fn collapse_double_star(s: &str) -> String {
    // `a/**/b` in Go path.Match is `a/*/b`: one component.
    s.replace("**", "*")
}

/// One endpoint path pattern: exact, `p/**` subtree, or glob.
#[derive(Debug, Clone)]
pub struct PathPattern {
    source: String,
    subtree: Option<String>,
    glob: Glob,
}

impl PathPattern {
    pub fn new(source: &str) -> Self {
        let subtree = source.strip_suffix("/**").map(str::to_string);
        PathPattern {
            source: source.to_string(),
            subtree,
            glob: Glob::new(source),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, value: &str) -> bool {
        if value == self.source {
            return true;
        }
        if let Some(prefix) = &self.subtree
            && (value == prefix
                || (value.len() > prefix.len()
                    && value.starts_with(prefix.as_str())
                    && value.as_bytes()[prefix.len()] == b'/'))
        {
            return true;
        }
        self.glob.matches(value)
    }
}

/// One endpoint domain pattern: exact, `*.x` (any proper subdomain of `x`), or glob.
#[derive(Debug, Clone)]
pub struct DomainPattern {
    source: String,
    suffix: Option<String>,
    glob: Glob,
}

impl DomainPattern {
    pub fn new(source: &str) -> Self {
        let source = source.trim().to_lowercase();
        let suffix = source
            .strip_prefix('*')
            .filter(|s| s.starts_with('.'))
            .map(str::to_string);
        DomainPattern {
            glob: Glob::new(&source),
            suffix,
            source,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// `value` must already be trimmed and lowercased.
    pub fn matches(&self, value: &str) -> bool {
        if self.source.is_empty() {
            return false;
        }
        if value == self.source {
            return true;
        }
        if let Some(suffix) = &self.suffix
            && value.ends_with(suffix.as_str())
        {
            return true;
        }
        self.glob.matches(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns() {
        let p = PathPattern::new("/etc/**");
        assert!(p.matches("/etc"));
        assert!(p.matches("/etc/hosts"));
        assert!(p.matches("/etc/a/b/c"));
        assert!(!p.matches("/etcetera"));
        assert!(!p.matches("/var/etc"));
        let g = PathPattern::new("/tmp/*.txt");
        assert!(g.matches("/tmp/a.txt"));
        assert!(!g.matches("/tmp/sub/a.txt"), "* must not cross /");
        let e = PathPattern::new("/tmp/exact");
        assert!(e.matches("/tmp/exact"));
        assert!(!e.matches("/tmp/exact/x"));
        let bad = PathPattern::new("/tmp/[");
        assert!(!bad.matches("/tmp/x"));
        assert!(bad.matches("/tmp/["), "exact match still applies");
    }

    #[test]
    fn domain_patterns() {
        let d = DomainPattern::new("*.External.example");
        assert!(d.matches("api.external.example"));
        assert!(d.matches("a.b.external.example"));
        assert!(!d.matches("external.example"), "apex is not matched by *.x");
        assert!(!d.matches("notexternal.example"));
        let g = DomainPattern::new("api-?.internal");
        assert!(g.matches("api-1.internal"));
        assert!(!g.matches("api-12.internal"));
        assert!(DomainPattern::new("api.internal.local").matches("api.internal.local"));
    }
}
