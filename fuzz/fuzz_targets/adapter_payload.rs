//! Fuzz the adapters and the gate pipeline: the first byte picks the adapter, the rest is the
//! payload. Decoding, normalisation and evaluation return errors, never panic; a decision
//! always carries a 24-hex trace id.
#![no_main]

use gait::gate::{CallOptions, Engine, EngineConfig};
use gait::intent::adapters::Adapter;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let policy = gait::policy::Policy::from_yaml_str(
            "default_verdict: block\nrules:\n  - {name: allow-read, priority: 1, effect: allow, match: {tool_names: [tool.read]}}\n",
        )
        .expect("fuzz policy");
        Engine::new(Arc::new(policy), EngineConfig::default()).expect("fuzz engine")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let adapter = [
        Adapter::Mcp,
        Adapter::OpenAi,
        Adapter::Anthropic,
        Adapter::Langchain,
        Adapter::ClaudeCode,
    ][usize::from(pick) % 5];
    let opts = CallOptions {
        sign: false,
        ..CallOptions::default()
    };
    if let Ok(d) = engine().evaluate_call_slice(adapter, payload, &opts) {
        assert_eq!(d.output.trace_id.len(), 24);
    }
});
