//! Listener rules through the real binary: every condition type with its case and
//! anchoring rules, AND/OR, priority order, the default action, round robin and the 503
//! of a group without targets.
//!
//! Most rules answer with a fixed response naming the rule, so a request's outcome says
//! which rule matched; the default action answers 404 `default`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hostalb_testkit::{Backend, Client, ParsedResponse, RawConn, parse_responses, scaled};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::common::start;

/// Bound on one exchange with hostalb.
const EXCHANGE: Duration = Duration::from_secs(5);

/// The default action's answer body.
const DEFAULT: &str = "default";

/// A fixed-response action answering 200 with `marker` as the body.
fn answer(marker: &str) -> String {
    format!(
        r#"{{ type = "fixed-response", status_code = 200, content_type = "text/plain", message_body = "{marker}" }}"#
    )
}

/// A listener `web` whose rules are `(priority, marker, conditions)`: each rule answers
/// its marker; the default action answers 404 `default`.
fn rules_config(rules: &[(u32, &str, &str)]) -> String {
    let mut text = format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "{DEFAULT}" }}
"#
    );
    for (priority, marker, conditions) in rules {
        text.push_str(&format!(
            "\n[[listener.rule]]\npriority = {priority}\nconditions = [{conditions}]\naction = {}\n",
            answer(marker)
        ));
    }
    text
}

/// A request head; `Host: routing.test` is added unless `headers` has a Host.
fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> String {
    let mut text = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        text.push_str("Host: routing.test\r\n");
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text
}

fn get(target: &str) -> String {
    request("GET", target, &[])
}

fn get_with(target: &str, headers: &[(&str, &str)]) -> String {
    request("GET", target, headers)
}

/// Sends `raw` on a new connection and returns the response.
async fn exchange(addr: SocketAddr, raw: &str) -> ParsedResponse {
    let mut conn = RawConn::connect(addr).await.expect("connect to hostalb");
    conn.send(raw.as_bytes()).await.expect("send the request");
    match conn.read_response(scaled(EXCHANGE)).await {
        Some(r) => r,
        None => panic!(
            "no response to {raw:?}; received {:?}",
            String::from_utf8_lossy(conn.received())
        ),
    }
}

/// Which rule answered `raw`: its marker, or `default`.
async fn routed(addr: SocketAddr, raw: &str) -> String {
    let resp = exchange(addr, raw).await;
    match resp.status {
        200 | 404 => resp.text(),
        other => format!("status {other}: {}", resp.text()),
    }
}

