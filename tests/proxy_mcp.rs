//! End-to-end: a real rmcp client → gait (in-process) → a real rmcp upstream.

mod support_proxy;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use rmcp::service::ServiceError;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use support_proxy::*;

fn args(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().unwrap().clone()
}

async fn client_at(
    url: String,
    version: ProtocolVersion,
) -> rmcp::service::RunningService<rmcp::RoleClient, ClientConfig> {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url),
    );
    ClientConfig::default()
        .with_protocol_version(version)
        .serve(transport)
        .await
        .expect("client connects through gait")
}

async fn gate_matrix(version: ProtocolVersion) {
    let (gait, calls, up_stop) = setup(|_| {}).await;
    let client = client_at(gait.url("/mcp"), version).await;

    // tools/list is filtered by the same policy: secret_tool and delete_all are always
    // blocked; write_file (require_approval) stays visible.
    let tools = client.list_tools(None).await.unwrap();
    let mut names: Vec<String> = tools.tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(names, vec!["echo", "progress", "write_file"]);

    // an allowed call reaches the tool
    let res = client
        .call_tool(
            CallToolRequestParams::new("echo").with_arguments(args(json!({"message": "hi"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&res.content).unwrap()[0]["text"],
        "echo:hi"
    );
    assert_eq!(calls.get("echo"), 1);

    // a blocked call never reaches the tool and comes back as a JSON-RPC error with data
    let err = client
        .call_tool(CallToolRequestParams::new("delete_all").with_arguments(args(json!({}))))
        .await
        .unwrap_err();
    let ServiceError::McpError(e) = err else {
        panic!("expected a JSON-RPC error, got {err:?}");
    };
    assert_eq!(e.code.0, -32001);
    let data = e.data.unwrap();
    assert_eq!(data["verdict"], "block");
    assert_eq!(data["reason_codes"], json!(["destructive_tool_blocked"]));
    assert_eq!(data["trace_id"].as_str().unwrap().len(), 24);
    assert_eq!(calls.get("delete_all"), 0);

    // require_approval is not forwarded either
    let err = client
        .call_tool(CallToolRequestParams::new("write_file").with_arguments(args(json!({}))))
        .await
        .unwrap_err();
    let ServiceError::McpError(e) = err else {
        panic!("expected a JSON-RPC error, got {err:?}");
    };
    assert_eq!(e.data.unwrap()["verdict"], "require_approval");
    assert_eq!(calls.get("write_file"), 0);

    // the session survived the denials
    let res = client
        .call_tool(
            CallToolRequestParams::new("echo").with_arguments(args(json!({"message": "again"}))),
        )
        .await
        .unwrap();
    assert!(res.is_error != Some(true));
    assert_eq!(calls.get("echo"), 2);

    let _ = client.cancel().await;
    let dir = gait.shutdown().await;
    up_stop.cancel();
    // one signed trace per decision (2 allows + block + approval), flushed on shutdown
    let traces = trace_files(dir.path());
    assert_eq!(traces.len(), 4, "{traces:?}");
    let mut verdicts: Vec<String> = traces
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            assert!(v["signature"]["sig"].is_string());
            // signed on the writer thread over sha256(JCS(record minus signature))
            let mut unsigned = v.clone();
            unsigned.as_object_mut().unwrap().remove("signature");
            assert_eq!(
                v["signature"]["signed_digest"],
                gait::canon::digest(&unsigned)
            );
            v["verdict"].as_str().unwrap().to_string()
        })
        .collect();
    verdicts.sort();
    assert_eq!(
        verdicts,
        vec!["allow", "allow", "block", "require_approval"]
    );
}

#[tokio::test]
async fn gate_matrix_2025_11_25_session() {
    gate_matrix(ProtocolVersion::V_2025_11_25).await;
}

#[tokio::test]
async fn gate_matrix_2025_06_18() {
    gate_matrix(ProtocolVersion::V_2025_06_18).await;
}

#[tokio::test]
async fn gate_matrix_2025_03_26() {
    gate_matrix(ProtocolVersion::V_2025_03_26).await;
}

#[tokio::test]
async fn gate_matrix_2026_07_28_stateless() {
    gate_matrix(ProtocolVersion::V_2026_07_28).await;
}
