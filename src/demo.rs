//! `hostalb demo`: hostalb in front of three local backends standing in for tasks, with
//! no Docker needed. Two target groups (`blue` with two tasks, `green` with one), a
//! weighted forward between them, a host-header rule, a redirect and fixed responses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use hostalb_config::Format;
use hostalb_proxy::{ConfigSource, Proxy};

pub(crate) async fn run(port: u16, admin_port: u16) -> ExitCode {
    let mut tasks = Vec::new();
    for name in ["blue-1", "blue-2", "green-1"] {
        match start_backend(name).await {
            Ok(addr) => tasks.push((name, addr)),
            Err(e) => {
                eprintln!("hostalb demo: cannot start backend {name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let config = demo_config(port, admin_port, &tasks);
    let loaded = match hostalb_config::parse(&config, Format::Toml, "(demo)") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hostalb demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let proxy = match Proxy::start(loaded, ConfigSource::Embedded).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "hostalb demo: {e}\n(another program uses the port? try: hostalb demo --port 0 --admin-port 0)"
            );
            return ExitCode::FAILURE;
        }
    };
    let Some((_, web)) = proxy.listeners().into_iter().next() else {
        return ExitCode::FAILURE;
    };
    let admin = proxy.admin_address();

    let tour = || {
        println!();
        println!("hostalb demo: three backends stand in for tasks on random host ports:");
        for (name, addr) in &tasks {
            println!(
                "  {name:8} {addr}   (target group {})",
                name.split('-').next().unwrap_or(name)
            );
        }
        println!();
        println!("Try:");
        println!(
            "  curl http://{web}/api/hello                          # weighted forward: blue 80 %, green 20 % (AWSALBTG stickiness)"
        );
        println!("  curl -H 'Host: green.localhost' http://{web}/      # host-header rule: always green");
        println!("  curl -H 'X-Canary: yes' http://{web}/api/x         # http-header rule: green");
        println!(
            "  curl -i http://{web}/old/page                      # redirect 301 to /new/old/page (#{{path}} keeps the path)"
        );
        println!("  curl -i http://{web}/health                        # fixed-response 200");
        println!("  curl -i http://{web}/nothing                       # default action: fixed-response 404");
        println!("  curl -i -X TRACE http://{web}/                      # 405, as ALB answers TRACE");
        println!("  curl http://{admin}/api/rules?listener=demo         # the rules, as ELBv2 DescribeRules");
        println!("  curl http://{admin}/api/target-groups              # target groups and attributes");
        println!(
            "  curl http://{admin}/metrics                        # ALB metric names, Prometheus format"
        );
        println!("  open http://{admin}/                               # dashboard");
        println!();
        println!("Ctrl-C stops.");
    };
    crate::serve_then(proxy, std::time::Duration::from_secs(5), tour).await
}

fn demo_config(port: u16, admin_port: u16, tasks: &[(&str, SocketAddr)]) -> String {
    let targets = |group: &str| {
        tasks
            .iter()
            .filter(|(n, _)| n.starts_with(group))
            .map(|(_, a)| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r##"
[admin]
address = "127.0.0.1:{admin_port}"

[[listener]]
name = "demo"
address = "127.0.0.1:{port}"
default_action = {{ type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "no rule matched this request\n" }}

[[listener.rule]]
priority = 5
conditions = [{{ field = "path-pattern", values = ["/health"] }}]
action = {{ type = "fixed-response", status_code = 200, content_type = "text/plain", message_body = "ok\n" }}

[[listener.rule]]
priority = 10
conditions = [{{ field = "host-header", values = ["green.localhost"] }}]
action = {{ type = "forward", target_group = "green" }}

[[listener.rule]]
priority = 20
conditions = [{{ field = "http-header", name = "X-Canary", values = ["yes"] }}]
action = {{ type = "forward", target_group = "green" }}

[[listener.rule]]
priority = 30
conditions = [{{ field = "path-pattern", values = ["/old/*"] }}]
action = {{ type = "redirect", path = "/new/#{{path}}", status_code = "HTTP_301" }}

[[listener.rule]]
priority = 40
conditions = [{{ field = "path-pattern", values = ["/api/*", "/new/*"] }}]
action = {{ type = "forward", target_groups = [{{ name = "blue", weight = 80 }}, {{ name = "green", weight = 20 }}], stickiness_seconds = 60 }}

[target_group.blue]
targets = [{blue}]
[target_group.blue.health_check]
interval_seconds = 5
timeout_seconds = 2
healthy_threshold = 2

[target_group.green]
targets = [{green}]
[target_group.green.health_check]
interval_seconds = 5
timeout_seconds = 2
healthy_threshold = 2
"##,
        blue = targets("blue"),
        green = targets("green"),
    )
}

/// A backend answering every request with its name and what hostalb told it.
async fn start_backend(name: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| async move {
                    Ok::<_, Infallible>(answer(name, &req))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn answer(name: &'static str, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |h: &str| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let body = format!(
        "hello from {name}\n  {} {}\n  Host: {}\n  X-Forwarded-For: {}\n  X-Forwarded-Proto: {}\n  X-Forwarded-Port: {}\n  X-Amzn-Trace-Id: {}\n",
        req.method(),
        req.uri(),
        header("host"),
        header("x-forwarded-for"),
        header("x-forwarded-proto"),
        header("x-forwarded-port"),
        header("x-amzn-trace-id"),
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert("x-backend", hyper::header::HeaderValue::from_static(name));
    resp
}
