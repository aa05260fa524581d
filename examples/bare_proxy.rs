//! A bare hyper 1 pass-through proxy: the reference point for gait's proxy benchmarks (the
//! "bare hyper pass-through" row of `scripts/lib/bench_proxy.py`). It does what any reverse
//! proxy must do and nothing gait adds: read the whole request body, send it on one pooled
//! `hyper-util` client connection, read the whole response, answer. No policy, no trace, no
//! metrics, no header rewriting beyond Host.
//!
//! `bare_proxy --listen 127.0.0.1:0 --upstream http://127.0.0.1:PORT --port-file F`
//! (the port file is written atomically once the listener is bound).

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};

type Upstream = Client<HttpConnector, Full<Bytes>>;

async fn pass(
    client: Upstream,
    base: &'static str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (mut parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{base}{pq}").parse::<Uri>() else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    parts.uri = uri;
    parts.headers.remove(http::header::HOST);
    let Ok(resp) = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
    else {
        return Ok(status(StatusCode::BAD_GATEWAY));
    };
    let (parts, body) = resp.into_parts();
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return Ok(status(StatusCode::BAD_GATEWAY));
    };
    Ok(Response::from_parts(parts, Full::new(body)))
}

fn status(s: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = s;
    r
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (arg(&args, "--listen"), arg(&args, "--upstream")) else {
        eprintln!("usage: bare_proxy --listen ADDR --upstream http://HOST:PORT [--port-file F]");
        return std::process::ExitCode::from(6);
    };
    let base: &'static str = Box::leak(upstream.trim_end_matches('/').to_string().into_boxed_str());
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bare_proxy: bind {listen}: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    if let (Some(path), Ok(addr)) = (arg(&args, "--port-file"), listener.local_addr()) {
        let tmp = format!("{path}.tmp");
        if std::fs::write(&tmp, format!("{}\n", addr.port()))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .is_err()
        {
            eprintln!("bare_proxy: cannot write port file {path}");
            return std::process::ExitCode::from(1);
        }
    }
    let client: Upstream = Client::builder(TokioExecutor::new()).build_http();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| pass(client.clone(), base, req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
