//! Rule actions through the real binary: weighted forward and group stickiness, redirects,
//! fixed responses, and the url-rewrite / host-header-rewrite transforms.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hostalb_testkit::{
    Backend, Client, Conn, HttpResponse, ParsedResponse, RawConn, eventually, parse_responses, scaled,
};

use crate::common::start;

/// Bound on one exchange with hostalb.
const EXCHANGE: Duration = Duration::from_secs(5);

/// ALB's stickiness cookies expire seven days after the response that set them.
const COOKIE_LIFETIME: u64 = 7 * 86_400;

/// Sends `raw` on a new connection and returns the first response.
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

fn get(target: &str, host: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n")
}

/// Sends `raw` (whose last request asks to close) and returns every byte received until
/// hostalb closed.
async fn exchange_until_closed(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut conn = RawConn::connect(addr).await.expect("connect to hostalb");
    conn.send(raw).await.expect("send");
    assert!(
        conn.wait_closed(scaled(EXCHANGE)).await,
        "hostalb did not close after `Connection: close`; received {:?}",
        String::from_utf8_lossy(conn.received())
    );
    conn.received().to_vec()
}

/// Splits the bytes of a response to HEAD from what follows it: (head text, rest).
fn split_head(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {:?}", String::from_utf8_lossy(bytes)));
    (
        String::from_utf8_lossy(&bytes[..end + 4]).into_owned(),
        &bytes[end + 4..],
    )
}

/// The value of field `name` in a head's text (case-insensitive name).
fn head_field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into Unix seconds.
fn parse_http_date(text: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = text.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" || !parts[0].ends_with(',') || parts[1].len() != 2 {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    let month = i64::try_from(MONTHS.iter().position(|m| *m == parts[2])?).ok()? + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<Vec<i64>>>()?;
    if hms.len() != 3 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    u64::try_from(secs).ok()
}

/// A `Set-Cookie` value split into its name, value and attributes (names lower-cased).
#[derive(Debug)]
struct SetCookie {
    name: String,
    value: String,
    attributes: BTreeMap<String, String>,
}

fn parse_set_cookie(text: &str) -> SetCookie {
    let mut parts = text.split(';').map(str::trim);
    let (name, value) = parts
        .next()
        .and_then(|p| p.split_once('='))
        .unwrap_or_else(|| panic!("not a cookie: {text:?}"));
    let attributes = parts
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), v.to_owned()),
            None => (p.to_ascii_lowercase(), String::new()),
        })
        .collect();
    SetCookie {
        name: name.to_owned(),
        value: value.to_owned(),
        attributes,
    }
}

/// The `AWSALBTG` value a response sets, after checking both stickiness cookies carry
/// ALB's attributes.
fn group_cookie(resp: &HttpResponse) -> String {
    let cookies: Vec<SetCookie> = resp
        .header_all("set-cookie")
        .into_iter()
        .map(parse_set_cookie)
        .collect();
    let find = |name: &str| {
        cookies
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} cookie in {resp:?}"))
    };
    let plain = find("AWSALBTG");
    let cors = find("AWSALBTGCORS");
    assert!(!plain.value.is_empty(), "{plain:?}");
    assert_eq!(plain.value, cors.value, "both cookies name the same group");
    let now = now_unix();
    for cookie in [plain, cors] {
        assert_eq!(
            cookie.attributes.get("path").map(String::as_str),
            Some("/"),
            "{cookie:?}"
        );
        assert!(
            !cookie.attributes.contains_key("max-age"),
            "ALB's cookies use Expires, not Max-Age: {cookie:?}"
        );
        let expires = cookie
            .attributes
            .get("expires")
            .and_then(|e| parse_http_date(e))
            .unwrap_or_else(|| panic!("no valid Expires date in {cookie:?}"));
        assert!(
            expires.abs_diff(now + COOKIE_LIFETIME) <= 120,
            "Expires is seven days out: {cookie:?} (now {now})"
        );
    }
    assert!(!plain.attributes.contains_key("samesite"), "{plain:?}");
    assert!(!plain.attributes.contains_key("secure"), "{plain:?}");
    assert_eq!(
        cors.attributes.get("samesite").map(String::as_str),
        Some("None"),
        "{cors:?}"
    );
    assert!(cors.attributes.contains_key("secure"), "{cors:?}");
    plain.value.clone()
}