/// Sends every case and fails listing all the cases that went to the wrong rule.
async fn check_routes(addr: SocketAddr, cases: &[(String, &str)]) {
    let mut wrong = Vec::new();
    for (raw, expected) in cases {
        let got = routed(addr, raw).await;
        if got != *expected {
            wrong.push(format!("{raw:?}\n    expected {expected:?}, got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} requests went to the wrong rule:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// Sends `raw` (which must ask to close) from a client socket bound to `source`, and
/// returns the responses received until hostalb closed.
async fn exchange_from(source: Ipv4Addr, addr: SocketAddr, raw: &str) -> Vec<ParsedResponse> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(source), 0))
        .unwrap_or_else(|e| panic!("bind a client socket to {source}: {e}"));
    let mut stream = tokio::time::timeout(scaled(EXCHANGE), socket.connect(addr))
        .await
        .expect("connect in time")
        .unwrap_or_else(|e| panic!("connect from {source} to {addr}: {e}"));
    stream.write_all(raw.as_bytes()).await.expect("send");
    let mut received = Vec::new();
    let read = tokio::time::timeout(scaled(EXCHANGE), stream.read_to_end(&mut received)).await;
    assert!(
        read.is_ok(),
        "hostalb did not close after `Connection: close`; received {:?}",
        String::from_utf8_lossy(&received)
    );
    parse_responses(&received)
}

async fn routed_from(source: Ipv4Addr, addr: SocketAddr, headers: &[(&str, &str)]) -> String {
    let mut all = headers.to_vec();
    all.push(("Connection", "close"));
    let responses = exchange_from(source, addr, &get_with("/", &all)).await;
    assert_eq!(responses.len(), 1, "one response expected: {responses:?}");
    responses[0].text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_values_are_case_insensitive_anchored_globs_without_the_port() {
    let alb = start(&rules_config(&[
        (
            10,
            "exact",
            r#"{ field = "host-header", values = ["api.example.com"] }"#,
        ),
        (
            20,
            "wild",
            r#"{ field = "host-header", values = ["*.example.com"] }"#,
        ),
        (
            30,
            "one",
            r#"{ field = "host-header", values = ["w?b.example.org"] }"#,
        ),
    ]))
    .await;
    let addr = alb.listener("web");
    let host = |h: &str| get_with("/", &[("Host", h)]);
    check_routes(
        addr,
        &[
            (host("api.example.com"), "exact"),
            (host("API.Example.COM"), "exact"),
            (host("api.example.com:8080"), "exact"),
            (host("Api.Example.Com:443"), "exact"),
            (host("x.example.com"), "wild"),
            (host("a.b.example.com"), "wild"),
            (host("X.EXAMPLE.COM:9000"), "wild"),
            (host("example.com"), DEFAULT),
            (host("api.example.com.evil.test"), DEFAULT),
            (host("notexample.com"), DEFAULT),
            (host("web.example.org"), "one"),
            (host("WEB.example.org:81"), "one"),
            (host("wb.example.org"), DEFAULT),
            (
                "GET http://api.example.com/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n".to_owned(),
                "exact",
            ),
            (
                "GET http://Shop.Example.com/x HTTP/1.0\r\n\r\n".to_owned(),
                "wild",
            ),
            (host("weeb.example.org"), DEFAULT),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_regex_values_are_unanchored_case_insensitive_and_see_the_port() {
    let alb = start(&rules_config(&[
        (
            10,
            "port",
            r#"{ field = "host-header", regex_values = [':9090$'] }"#,
        ),
        (
            20,
            "anchored",
            r#"{ field = "host-header", regex_values = ['^api-[0-9]+\.internal$'] }"#,
        ),
        (
            30,
            "search",
            r#"{ field = "host-header", regex_values = ['canary'] }"#,
        ),
    ]))
    .await;
    let addr = alb.listener("web");
    let host = |h: &str| get_with("/", &[("Host", h)]);
    check_routes(
        addr,
        &[
            (host("anything.test:9090"), "port"),
            (host("anything.test:9091"), DEFAULT),
            (host("anything.test"), DEFAULT),
            (host("api-12.internal"), "anchored"),
            (host("API-7.Internal"), "anchored"),
            (host("api-12.internal:8080"), DEFAULT),
            (host("xapi-12.internal"), DEFAULT),
            (host("api-x.internal"), DEFAULT),
            (host("my-canary-host.example"), "search"),
            (host("CANARY.example"), "search"),
            (host("canar.example"), DEFAULT),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_pattern_is_case_sensitive_anchored_raw_and_never_sees_the_query() {
    let alb = start(&rules_config(&[
        (10, "api", r#"{ field = "path-pattern", values = ["/api/*"] }"#),
        (20, "exact", r#"{ field = "path-pattern", values = ["/exact"] }"#),
        (
            30,
            "png",
            r#"{ field = "path-pattern", values = ["/img/*.png"] }"#,
        ),
        (
            40,
            "version",
            r#"{ field = "path-pattern", values = ["/v?/items"] }"#,
        ),
        (
            50,
            "letter",
            r#"{ field = "path-pattern", values = ["/files/A"] }"#,
        ),
    ]))
    .await;
    let addr = alb.listener("web");
    check_routes(
        addr,
        &[
            (get("/api/x"), "api"),
            (get("/api/"), "api"),
            (get("/api/a/b/c"), "api"),
            (get("/api"), DEFAULT),
            (get("/API/x"), DEFAULT),
            (get("/v1/api/x"), DEFAULT),
            (get("/exact"), "exact"),
            (get("/exact?x=1"), "exact"),
            (get("/exact?/api/x"), "exact"),
            (get("/exact/"), DEFAULT),
            (get("/exactly"), DEFAULT),
            (get("/Exact"), DEFAULT),
            (get("/img/a/b.png"), "png"),
            (get("/img/a.PNG"), DEFAULT),
            (get("/img/a.jpg?f=x.png"), DEFAULT),
            (get("/search?q=/api/x"), DEFAULT),
            (get("/v1/items"), "version"),
            (get("/v2/items?page=2"), "version"),
            (get("/v10/items"), DEFAULT),
            (get("/v/items"), DEFAULT),
            (get("/files/A"), "letter"),
            (get("/files/%41"), DEFAULT),
            (
                "GET http://routing.test/api/x HTTP/1.1\r\nHost: routing.test\r\n\r\n".to_owned(),
                "api",
            ),
            (
                "GET http://routing.test/exact?q=/api/x HTTP/1.1\r\nHost: routing.test\r\n\r\n".to_owned(),
                "exact",
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_pattern_regex_values_are_unanchored_case_sensitive_and_never_see_the_query() {
    let alb = start(&rules_config(&[
        (
            10,
            "users",
            r#"{ field = "path-pattern", regex_values = ['^/v[0-9]+/users/[0-9]+$'] }"#,
        ),
        (
            20,
            "reports",
            r#"{ field = "path-pattern", regex_values = ['reports'] }"#,
        ),
    ]))
    .await;
    let addr = alb.listener("web");
    check_routes(
        addr,
        &[
            (get("/v2/users/42"), "users"),
            (get("/v2/users/42?expand=1"), "users"),
            (get("/v2/users/abc"), DEFAULT),
            (get("/x/v2/users/42"), DEFAULT),
            (get("/a/reports/b"), "reports"),
            (get("/monthly-reports"), "reports"),
            (get("/a/REPORTS"), DEFAULT),
            (get("/a?reports=1"), DEFAULT),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_header_name_and_value_are_case_insensitive_and_every_instance_is_tried() {
    let alb = start(&rules_config(&[
        (
            10,
            "canary",
            r#"{ field = "http-header", name = "X-Env", values = ["canary*"] }"#,
        ),
        (
            20,
            "bot",
            r#"{ field = "http-header", name = "user-agent", regex_values = ['bot'] }"#,
        ),
    ]))
    .await;
    let addr = alb.listener("web");
    check_routes(
        addr,
        &[
            (get_with("/", &[("X-Env", "canary")]), "canary"),
            (get_with("/", &[("x-env", "Canary-1")]), "canary"),
            (get_with("/", &[("X-ENV", "CANARY-2")]), "canary"),
            (
                get_with("/", &[("X-Env", "prod"), ("X-Env", "canary-3")]),
                "canary",
            ),
            (
                get_with(
                    "/",
                    &[("x-env", "prod"), ("X-ENV", "staging"), ("X-Env", "CANARY")],
                ),
                "canary",
            ),
            (get_with("/", &[("X-Env", "  canary-4  ")]), "canary"),
            (get_with("/", &[("X-Env", "prod")]), DEFAULT),
            (get_with("/", &[("X-Env", "xcanary")]), DEFAULT),
            (get_with("/", &[("X-Envy", "canary")]), DEFAULT),
            (get_with("/", &[("X-Other", "canary")]), DEFAULT),
            (get("/"), DEFAULT),
            (
                get_with("/", &[("User-Agent", "Mozilla/5.0 (compatible; Googlebot/2.1)")]),
                "bot",
            ),
            (get_with("/", &[("USER-AGENT", "BOT")]), "bot"),
            (
                get_with("/", &[("User-Agent", "curl/8"), ("User-Agent", "robot")]),
                "bot",
            ),
            (get_with("/", &[("User-Agent", "curl/8")]), DEFAULT),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_request_method_is_exact_and_case_sensitive() {
    let alb = start(&rules_config(&[
        (
            10,
            "write",
            r#"{ field = "http-request-method", values = ["POST", "PATCH"] }"#,
        ),
        (
            20,
            "custom",
            r#"{ field = "http-request-method", values = ["CUSTOM-VERB"] }"#,
        ),
    ]))
    .await;
    let addr = alb.listener("web");
    let with_empty_body = |method: &str| request(method, "/", &[("Content-Length", "0")]);
    check_routes(
        addr,
        &[
            (with_empty_body("POST"), "write"),
            (with_empty_body("PATCH"), "write"),
            (with_empty_body("post"), DEFAULT),
            (with_empty_body("Post"), DEFAULT),
            (with_empty_body("POSTX"), DEFAULT),
            (with_empty_body("PUT"), DEFAULT),
            (get("/"), DEFAULT),
            (request("CUSTOM-VERB", "/", &[]), "custom"),
            (request("custom-verb", "/", &[]), DEFAULT),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_string_pairs_key_optional_escapes_and_percent_decoding() {
    let alb = start(&rules_config(&[
        (10, "version", r#"{ field = "query-string", values = [{ key = "version", value = "v2" }] }"#),
        (20, "any-key", r#"{ field = "query-string", values = [{ value = "beta" }] }"#),
        (30, "star", r#"{ field = "query-string", values = [{ key = "q", value = 'a\*b' }] }"#),
        (40, "question", r#"{ field = "query-string", values = [{ key = "k", value = 'what\?' }] }"#),
        (50, "lang", r#"{ field = "query-string", values = [{ key = "lang", value = "en*" }] }"#),
        (60, "decoded", r#"{ field = "query-string", values = [{ key = "dir", value = "/a/b" }] }"#),
        (70, "pair-or", r#"{ field = "query-string", values = [{ key = "x", value = "1" }, { key = "y", value = "2" }] }"#),
        (80, "utm", r#"{ field = "query-string", values = [{ key = "utm_*", value = "*" }] }"#),
    ]))
    .await;
    let addr = alb.listener("web");
    check_routes(
        addr,
        &[
            (get("/?version=v2"), "version"),
            (get("/?VERSION=V2"), "version"),
            (get("/?a=1&version=v2&b=2"), "version"),
            (get("/?%76ersion=v%32"), "version"),
            (get("/?version=v3"), DEFAULT),
            (get("/?version=v2x"), DEFAULT),
            (get("/?myversion=v2"), DEFAULT),
            (get("/version=v2"), DEFAULT),
            (get("/"), DEFAULT),
            (get("/?"), DEFAULT),
            (get("/?channel=beta"), "any-key"),
            (get("/?other=1&release=BETA"), "any-key"),
            (get("/?channel=beta2"), DEFAULT),
            (get("/?q=a*b"), "star"),
            (get("/?q=a%2Ab"), "star"),
            (get("/?q=axxb"), DEFAULT),
            (get("/?q=ab"), DEFAULT),
            (get("/?k=what%3F"), "question"),
            (get("/?k=whatx"), DEFAULT),
            (get("/?lang=en-US"), "lang"),
            (get("/?lang=en"), "lang"),
            (get("/?lang=fr"), DEFAULT),
            (get("/?dir=%2Fa%2Fb"), "decoded"),
            (get("/?dir=%2fa%2fb"), "decoded"),
            (get("/?dir=/a/c"), DEFAULT),
            (get("/?x=1"), "pair-or"),
            (get("/?y=2"), "pair-or"),
            (get("/?x=2&y=1"), DEFAULT),
            (get("/?utm_source=mail"), "utm"),
            (get("/?a=b&UTM_Medium="), "utm"),
            (get("/?xutm_source=mail"), DEFAULT),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ip_matches_the_tcp_peer_and_ignores_x_forwarded_for() {
    let alb = start(&rules_config(&[
        (
            10,
            "peer-2",
            r#"{ field = "source-ip", values = ["127.0.0.2/32"] }"#,
        ),
        (
            20,
            "ten",
            r#"{ field = "source-ip", values = ["10.0.0.0/8", "192.0.2.0/24"] }"#,
        ),
        (
            30,
            "loopback-1",
            r#"{ field = "source-ip", values = ["127.0.0.1/32"] }"#,
        ),
    ]))
    .await;
    let addr = alb.listener("web");
    let one = Ipv4Addr::new(127, 0, 0, 1);
    let two = Ipv4Addr::new(127, 0, 0, 2);
    let three = Ipv4Addr::new(127, 0, 0, 3);

    assert_eq!(routed_from(one, addr, &[]).await, "loopback-1");
    assert_eq!(routed_from(two, addr, &[]).await, "peer-2");
    assert_eq!(
        routed_from(one, addr, &[("X-Forwarded-For", "10.1.2.3")]).await,
        "loopback-1",
        "X-Forwarded-For must not be taken for the source address"
    );
    assert_eq!(
        routed_from(one, addr, &[("X-Forwarded-For", "127.0.0.2")]).await,
        "loopback-1"
    );
    assert_eq!(
        routed_from(two, addr, &[("X-Forwarded-For", "127.0.0.1, 10.9.9.9")]).await,
        "peer-2"
    );
    assert_eq!(
        routed_from(three, addr, &[("X-Forwarded-For", "192.0.2.7")]).await,
        DEFAULT,
        "a peer no rule names goes to the default action whatever X-Forwarded-For says"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ip_matches_ipv6_peers() {
    if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
        panic!(
            "this test needs the IPv6 loopback ::1 ({e}); enable it with `sysctl -w net.ipv6.conf.lo.disable_ipv6=0`"
        );
    }
    let mut config = rules_config(&[
        (
            10,
            "v6-loopback",
            r#"{ field = "source-ip", values = ["::1/128"] }"#,
        ),
        (
            20,
            "v6-doc",
            r#"{ field = "source-ip", values = ["2001:db8::/32"] }"#,
        ),
    ]);
    config.push_str(
        r#"
[[listener]]
name = "v6"
address = "[::1]:0"
default_action = { type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "default" }

[[listener.rule]]
priority = 10
conditions = [{ field = "source-ip", values = ["::1/128"] }]
action = { type = "fixed-response", status_code = 200, content_type = "text/plain", message_body = "v6-loopback" }

[[listener.rule]]
priority = 20
conditions = [{ field = "source-ip", values = ["127.0.0.0/8"] }]
action = { type = "fixed-response", status_code = 200, content_type = "text/plain", message_body = "v4" }
"#,
    );
    let alb = start(&config).await;
    assert_eq!(routed(alb.listener("v6"), &get("/")).await, "v6-loopback");
    assert_eq!(
        routed(
            alb.listener("v6"),
            &get_with("/", &[("X-Forwarded-For", "127.0.0.1")])
        )
        .await,
        "v6-loopback"
    );
    assert_eq!(
        routed(
            alb.listener("web"),
            &get_with("/", &[("X-Forwarded-For", "::1, 2001:db8::1")])
        )
        .await,
        DEFAULT,
        "an IPv4 peer matches no IPv6 range whatever X-Forwarded-For says"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_of_a_rule_all_hold_and_values_of_a_condition_are_alternatives() {
    let alb = start(&rules_config(&[
        (
            10,
            "all-three",
            r#"{ field = "path-pattern", values = ["/a", "/b"] }, { field = "http-request-method", values = ["GET"] }, { field = "http-header", name = "X-T", values = ["1"] }"#,
        ),
        (
            20,
            "two-queries",
            r#"{ field = "query-string", values = [{ key = "x", value = "1" }] }, { field = "query-string", values = [{ key = "y", value = "2" }] }"#,
        ),
        (
            30,
            "host-and-path",
            r#"{ field = "host-header", values = ["shop.example.com", "store.example.com"] }, { field = "path-pattern", values = ["/cart*"] }"#,
        ),
    ]))
    .await;
    let addr = alb.listener("web");
    let t1 = [("X-T", "1")];
    check_routes(
        addr,
        &[
            (get_with("/a", &t1), "all-three"),
            (get_with("/b", &t1), "all-three"),
            (get_with("/c", &t1), DEFAULT),
            (get("/a"), DEFAULT),
            (get_with("/a", &[("X-T", "2")]), DEFAULT),
            (
                request("POST", "/a", &[("X-T", "1"), ("Content-Length", "0")]),
                DEFAULT,
            ),
            (get("/?x=1&y=2"), "two-queries"),
            (get("/?y=2&x=1"), "two-queries"),
            (get("/?x=1"), DEFAULT),
            (get("/?y=2"), DEFAULT),
            (
                get_with("/cart/1", &[("Host", "shop.example.com")]),
                "host-and-path",
            ),
            (
                get_with("/cart", &[("Host", "store.example.com")]),
                "host-and-path",
            ),
            (get_with("/other", &[("Host", "shop.example.com")]), DEFAULT),
            (get_with("/cart", &[("Host", "mall.example.com")]), DEFAULT),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowest_priority_wins_whatever_the_declaration_order() {
    let alb = start(&rules_config(&[
        (30, "p30", r#"{ field = "path-pattern", values = ["/p/*"] }"#),
        (5, "p5", r#"{ field = "path-pattern", values = ["/p/a*"] }"#),
        (20, "p20", r#"{ field = "path-pattern", values = ["/p/ab"] }"#),
        (50000, "p50000", r#"{ field = "path-pattern", values = ["*"] }"#),
        (1, "p1", r#"{ field = "path-pattern", values = ["/first"] }"#),
    ]))
    .await;
    let addr = alb.listener("web");
    check_routes(
        addr,
        &[
            (get("/p/ab"), "p5"),
            (get("/p/a"), "p5"),
            (get("/p/x"), "p30"),
            (get("/first"), "p1"),
            (get("/elsewhere"), "p50000"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_action_forwards_when_no_rule_matches() {
    let backend = Backend::start("fallback").await;
    let alb = start(&format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "forward", target_group = "fallback" }}

[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/fixed"] }}]
action = {}

[target_group.fallback]
targets = ["{}"]
health_check = {{ enabled = false }}
"#,
        answer("rule"),
        backend.addr()
    ))
    .await;
    let client = Client::new();

    let fixed = client.get(&alb.url("web", "/fixed")).await.unwrap();
    assert_eq!((fixed.status, fixed.text().as_str()), (200, "rule"));
    assert_eq!(
        backend.request_count(),
        0,
        "a matched rule must not reach the default target"
    );

    let other = client.get(&alb.url("web", "/anything?x=1")).await.unwrap();
    assert_eq!(other.status, 200);
    assert_eq!(other.backend(), Some("fallback"));
    assert_eq!(backend.request_count(), 1);
    assert_eq!(backend.requests()[0].target, "/anything?x=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_requests_evenly_over_the_targets() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let c = Backend::start("c").await;
    let alb = start(&format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "forward", target_group = "three" }}

[target_group.three]
algorithm = "round_robin"
targets = ["{}", "{}", "{}"]
health_check = {{ enabled = false }}
"#,
        a.addr(),
        b.addr(),
        c.addr()
    ))
    .await;
    let client = Client::new();
    let url = alb.url("web", "/rr");
    let mut order = Vec::new();
    for _ in 0..30 {
        let resp = client.get(&url).await.unwrap();
        assert_eq!(resp.status, 200, "{resp:?}");
        order.push(resp.backend().unwrap_or("?").to_owned());
    }
    for backend in [&a, &b, &c] {
        assert_eq!(
            backend.request_count(),
            10,
            "round robin over 3 targets gives each 10 of 30 sequential requests; order: {order:?}"
        );
    }
    for window in order.windows(3) {
        assert!(
            window[0] != window[1] && window[1] != window[2] && window[0] != window[2],
            "round robin visits every target once per cycle; order: {order:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_whose_target_group_has_no_targets_answers_503() {
    let backend = Backend::start("full").await;
    let alb = start(&format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "forward", target_group = "full" }}

[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/empty/*"] }}]
action = {{ type = "forward", target_group = "empty" }}

[target_group.empty]
targets = []
health_check = {{ enabled = false }}

[target_group.full]
targets = ["{}"]
health_check = {{ enabled = false }}
"#,
        backend.addr()
    ))
    .await;
    let addr = alb.listener("web");

    let mut conn = RawConn::connect(addr).await.unwrap();
    conn.send(get("/empty/x").as_bytes()).await.unwrap();
    let resp = conn.read_response(scaled(EXCHANGE)).await.expect("an answer");
    assert_eq!(resp.status, 503, "{resp:?}");
    assert_eq!(resp.header("server"), Some("awselb/2.0"), "{resp:?}");
    assert!(resp.text().contains("503"), "{resp:?}");
    assert_eq!(backend.request_count(), 0);

    // The connection stays usable and the other route still forwards.
    conn.send(get("/other").as_bytes()).await.unwrap();
    let resp = conn.read_response(scaled(EXCHANGE)).await.expect("an answer");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.header("x-backend"), Some("full"));
}
