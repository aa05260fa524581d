//! The four gate verdicts and their restrictiveness order.
//!
//! `allow(0) < dry_run(1) < require_approval(2) < block(3)`: "most restrictive" is `max`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    DryRun,
    RequireApproval,
    Block,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Verdict::Allow,
        Verdict::DryRun,
        Verdict::RequireApproval,
        Verdict::Block,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::DryRun => "dry_run",
            Verdict::RequireApproval => "require_approval",
            Verdict::Block => "block",
        }
    }

    /// Exit code of `gate eval` / `mcp proxy` and the `exit_code` field of serve responses.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Allow | Verdict::DryRun => crate::exit::OK,
            Verdict::RequireApproval => crate::exit::APPROVAL_REQUIRED,
            Verdict::Block => crate::exit::POLICY_BLOCKED,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allow" => Ok(Verdict::Allow),
            "dry_run" => Ok(Verdict::DryRun),
            "require_approval" => Ok(Verdict::RequireApproval),
            "block" => Ok(Verdict::Block),
            other => Err(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_most_restrictive_last() {
        assert!(Verdict::Allow < Verdict::DryRun);
        assert!(Verdict::DryRun < Verdict::RequireApproval);
        assert!(Verdict::RequireApproval < Verdict::Block);
        assert_eq!(Verdict::Allow.max(Verdict::Block), Verdict::Block);
    }

    #[test]
    fn parses_case_insensitively() {
        assert_eq!(" Block ".parse::<Verdict>(), Ok(Verdict::Block));
        assert!("deny".parse::<Verdict>().is_err());
    }
}

/// Evaluation profile: `standard` (development defaults) or `oss-prod` (strict production).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Profile {
    #[default]
    #[serde(rename = "standard")]
    Standard,
    #[serde(rename = "oss-prod")]
    OssProd,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Standard => "standard",
            Profile::OssProd => "oss-prod",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "standard" => Ok(Profile::Standard),
            "oss-prod" => Ok(Profile::OssProd),
            other => Err(format!("unsupported profile: {other}")),
        }
    }
}