/// A listener `web` forwarding by weight to groups `(name, weight, backend)`, optionally
/// with group stickiness; the path `/zero` forwards to the same groups with every weight 0.
fn weighted_config(groups: &[(&str, u32, SocketAddr)], stickiness: Option<u32>) -> String {
    let list: Vec<String> = groups
        .iter()
        .map(|(name, weight, _)| format!(r#"{{ name = "{name}", weight = {weight} }}"#))
        .collect();
    let zero: Vec<String> = groups
        .iter()
        .map(|(name, _, _)| format!(r#"{{ name = "{name}", weight = 0 }}"#))
        .collect();
    let sticky = stickiness.map_or(String::new(), |s| format!(", stickiness_seconds = {s}"));
    let mut text = format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "forward", target_groups = [{}]{sticky} }}

[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/zero"] }}]
action = {{ type = "forward", target_groups = [{}] }}
"#,
        list.join(", "),
        zero.join(", ")
    );
    for (name, _, addr) in groups {
        text.push_str(&format!(
            "\n[target_group.{name}]\ntargets = [\"{addr}\"]\nhealth_check = {{ enabled = false }}\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_forward_splits_by_weight_and_weight_zero_gets_nothing() {
    let blue = Backend::start("blue").await;
    let green = Backend::start("green").await;
    let never = Backend::start("never").await;
    let alb = start(&weighted_config(
        &[
            ("blue", 70, blue.addr()),
            ("green", 30, green.addr()),
            ("never", 0, never.addr()),
        ],
        None,
    ))
    .await;
    let client = Client::new();
    let url = alb.url("web", "/split");
    const TOTAL: usize = 600;
    for _ in 0..TOTAL {
        let resp = client.get(&url).await.unwrap();
        assert_eq!(resp.status, 200, "{resp:?}");
        assert!(
            resp.header_all("set-cookie").is_empty(),
            "no stickiness configured, no cookie: {resp:?}"
        );
    }
    let (b, g) = (blue.request_count(), green.request_count());
    assert_eq!(
        b + g,
        TOTAL,
        "blue {b}, green {g}, never {}",
        never.request_count()
    );
    assert_eq!(never.request_count(), 0, "a group of weight 0 gets no traffic");
    let blue_share = b as f64 * 100.0 / TOTAL as f64;
    assert!(
        (63.0..=77.0).contains(&blue_share),
        "weights 70/30 should give blue 70% ± 7 points; got blue {b}, green {g} ({blue_share:.1}%)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_whose_weights_are_all_zero_answers_503() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let alb = start(&weighted_config(&[("a", 1, a.addr()), ("b", 1, b.addr())], None)).await;
    let resp = exchange(alb.listener("web"), &get("/zero", "weights.test")).await;
    assert_eq!(resp.status, 503, "{resp:?}");
    assert_eq!(resp.header("server"), Some("awselb/2.0"), "{resp:?}");
    assert_eq!(a.request_count() + b.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_stickiness_sets_alb_cookies_and_a_replayed_cookie_sticks() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let alb = start(&weighted_config(
        &[("a", 50, a.addr()), ("b", 50, b.addr())],
        Some(600),
    ))
    .await;
    let client = Client::new();
    let url = alb.url("web", "/sticky");

    // Without a cookie the split is by weight: both groups get requests, and every
    // response sets the cookies naming the group that answered.
    let mut cookie_of: BTreeMap<String, String> = BTreeMap::new();
    for _ in 0..40 {
        let resp = client.get(&url).await.unwrap();
        assert_eq!(resp.status, 200, "{resp:?}");
        let cookie = group_cookie(&resp);
        cookie_of.insert(resp.backend().unwrap().to_owned(), cookie);
    }
    assert!(
        a.request_count() > 0 && b.request_count() > 0,
        "cookieless requests split by weight: a {}, b {}",
        a.request_count(),
        b.request_count()
    );

    // Replaying a group's cookie keeps every request on that group.
    for (group, cookie) in &cookie_of {
        let header = format!("other=1; AWSALBTG={cookie}; more=2");
        for i in 0..30 {
            let resp = client
                .request("GET", &url, &[("Cookie", header.as_str())], "")
                .await
                .unwrap();
            assert_eq!(resp.status, 200, "{resp:?}");
            assert_eq!(
                resp.backend(),
                Some(group.as_str()),
                "request {i} with the cookie of group {group} went elsewhere"
            );
            // The cookie is renewed on every response and still names the same group.
            let renewed = group_cookie(&resp);
            let again = client
                .request("GET", &url, &[("Cookie", &format!("AWSALBTG={renewed}"))], "")
                .await
                .unwrap();
            assert_eq!(again.backend(), Some(group.as_str()), "renewed cookie of {group}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_cookie_stops_sticking_after_the_stickiness_duration() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let alb = start(&weighted_config(
        &[("a", 50, a.addr()), ("b", 50, b.addr())],
        Some(2),
    ))
    .await;
    let client = Client::new();
    let url = alb.url("web", "/sticky");
    let first = client.get(&url).await.unwrap();
    let group = first.backend().unwrap().to_owned();
    let header = format!("AWSALBTG={}", group_cookie(&first));
    for _ in 0..5 {
        let resp = client
            .request("GET", &url, &[("Cookie", header.as_str())], "")
            .await
            .unwrap();
        assert_eq!(
            resp.backend(),
            Some(group.as_str()),
            "within the duration the cookie sticks"
        );
    }
    // Once the duration has passed the cookie is ignored: requests split by weight again,
    // so one of them soon reaches the other group.
    eventually(Duration::from_secs(6), async || {
        let resp = client
            .request("GET", &url, &[("Cookie", header.as_str())], "")
            .await
            .unwrap();
        resp.backend() != Some(group.as_str())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_forged_group_cookie_gets_a_normal_pick_and_a_fresh_cookie() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let alb = start(&weighted_config(
        &[("a", 50, a.addr()), ("b", 50, b.addr())],
        Some(600),
    ))
    .await;
    let client = Client::new();
    let url = alb.url("web", "/sticky");

    let first = client.get(&url).await.unwrap();
    let genuine = group_cookie(&first);
    let mut tampered = genuine.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let forged = "Z3JvdXAtYQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned();
    let url_encoded: String = genuine.bytes().map(|c| format!("%{c:02X}")).collect();

    for (what, bad) in [
        ("tampered", &tampered),
        ("forged", &forged),
        ("URL-encoded", &url_encoded),
    ] {
        let header = format!("AWSALBTG={bad}");
        let mut seen = BTreeMap::new();
        for _ in 0..40 {
            let resp = client
                .request("GET", &url, &[("Cookie", header.as_str())], "")
                .await
                .unwrap();
            assert_eq!(resp.status, 200, "{what}: {resp:?}");
            let fresh = group_cookie(&resp);
            assert_ne!(&fresh, bad, "{what}: the bad cookie must be replaced");
            *seen.entry(resp.backend().unwrap().to_owned()).or_insert(0u32) += 1;

            // The fresh cookie is a valid one: it sticks to the group that answered.
            let replay = client
                .request("GET", &url, &[("Cookie", &format!("AWSALBTG={fresh}"))], "")
                .await
                .unwrap();
            assert_eq!(
                replay.backend(),
                resp.backend(),
                "{what}: the fresh cookie sticks"
            );
        }
        assert_eq!(
            seen.len(),
            2,
            "{what} cookie: requests must be split by weight as without a cookie, got {seen:?}"
        );
    }
}

/// A listener `web` with one redirect rule per path (`/name` and `/name/*`).
fn redirect_config(rules: &[(&str, &str)]) -> String {
    let mut text = String::from(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = { type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "no redirect" }
"#,
    );
    for (i, (path, action)) in rules.iter().enumerate() {
        text.push_str(&format!(
            "\n[[listener.rule]]\npriority = {}\nconditions = [{{ field = \"path-pattern\", values = [\"{path}\", \"{path}/*\"] }}]\naction = {action}\n",
            10 * (i + 1)
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_defaults_keep_the_request_values_and_always_write_the_port() {
    let alb = start(&redirect_config(&[
        (
            "/https",
            r#"{ type = "redirect", protocol = "HTTPS", status_code = "HTTP_301" }"#,
        ),
        (
            "/found",
            r#"{ type = "redirect", host = "elsewhere.example", status_code = "HTTP_302" }"#,
        ),
    ]))
    .await;
    let addr = alb.listener("web");
    let port = addr.port();

    let resp = exchange(addr, &get("/https/a/b?x=1&y=2", "shop.example.com:5555")).await;
    assert_eq!(resp.status, 301, "{resp:?}");
    assert_eq!(resp.reason, "Moved Permanently");
    assert_eq!(
        resp.header("location"),
        Some(format!("https://shop.example.com:{port}/https/a/b?x=1&y=2").as_str()),
        "{resp:?}"
    );
    assert_eq!(resp.header("server"), Some("awselb/2.0"), "{resp:?}");
    assert!(resp.header("date").is_some(), "{resp:?}");
    assert!(resp.header("content-type").is_some(), "{resp:?}");
    assert_eq!(
        resp.header("content-length")
            .and_then(|v| v.parse::<usize>().ok()),
        Some(resp.body.len()),
        "{resp:?}"
    );

    // No query on the request: no `?` in the Location.
    let resp = exchange(addr, &get("/https", "shop.example.com")).await;
    assert_eq!(
        resp.header("location"),
        Some(format!("https://shop.example.com:{port}/https").as_str()),
        "{resp:?}"
    );

    let resp = exchange(addr, &get("/found/x?k=v", "shop.example.com")).await;
    assert_eq!(resp.status, 302, "{resp:?}");
    assert_eq!(resp.reason, "Found");
    assert_eq!(
        resp.header("location"),
        Some(format!("http://elsewhere.example:{port}/found/x?k=v").as_str()),
        "{resp:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_template_variables_expand_to_the_request_values() {
    let alb = start(&redirect_config(&[
        (
            "/moved",
            r##"{ type = "redirect", protocol = "HTTPS", port = "8443", host = "new.#{host}", path = "/v2/#{path}/end", query = "from=#{port}&#{query}", status_code = "HTTP_302" }"##,
        ),
        (
            "/hostinpath",
            r##"{ type = "redirect", path = "/#{host}/#{port}/#{path}", status_code = "HTTP_301" }"##,
        ),
        (
            "/explicit",
            r##"{ type = "redirect", protocol = "HTTP", port = 80, host = "example.net", path = "/landing", status_code = "HTTP_301" }"##,
        ),
        (
            "/https443",
            r##"{ type = "redirect", protocol = "HTTPS", port = "443", status_code = "HTTP_301" }"##,
        ),
        (
            "/samport",
            r##"{ type = "redirect", port = "#{port}", host = "#{host}", path = "/elsewhere/#{path}", status_code = "HTTP_302" }"##,
        ),
    ]))
    .await;
    let addr = alb.listener("web");
    let port = addr.port();
    let cases = [
        (
            get("/moved/items?q=1", "old.example"),
            format!("https://new.old.example:8443/v2/moved/items/end?from={port}&q=1"),
        ),
        (
            get("/hostinpath/a?z=9", "h.example:777"),
            format!("http://h.example:{port}/h.example/{port}/hostinpath/a?z=9"),
        ),
        (
            get("/hostinpath/a%20b?z=%41", "h.example"),
            format!("http://h.example:{port}/h.example/{port}/hostinpath/a%20b?z=%41"),
        ),
        (
            get("/explicit?keep=me", "any.example"),
            "http://example.net:80/landing?keep=me".to_owned(),
        ),
        (
            get("/https443/p", "secure.example"),
            "https://secure.example:443/https443/p".to_owned(),
        ),
        (
            get("/samport/x", "same.example"),
            format!("http://same.example:{port}/elsewhere/samport/x"),
        ),
    ];
    let mut wrong = Vec::new();
    for (raw, expected) in &cases {
        let resp = exchange(addr, raw).await;
        if !matches!(resp.status, 301 | 302) || resp.header("location") != Some(expected.as_str()) {
            wrong.push(format!(
                "{raw:?}\n    expected Location {expected:?}, got {} {:?}",
                resp.status,
                resp.header("location")
            ));
        }
    }
    assert!(wrong.is_empty(), "wrong redirects:\n{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_protocol_keyword_is_the_protocol_of_the_request() {
    let alb = start(&redirect_config(&[(
        "/proto",
        r##"{ type = "redirect", protocol = "HTTPS", query = "was=#{protocol}", status_code = "HTTP_301" }"##,
    )]))
    .await;
    let addr = alb.listener("web");
    let resp = exchange(addr, &get("/proto", "p.example")).await;
    assert_eq!(resp.status, 301, "{resp:?}");
    let location = resp.header("location").unwrap_or_default().to_owned();
    let expected = format!("https://p.example:{}/proto?was=http", addr.port());
    assert!(
        location.eq_ignore_ascii_case(&expected),
        "#{{protocol}} retains the request's protocol (http): expected {expected:?}, got {location:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_query_can_be_dropped_or_replaced() {
    let alb = start(&redirect_config(&[
        (
            "/drop",
            r#"{ type = "redirect", path = "/target", query = "", status_code = "HTTP_302" }"#,
        ),
        (
            "/replace",
            r#"{ type = "redirect", path = "/t", query = "a=b", status_code = "HTTP_301" }"#,
        ),
        (
            "/append",
            r##"{ type = "redirect", path = "/t", query = "#{query}&src=old", status_code = "HTTP_301" }"##,
        ),
    ]))
    .await;
    let addr = alb.listener("web");
    let port = addr.port();
    let location = async |raw: String| exchange(addr, &raw).await.header("location").map(str::to_owned);
    assert_eq!(
        location(get("/drop?secret=1", "q.example")).await,
        Some(format!("http://q.example:{port}/target"))
    );
    assert_eq!(
        location(get("/replace?old=1", "q.example")).await,
        Some(format!("http://q.example:{port}/t?a=b"))
    );
    assert_eq!(
        location(get("/append?x=1", "q.example")).await,
        Some(format!("http://q.example:{port}/t?x=1&src=old"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_location_over_8_kib_answers_507() {
    let alb = start(&redirect_config(&[(
        "/long",
        r#"{ type = "redirect", protocol = "HTTPS", status_code = "HTTP_301" }"#,
    )]))
    .await;
    let addr = alb.listener("web");
    let resp = exchange(addr, &get(&format!("/long/{}", "a".repeat(9000)), "long.example")).await;
    assert_eq!(resp.status, 507, "{:?} {:?}", resp.reason, resp.headers);
    assert_eq!(resp.header("location"), None);
    assert_eq!(resp.header("server"), Some("awselb/2.0"));

    let resp = exchange(addr, &get(&format!("/long/{}", "a".repeat(7000)), "long.example")).await;
    assert_eq!(
        resp.status, 301,
        "a Location under 8 KiB is fine: {:?}",
        resp.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_answers_head_with_headers_and_no_body() {
    let alb = start(&redirect_config(&[(
        "/https",
        r#"{ type = "redirect", protocol = "HTTPS", status_code = "HTTP_301" }"#,
    )]))
    .await;
    let addr = alb.listener("web");
    let port = addr.port();
    let raw = "HEAD /https/h?x=1 HTTP/1.1\r\nHost: head.example\r\n\r\n\
               GET /https/g HTTP/1.1\r\nHost: head.example\r\nConnection: close\r\n\r\n";
    let received = exchange_until_closed(addr, raw.as_bytes()).await;
    let (head, rest) = split_head(&received);
    assert!(head.starts_with("HTTP/1.1 301 "), "{head}");
    assert_eq!(
        head_field(&head, "location"),
        Some(format!("https://head.example:{port}/https/h?x=1").as_str()),
        "{head}"
    );
    assert_eq!(head_field(&head, "server"), Some("awselb/2.0"), "{head}");
    let next = parse_responses(rest);
    assert_eq!(
        next.len(),
        1,
        "the HEAD answer carries no body: the next bytes are the GET's answer; got {:?}",
        String::from_utf8_lossy(rest)
    );
    assert_eq!(next[0].status, 301);
    assert_eq!(
        next[0].header("location"),
        Some(format!("https://head.example:{port}/https/g").as_str())
    );
}

fn fixed_config() -> String {
    r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = { type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "nothing here" }

[[listener.rule]]
priority = 10
conditions = [{ field = "path-pattern", values = ["/teapot"] }]
action = { type = "fixed-response", status_code = 418, content_type = "application/json", message_body = '{"ok":false}' }

[[listener.rule]]
priority = 20
conditions = [{ field = "path-pattern", values = ["/empty"] }]
action = { type = "fixed-response", status_code = 204 }

[[listener]]
name = "quiet"
address = "127.0.0.1:0"
server_header = false
default_action = { type = "fixed-response", status_code = 503, content_type = "text/html", message_body = "<p>down</p>" }
"#
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_response_carries_status_content_type_body_and_server() {
    let alb = start(&fixed_config()).await;
    let web = alb.listener("web");

    let resp = exchange(web, &get("/teapot", "f.example")).await;
    assert_eq!(resp.status, 418, "{resp:?}");
    assert_eq!(resp.header("content-type"), Some("application/json"), "{resp:?}");
    assert_eq!(resp.text(), r#"{"ok":false}"#);
    assert_eq!(resp.header("content-length"), Some("12"), "{resp:?}");
    assert_eq!(resp.header("server"), Some("awselb/2.0"), "{resp:?}");
    assert!(resp.header("date").is_some(), "{resp:?}");

    let resp = exchange(web, &get("/other", "f.example")).await;
    assert_eq!(resp.status, 404, "{resp:?}");
    assert_eq!(resp.header("content-type"), Some("text/plain"), "{resp:?}");
    assert_eq!(resp.text(), "nothing here");

    let resp = exchange(web, &get("/empty", "f.example")).await;
    assert_eq!(resp.status, 204, "{resp:?}");
    assert!(resp.body.is_empty(), "{resp:?}");

    let quiet = exchange(alb.listener("quiet"), &get("/", "f.example")).await;
    assert_eq!(quiet.status, 503, "{quiet:?}");
    assert_eq!(quiet.header("content-type"), Some("text/html"), "{quiet:?}");
    assert_eq!(quiet.text(), "<p>down</p>");
    assert_eq!(
        quiet.header("server"),
        None,
        "server_header = false drops the Server header: {quiet:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_response_to_head_has_headers_and_no_body() {
    let alb = start(&fixed_config()).await;
    let raw = "HEAD /teapot HTTP/1.1\r\nHost: f.example\r\n\r\n\
               GET /other HTTP/1.1\r\nHost: f.example\r\nConnection: close\r\n\r\n";
    let received = exchange_until_closed(alb.listener("web"), raw.as_bytes()).await;
    let (head, rest) = split_head(&received);
    assert!(head.starts_with("HTTP/1.1 418 "), "{head}");
    assert_eq!(
        head_field(&head, "content-type"),
        Some("application/json"),
        "{head}"
    );
    assert_eq!(head_field(&head, "content-length"), Some("12"), "{head}");
    assert_eq!(head_field(&head, "server"), Some("awselb/2.0"), "{head}");
    let next = parse_responses(rest);
    assert_eq!(
        next.len(),
        1,
        "no body after the HEAD answer; got {:?}",
        String::from_utf8_lossy(rest)
    );
    assert_eq!((next[0].status, next[0].text().as_str()), (404, "nothing here"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_response_consumes_a_request_body_and_keeps_the_connection() {
    let alb = start(&fixed_config()).await;
    let web = alb.listener("web");

    // A body that looks like a request must be read as a body, never as a request.
    let body = "GET /smuggled HTTP/1.1\r\nHost: f.example\r\n\r\n";
    let raw = format!(
        "POST /teapot HTTP/1.1\r\nHost: f.example\r\nContent-Length: {}\r\n\r\n{body}\
         GET /other HTTP/1.1\r\nHost: f.example\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let received = exchange_until_closed(web, raw.as_bytes()).await;
    let responses = parse_responses(&received);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![418, 404],
        "one answer per request, the body skipped: {:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(
        !responses[0].closes(),
        "the POST's answer keeps the connection: {:?}",
        responses[0]
    );

    // The same with a keep-alive client: several POSTs on one connection.
    let mut conn = Conn::connect(web).await.unwrap();
    for i in 0..3 {
        let resp = conn
            .request(
                "POST",
                "/teapot",
                &[("Content-Type", "text/plain")],
                format!("payload {i}"),
            )
            .await
            .unwrap();
        assert_eq!(resp.status, 418, "{resp:?}");
        assert!(!conn.is_closed(), "the connection stays open after POST {i}");
    }
    let resp = conn.get("/other").await.unwrap();
    assert_eq!(resp.status, 404);
}

fn transform_config(backend: SocketAddr) -> String {
    format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "fixed-response", status_code = 404, content_type = "text/plain", message_body = "default" }}

[[listener.rule]]
priority = 5
conditions = [{{ field = "path-pattern", values = ["/new/*"] }}]
action = {{ type = "fixed-response", status_code = 200, content_type = "text/plain", message_body = "new-rule" }}

[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/old/*"] }}]
transforms = [{{ type = "url-rewrite", rewrites = [{{ regex = '^/old/(.*)$', replace = '/new/$1' }}] }}]
action = {{ type = "forward", target_group = "app" }}

[[listener.rule]]
priority = 20
conditions = [{{ field = "host-header", values = ["*.legacy.example"] }}]
transforms = [{{ type = "host-header-rewrite", rewrites = [{{ regex = '^([a-z]+)\.legacy\.example$', replace = '$1.modern.example' }}] }}]
action = {{ type = "forward", target_group = "app" }}

[[listener.rule]]
priority = 30
conditions = [{{ field = "path-pattern", values = ["/keep/*"] }}]
transforms = [
  {{ type = "url-rewrite", rewrites = [{{ regex = '^/nomatch/(.*)$', replace = '/x/$1' }}] }},
  {{ type = "host-header-rewrite", rewrites = [{{ regex = '^nomatch\.example$', replace = 'y.example' }}] }},
]
action = {{ type = "forward", target_group = "app" }}

[[listener.rule]]
priority = 40
conditions = [{{ field = "path-pattern", values = ["/bad/*"] }}]
transforms = [{{ type = "url-rewrite", rewrites = [{{ regex = '^/bad/(.*)$', replace = '$1' }}] }}]
action = {{ type = "forward", target_group = "app" }}

[target_group.app]
targets = ["{backend}"]
health_check = {{ enabled = false }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_rewrite_changes_the_path_the_target_sees_but_not_the_routing() {
    let backend = Backend::start("app").await;
    let alb = start(&transform_config(backend.addr())).await;
    let resp = exchange(alb.listener("web"), &get("/old/a/b?q=1&r=2", "svc.example")).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(
        resp.header("x-backend"),
        Some("app"),
        "the rewritten path must not be routed again to the /new/* rule: {resp:?}"
    );
    let seen = backend.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/new/a/b?q=1&r=2", "path rewritten, query kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_rewrite_changes_the_host_the_target_sees() {
    let backend = Backend::start("app").await;
    let alb = start(&transform_config(backend.addr())).await;
    let resp = exchange(alb.listener("web"), &get("/x?y=1", "shop.legacy.example")).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let seen = backend.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/x?y=1");
    let host = seen[0].header_all("host");
    assert_eq!(host.len(), 1, "exactly one Host: {:?}", seen[0].headers);
    assert_eq!(
        host[0].split(':').next(),
        Some("shop.modern.example"),
        "rewritten host: {:?}",
        seen[0].headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_without_a_match_forward_the_request_unchanged() {
    let backend = Backend::start("app").await;
    let alb = start(&transform_config(backend.addr())).await;
    let addr = alb.listener("web");
    let resp = exchange(addr, &get("/keep/x?y=1", "keep.example")).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let seen = backend.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/keep/x?y=1");
    assert_eq!(
        seen[0].header_all("host"),
        vec![format!("keep.example:{}", addr.port()).as_str()],
        "Host forwarded as without a transform"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_rewrite_with_an_unusable_result_answers_500() {
    let backend = Backend::start("app").await;
    let alb = start(&transform_config(backend.addr())).await;
    let resp = exchange(alb.listener("web"), &get("/bad/x", "svc.example")).await;
    assert_eq!(
        resp.status, 500,
        "a rewritten path without a leading `/` is unusable: {resp:?}"
    );
    assert_eq!(resp.header("server"), Some("awselb/2.0"), "{resp:?}");
    assert_eq!(backend.request_count(), 0, "nothing forwarded");
}
