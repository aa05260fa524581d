//! TLS: gait terminating TLS (`--tls-cert`/`--tls-key`) and gait forwarding to an `https://`
//! upstream that it verifies against `--upstream-ca`. Chain: rmcp client → gait A (http) →
//! gait B (https, test certificate from rcgen) → rmcp upstream (http).

mod support_proxy;

use gait::server::config::{TlsConfig, UpstreamConfig};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use support_proxy::*;

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM files into `dir`.
fn test_cert(dir: &std::path::Path) -> (rcgen::CertifiedKey<rcgen::KeyPair>, TlsConfig) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let tls = TlsConfig {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&tls.cert, cert.cert.pem()).unwrap();
    std::fs::write(&tls.key, cert.signing_key.serialize_pem()).unwrap();
    (cert, tls)
}

#[tokio::test]
async fn tls_round_trip_through_two_gaits() {
    let (up, calls, up_stop) = start_upstream().await;
    // gait B: TLS in front of the upstream
    let dir_b = tempfile::tempdir().unwrap();
    let (_cert, tls) = test_cert(dir_b.path());
    let cert_path = tls.cert.clone();
    let mut cfg_b = base_config(dir_b.path(), &up);
    cfg_b.tls = Some(tls);
    let gait_b = start_gait(dir_b, cfg_b, &[]).await;

    // gait A: plain http, upstream is gait B over https, trusting the test certificate
    let dir_a = tempfile::tempdir().unwrap();
    let mut cfg_a = base_config(dir_a.path(), "");
    cfg_a.upstreams = vec![
        UpstreamConfig::parse(&format!("https://127.0.0.1:{}/mcp", gait_b.addr.port())).unwrap(),
    ];
    cfg_a.upstream_ca = Some(cert_path.clone());
    let gait_a = start_gait(dir_a, cfg_a, &[]).await;

    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(gait_a.url("/mcp")),
    );
    let client = ClientConfig::default()
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
        .serve(transport)
        .await
        .expect("initialize over the TLS hop");
    let args = serde_json::json!({"message": "tls"})
        .as_object()
        .unwrap()
        .clone();
    let res = client
        .call_tool(CallToolRequestParams::new("echo").with_arguments(args))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&res.content).unwrap()[0]["text"],
        "echo:tls"
    );
    assert!(
        client
            .call_tool(CallToolRequestParams::new("delete_all"))
            .await
            .is_err()
    );
    assert_eq!((calls.get("echo"), calls.get("delete_all")), (1, 0));
    let _ = client.cancel().await;

    // without the CA the https hop is refused (502), so verification is really on
    let dir_c = tempfile::tempdir().unwrap();
    let mut cfg_c = base_config(dir_c.path(), "");
    cfg_c.upstreams = vec![
        UpstreamConfig::parse(&format!("https://127.0.0.1:{}/mcp", gait_b.addr.port())).unwrap(),
    ];
    let gait_c = start_gait(dir_c, cfg_c, &[]).await;
    let http = reqwest::Client::new();
    let res = rpc_post(
        &http,
        &gait_c.url("/mcp"),
        &serde_json::json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 502);

    gait_c.shutdown().await;
    gait_a.shutdown().await;
    gait_b.shutdown().await;
    up_stop.cancel();
}

/// A TLS client is served by the protocol its ALPN negotiated (h2 or http/1.1), and a client
/// that negotiates none still gets either protocol (sniffed inside the TLS stream).
#[tokio::test]
async fn tls_serves_each_alpn_protocol_and_clients_without_alpn() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::sync::Arc;
    let (up, _calls, _up_stop) = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, tls) = test_cert(dir.path());
    let mut cfg = base_config(dir.path(), &up);
    cfg.tls = Some(tls);
    let gait = start_gait(dir, cfg, &[]).await;
    for (alpn, h2) in [
        (Some("h2"), true),
        (Some("http/1.1"), false),
        (None, false),
        (None, true),
    ] {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.cert.der().clone()).unwrap();
        let mut cc = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        cc.alpn_protocols = alpn
            .map(|a| vec![a.as_bytes().to_vec()])
            .unwrap_or_default();
        let tcp = tokio::net::TcpStream::connect(gait.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cc))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), alpn.map(str::as_bytes));
        let io = TokioIo::new(tls);
        let status = if h2 {
            let (mut tx, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = http::Request::get("https://localhost/healthz")
                .body(Empty::<bytes::Bytes>::new())
                .unwrap();
            tx.send_request(req).await.unwrap().status()
        } else {
            let (mut tx, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let req = http::Request::get("/healthz")
                .header("host", "localhost")
                .body(Empty::<bytes::Bytes>::new())
                .unwrap();
            tx.send_request(req).await.unwrap().status()
        };
        assert_eq!(status, 200, "alpn {alpn:?}, h2 {h2}");
    }
}
