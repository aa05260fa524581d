//! JSON-RPC 2.0 message helpers and the MCP protocol-version rules the proxy enforces.
//!
//! Invariant: no I/O; these functions only look at already-buffered bytes and headers.

use serde_json::{Value, json};

/// Protocol versions the proxy understands.
pub const SUPPORTED_VERSIONS: [&str; 5] = [
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];
/// The version assumed when the header is absent (transport spec).
pub const DEFAULT_VERSION: &str = "2025-03-26";
/// The stateless revision that mandates `Mcp-Method` / `Mcp-Name`.
pub const STATELESS_VERSION: &str = "2026-07-28";

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// gait: the tool call was not allowed by policy (`error.data.verdict` says why).
pub const POLICY_DENIED: i64 = -32001;
/// gait: upstream unreachable / failed.
pub const UPSTREAM_ERROR: i64 = -32002;
/// gait: upstream timed out.
pub const UPSTREAM_TIMEOUT: i64 = -32003;
/// 2026-07-28 `HeaderMismatch`.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28 `UnsupportedProtocolVersionError`.
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// A JSON-RPC error response object.
pub fn error(id: &Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut err = json!({"code": code, "message": message});
    if let Some(d) = data {
        err["data"] = d;
    }
    json!({"jsonrpc": "2.0", "id": id, "error": err})
}

/// The parsed POST body: one message or a batch.
#[derive(Debug, Clone)]
pub struct Messages {
    pub batch: bool,
    pub items: Vec<Value>,
}

impl Messages {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("parse error: {e}"))?;
        match v {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err("empty batch".into());
                }
                Ok(Messages { batch: true, items })
            }
            Value::Object(_) => Ok(Messages {
                batch: false,
                items: vec![v],
            }),
            _ => Err("body must be a JSON-RPC object".into()),
        }
    }

    /// Ids of the request elements (those with a method and an id), in order.
    pub fn request_ids(&self) -> Vec<Value> {
        self.items
            .iter()
            .filter(|m| m.get("method").is_some())
            .filter_map(|m| m.get("id").cloned())
            .collect()
    }
}

pub fn method(m: &Value) -> Option<&str> {
    m.get("method").and_then(Value::as_str)
}

/// The id of a request or `null`.
pub fn id_of(m: &Value) -> Value {
    m.get("id").cloned().unwrap_or(Value::Null)
}

/// The name `Mcp-Name` must mirror for this method, if any.
pub fn mirrored_name(m: &Value) -> Option<&str> {
    let params = m.get("params")?;
    match method(m)? {
        "tools/call" | "prompts/get" => params.get("name").and_then(Value::as_str),
        "resources/read" => params.get("uri").and_then(Value::as_str),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_single_and_batch() {
        let m = Messages::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
        assert!(!m.batch);
        assert_eq!(m.request_ids(), vec![json!(1)]);
        let m = Messages::parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"n"}]"#,
        )
        .unwrap();
        assert!(m.batch);
        assert_eq!(m.request_ids(), vec![json!(1)]);
        assert!(Messages::parse(b"[]").is_err());
        assert!(Messages::parse(b"{").is_err());
        assert!(Messages::parse(b"3").is_err());
    }

    #[test]
    fn mirrored_names() {
        let m = json!({"method":"tools/call","params":{"name":"x"}});
        assert_eq!(mirrored_name(&m), Some("x"));
        let m = json!({"method":"resources/read","params":{"uri":"file:///a"}});
        assert_eq!(mirrored_name(&m), Some("file:///a"));
        assert_eq!(mirrored_name(&json!({"method":"tools/list"})), None);
        let e = error(
            &json!(7),
            POLICY_DENIED,
            "m",
            Some(json!({"verdict":"block"})),
        );
        assert_eq!(e["id"], 7);
        assert_eq!(e["error"]["data"]["verdict"], "block");
    }
}
