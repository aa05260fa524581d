//! Property test: arbitrary JSON payloads through every adapter and normalisation never panic,
//! and every error message is a single line.

use gait::Profile;
use gait::intent::{self, Adapter, IntentRequest};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("name".to_string()),
        Just("args".to_string()),
        Just("targets".to_string()),
        Just("kind".to_string()),
        Just("value".to_string()),
        Just("operation".to_string()),
        Just("context".to_string()),
        Just("identity".to_string()),
        Just("function".to_string()),
        Just("arguments".to_string()),
        Just("tool_name".to_string()),
        Just("tool_input".to_string()),
        Just("input".to_string()),
        Just("tool".to_string()),
        Just("script".to_string()),
        Just("steps".to_string()),
        Just("token".to_string()),
        Just("annotations".to_string()),
        Just("created_at".to_string()),
        Just(" ".to_string()),
        "[a-z_ ]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(Value::String("ghp_abcdefghijklmnop0123456789".into())),
        Just(Value::String("path".into())),
        Just(Value::String("{\"a\":1}".into())),
        Just(Value::String("2026-01-01T00:00:00Z".into())),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn check_one_line(e: &intent::IntentError) {
    let s = e.to_string();
    assert!(!s.is_empty());
    assert!(
        !s.contains('\n') && !s.contains('\r'),
        "multi-line error: {s:?}"
    );
}

const ADAPTERS: [Adapter; 5] = [
    Adapter::Mcp,
    Adapter::OpenAi,
    Adapter::Anthropic,
    Adapter::Langchain,
    Adapter::ClaudeCode,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn adapters_and_normalize_never_panic(payload in arb_json()) {
        for adapter in ADAPTERS {
            match intent::decode_call(adapter, &payload) {
                Err(e) => check_one_line(&e),
                Ok(call) => for profile in [Profile::Standard, Profile::OssProd] {
                    match intent::intent_from_call(&call, profile) {
                        Err(e) => check_one_line(&e),
                        Ok((req, _)) => match intent::normalize(&req) {
                            Err(e) => check_one_line(&e),
                            Ok(n) => prop_assert_eq!(n.intent_digest().len(), 64),
                        },
                    }
                },
            }
        }
        if let Ok(req) = serde_json::from_value::<IntentRequest>(payload)
            && let Err(e) = intent::normalize(&req)
        {
            check_one_line(&e);
        }
    }

    #[test]
    fn raw_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        for adapter in ADAPTERS {
            if let Err(e) = intent::adapters::decode_call_slice(adapter, &bytes) {
                check_one_line(&e);
            }
        }
    }

    #[test]
    fn echoed_input_stays_on_one_line(kind in "\\PC{0,4}[\n\r\u{2028}]\\PC{0,4}") {
        let req: IntentRequest = serde_json::from_value(serde_json::json!({
            "tool_name": "t", "args": {}, "targets": [{"kind": kind, "value": "v"}],
            "context": {"identity": "i", "workspace": "w", "risk_class": "h"}
        })).unwrap();
        if let Err(e) = intent::normalize(&req) {
            check_one_line(&e);
        }
    }
}
