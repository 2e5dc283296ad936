//! Target stickiness: `lb_cookie` (AWSALB and its CORS twin, renewed on every response)
//! and `app_cookie` (AWSALBAPP-0 once the application sets its own cookie). A valid cookie
//! keeps a client on its target while that target takes requests; an expired, tampered or
//! forged cookie, or one naming a target that is unhealthy or gone, gets a normal pick.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hostalb_testkit::{Backend, Client, HostAlb, HttpResponse, RawBackend, RawBehaviour, scaled};

use crate::admin::metric;
use crate::common::start;
use crate::health::{fast_checks, group, reload, rule, wait_state, web};

/// One `Set-Cookie` field: name, value and the attributes as written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SetCookie {
    name: String,
    value: String,
    attributes: Vec<String>,
}

impl SetCookie {
    fn parse(field: &str) -> SetCookie {
        let mut parts = field.split(';').map(str::trim);
        let (name, value) = parts
            .next()
            .and_then(|p| p.split_once('='))
            .unwrap_or_else(|| panic!("not a cookie: {field}"));
        SetCookie {
            name: name.to_owned(),
            value: value.to_owned(),
            attributes: parts.map(str::to_owned).collect(),
        }
    }

    /// The value of attribute `name` (`Expires=...`), or `""` for a flag; `None` if absent.
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case(name) => Some(v),
            None if a.eq_ignore_ascii_case(name) => Some(""),
            _ => None,
        })
    }
}

fn set_cookies(resp: &HttpResponse) -> Vec<SetCookie> {
    resp.header_all("set-cookie")
        .into_iter()
        .map(SetCookie::parse)
        .collect()
}

/// The cookie `name` set by `resp` (panics unless it is set exactly once).
fn cookie(resp: &HttpResponse, name: &str) -> SetCookie {
    let found: Vec<SetCookie> = set_cookies(resp).into_iter().filter(|c| c.name == name).collect();
    assert_eq!(found.len(), 1, "one {name} cookie expected in {resp:?}");
    found.into_iter().next().expect("one")
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(text: &str) -> Option<u64> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = fields.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let hms: Vec<i64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    let days = days_from_civil(year.parse().ok()?, month, day.parse().ok()?);
    u64::try_from(days * 86_400 + h * 3600 + m * 60 + s).ok()
}

/// Asserts the attributes ALB gives its stickiness cookies: Expires seven days out, Path=/,
/// and SameSite=None; Secure only on the CORS twin.
fn assert_alb_cookie(c: &SetCookie, cors: bool) {
    let expires = c
        .attribute("Expires")
        .and_then(parse_http_date)
        .unwrap_or_else(|| panic!("no usable Expires in {c:?}"));
    let week = now_unix() + 7 * 86_400;
    assert!(expires.abs_diff(week) <= 120, "Expires is seven days out: {c:?}");
    assert_eq!(c.attribute("Path"), Some("/"), "{c:?}");
    assert_eq!(
        c.attribute("Max-Age"),
        None,
        "ALB uses Expires, not Max-Age: {c:?}"
    );
    if cors {
        assert_eq!(c.attribute("SameSite"), Some("None"), "{c:?}");
        assert_eq!(c.attribute("Secure"), Some(""), "{c:?}");
    } else {
        assert_eq!(c.attribute("SameSite"), None, "{c:?}");
        assert_eq!(c.attribute("Secure"), None, "{c:?}");
    }
}

/// `GET path` on `web` with a `Cookie` field (none when empty); must be answered 200.
async fn get_with(client: &Client, alb: &HostAlb, path: &str, cookies: &str) -> HttpResponse {
    let headers: Vec<(&str, &str)> = if cookies.is_empty() {
        Vec::new()
    } else {
        vec![("cookie", cookies)]
    };
    let resp = client
        .request("GET", &alb.url("web", path), &headers, Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("GET {path} with {cookies:?}: {e}"));
    assert_eq!(resp.status, 200, "GET {path} with {cookies:?}: {resp:?}");
    resp
}

fn backend_of(resp: &HttpResponse) -> String {
    resp.backend()
        .unwrap_or_else(|| panic!("no x-backend in {resp:?}"))
        .to_owned()
}

/// A listener `web` and group `app` with lb_cookie stickiness for `duration` seconds.
fn lb_config(targets: &[SocketAddr], duration: u32, checks: &str) -> String {
    format!(
        "{}{}",
        web("app", ""),
        group(
            "app",
            targets,
            &format!(
                "deregistration_delay_seconds = 0.2\n\
                 stickiness = {{ type = \"lb_cookie\", duration_seconds = {duration} }}\n{checks}"
            )
        )
    )
}

const NO_CHECKS: &str = "health_check = { enabled = false }";

/// `value` with one character in the middle changed (still base64url).
fn tampered(value: &str) -> String {
    let mut bytes = value.as_bytes().to_vec();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_cookie_sets_awsalb_and_its_cors_twin_and_sticks_while_renewed() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let alb = start(&lb_config(&[a.addr(), b.addr()], 60, NO_CHECKS)).await;
    let client = Client::new();

    let first = get_with(&client, &alb, "/s", "").await;
    let target = backend_of(&first);
    let plain = cookie(&first, "AWSALB");
    let cors = cookie(&first, "AWSALBCORS");
    assert_eq!(plain.value, cors.value, "the twins carry the same value");
    assert!(!plain.value.is_empty());
    assert_alb_cookie(&plain, false);
    assert_alb_cookie(&cors, true);
    assert!(
        set_cookies(&first)
            .iter()
            .all(|c| !c.name.starts_with("AWSALBAPP")),
        "{first:?}"
    );

    // Every later request carrying the latest cookie goes to the same target, and every
    // response renews the cookie.
    let mut current = plain.value;
    for i in 0..10 {
        let resp = get_with(&client, &alb, &format!("/s/{i}"), &format!("AWSALB={current}")).await;
        assert_eq!(backend_of(&resp), target, "request {i} with the cookie");
        let renewed = cookie(&resp, "AWSALB");
        assert_eq!(cookie(&resp, "AWSALBCORS").value, renewed.value);
        assert_alb_cookie(&renewed, false);
        current = renewed.value;
    }
    // Among other cookies, in any position.
    let resp = get_with(
        &client,
        &alb,
        "/s/mixed",
        &format!("theme=dark; AWSALB={current}; x=1"),
    )
    .await;
    assert_eq!(backend_of(&resp), target);

    // Without the cookie, round robin alternates.
    let picks: Vec<String> = {
        let mut out = Vec::new();
        for i in 0..4 {
            out.push(backend_of(&get_with(&client, &alb, &format!("/n/{i}"), "").await));
        }
        out
    };
    assert!(picks.iter().any(|p| *p != target), "{picks:?}");
    assert_eq!(metric(&alb, "hostalb_non_sticky_requests_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_forged_lb_cookie_gets_a_normal_pick_and_a_fresh_cookie() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let alb = start(&lb_config(&[a.addr(), b.addr()], 60, NO_CHECKS)).await;
    let client = Client::new();
    let first = get_with(&client, &alb, "/s", "").await;
    let valid = cookie(&first, "AWSALB").value;

    let bad = [
        tampered(&valid),
        format!("{valid}AA"),
        valid[..valid.len() - 4].to_owned(),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "not a cookie!".to_owned(),
        String::new(),
    ];
    let mut sent = 0.0;
    for value in &bad {
        let mut seen = Vec::new();
        for i in 0..4 {
            let resp = get_with(&client, &alb, &format!("/t/{i}"), &format!("AWSALB={value}")).await;
            sent += 1.0;
            seen.push(backend_of(&resp));
            // The fresh cookie is valid: it sticks.
            let fresh = cookie(&resp, "AWSALB").value;
            assert_ne!(&fresh, value);
            let again = get_with(&client, &alb, "/t/again", &format!("AWSALB={fresh}")).await;
            assert_eq!(backend_of(&again), backend_of(&resp), "the fresh cookie sticks");
        }
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen.len(),
            2,
            "a bad cookie {value:?} steers nothing: both targets are picked in turn"
        );
    }
    assert_eq!(metric(&alb, "hostalb_non_sticky_requests_total").await, sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_naming_an_unhealthy_target_gets_a_new_target_and_cookie() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let alb = start(&lb_config(&[a.addr(), b.addr()], 60, &fast_checks(2, 2))).await;
    wait_state(&alb, "app", a.addr(), "healthy").await;
    wait_state(&alb, "app", b.addr(), "healthy").await;
    let client = Client::new();

    let first = get_with(&client, &alb, "/s", "").await;
    let stuck = backend_of(&first);
    let old = cookie(&first, "AWSALB").value;
    let (failing, other) = if stuck == "a" { (&a, &b) } else { (&b, &a) };
    failing.set_health_status(503);
    wait_state(&alb, "app", failing.addr(), "unhealthy").await;

    let before = metric(&alb, "hostalb_non_sticky_requests_total").await;
    let resp = get_with(&client, &alb, "/s/1", &format!("AWSALB={old}")).await;
    assert_eq!(
        backend_of(&resp),
        other.name(),
        "a new pick among the healthy targets"
    );
    let fresh = cookie(&resp, "AWSALB").value;
    assert_ne!(fresh, old);
    assert_eq!(
        metric(&alb, "hostalb_non_sticky_requests_total").await,
        before + 1.0
    );
    for i in 0..5 {
        let resp = get_with(&client, &alb, &format!("/s/f{i}"), &format!("AWSALB={fresh}")).await;
        assert_eq!(
            backend_of(&resp),
            other.name(),
            "the fresh cookie sticks to the new target"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_naming_a_removed_target_gets_a_new_target_and_cookie() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let alb = start(&lb_config(&[a.addr(), b.addr()], 60, NO_CHECKS)).await;
    let client = Client::new();
    let first = get_with(&client, &alb, "/s", "").await;
    let stuck = backend_of(&first);
    let old = cookie(&first, "AWSALB").value;
    let (removed, kept) = if stuck == "a" { (&a, &b) } else { (&b, &a) };

    reload(&alb, &lb_config(&[kept.addr()], 60, NO_CHECKS)).await;
    let before = metric(&alb, "hostalb_non_sticky_requests_total").await;
    for i in 0..3 {
        let resp = get_with(&client, &alb, &format!("/s/{i}"), &format!("AWSALB={old}")).await;
        assert_eq!(backend_of(&resp), kept.name());
        assert_ne!(cookie(&resp, "AWSALB").value, old, "a fresh cookie");
    }
    assert_eq!(
        metric(&alb, "hostalb_non_sticky_requests_total").await,
        before + 3.0
    );
    assert_eq!(
        removed
            .requests()
            .iter()
            .filter(|r| r.path().starts_with("/s/"))
            .count(),
        0,
        "the removed target got none of them"
    );
}

/// A raw target answering every request with its name and `Set-Cookie: SESSION=...`.
async fn session_target(name: &str) -> RawBackend {
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nx-backend: {name}\r\n\
         Set-Cookie: SESSION=from-{name}; Path=/; HttpOnly\r\n\r\n{name}",
        name.len()
    );
    RawBackend::start(RawBehaviour::Respond(answer.into_bytes())).await
}

/// `/app/*` goes to group `sess` (app_cookie on SESSION) of `r1` and `r2`; the default
/// action to `plain` (app_cookie too, whose target never sets SESSION); lb_cookie group
/// `lb` of `a` and `b` under `/lb/*`.
fn app_config(r: [SocketAddr; 2], plain: SocketAddr, lb: [SocketAddr; 2], duration: u32) -> String {
    let sticky = |kind: &str| {
        let name = if kind == "app_cookie" {
            ", cookie_name = \"SESSION\""
        } else {
            ""
        };
        format!("stickiness = {{ type = \"{kind}\"{name}, duration_seconds = {duration} }}\n{NO_CHECKS}")
    };
    format!(
        "{}{}{}{}",
        web(
            "plain",
            &format!("{}{}", rule(10, "app", "sess"), rule(20, "lb", "lb"))
        ),
        group("sess", &r, &sticky("app_cookie")),
        group("plain", &[plain], &sticky("app_cookie")),
        group("lb", &lb, &sticky("lb_cookie")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_cookie_stickiness_begins_once_the_application_sets_its_cookie() {
    let r1 = session_target("r1").await;
    let r2 = session_target("r2").await;
    let plain = Backend::start("plain").await;
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let alb = start(&app_config(
        [r1.addr(), r2.addr()],
        plain.addr(),
        [a.addr(), b.addr()],
        60,
    ))
    .await;
    let client = Client::new();

    // The application does not set its cookie: no stickiness cookie either.
    let resp = get_with(&client, &alb, "/nothing", "").await;
    assert_eq!(backend_of(&resp), "plain");
    assert!(set_cookies(&resp).is_empty(), "{resp:?}");

    // It does: its cookie passes untouched and AWSALBAPP-0 (no CORS twin) names the target.
    let first = get_with(&client, &alb, "/app/1", "").await;
    let target = backend_of(&first);
    let fields = first.header_all("set-cookie");
    assert!(
        fields.contains(&format!("SESSION=from-{target}; Path=/; HttpOnly").as_str()),
        "the application's cookie is passed untouched: {fields:?}"
    );
    let app = cookie(&first, "AWSALBAPP-0");
    assert_alb_cookie(&app, false);
    assert!(
        set_cookies(&first)
            .iter()
            .all(|c| c.name == "SESSION" || c.name == "AWSALBAPP-0"),
        "no AWSALB, AWSALBCORS or AWSALBAPP-0 twin: {fields:?}"
    );

    // Later requests with AWSALBAPP-0 stick; each response renews it.
    let mut current = app.value;
    for i in 0..8 {
        let cookies = format!("SESSION=from-{target}; AWSALBAPP-0={current}");
        let resp = get_with(&client, &alb, &format!("/app/s{i}"), &cookies).await;
        assert_eq!(backend_of(&resp), target, "request {i} sticks");
        current = cookie(&resp, "AWSALBAPP-0").value;
    }
    let received = if target == "r1" { &r1 } else { &r2 };
    let bytes: Vec<u8> = received.received().concat();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains(&format!("SESSION=from-{target}")),
        "the application's cookie reaches the target: {text}"
    );

    // The application's cookie alone, or a tampered AWSALBAPP-0, does not stick.
    for cookies in [
        format!("SESSION=from-{target}"),
        format!("SESSION=from-{target}; AWSALBAPP-0={}", tampered(&current)),
    ] {
        let mut seen = Vec::new();
        for i in 0..4 {
            seen.push(backend_of(
                &get_with(&client, &alb, &format!("/app/n{i}"), &cookies).await,
            ));
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 2, "{cookies}: normal picks, in turn");
    }

    // An lb_cookie value is not an app cookie, nor the other way round.
    let lb = get_with(&client, &alb, "/lb/1", "").await;
    let lb_value = cookie(&lb, "AWSALB").value;
    let mut seen = Vec::new();
    for i in 0..4 {
        let resp = get_with(
            &client,
            &alb,
            &format!("/app/x{i}"),
            &format!("AWSALBAPP-0={lb_value}"),
        )
        .await;
        seen.push(backend_of(&resp));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        2,
        "an AWSALB value used as AWSALBAPP-0 steers nothing"
    );
    let mut seen = Vec::new();
    for i in 0..4 {
        let resp = get_with(&client, &alb, &format!("/lb/x{i}"), &format!("AWSALB={current}")).await;
        seen.push(backend_of(&resp));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        2,
        "an AWSALBAPP-0 value used as AWSALB steers nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stickiness_ends_after_its_duration_unless_renewed() {
    let r1 = session_target("r1").await;
    let r2 = session_target("r2").await;
    let plain = Backend::start("plain").await;
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let alb = start(&app_config(
        [r1.addr(), r2.addr()],
        plain.addr(),
        [a.addr(), b.addr()],
        2,
    ))
    .await;
    let client = Client::new();

    let issued = Instant::now();
    let lb_first = get_with(&client, &alb, "/lb/0", "").await;
    let app_first = get_with(&client, &alb, "/app/0", "").await;
    let lb_target = backend_of(&lb_first);
    let app_target = backend_of(&app_first);
    let lb_old = format!("AWSALB={}", cookie(&lb_first, "AWSALB").value);
    let app_old = format!("AWSALBAPP-0={}", cookie(&app_first, "AWSALBAPP-0").value);
    let mut lb_renewed = lb_old.clone();

    // Two requests with an expired cookie are two normal picks: round robin gives them to
    // both targets. With a valid cookie both go to the cookie's target.
    async fn sticks(client: &Client, alb: &HostAlb, prefix: &str, cookies: &str, target: &str) -> bool {
        let mut stuck = true;
        for i in 0..2 {
            let resp = get_with(client, alb, &format!("/{prefix}/e{i}"), cookies).await;
            stuck &= backend_of(&resp) == target;
        }
        stuck
    }
    assert!(sticks(&client, &alb, "lb", &lb_old, &lb_target).await);
    assert!(sticks(&client, &alb, "app", &app_old, &app_target).await);

    // Bounded: each round takes a few requests and a short pause.
    let (mut lb_expired, mut app_expired) = (None, None);
    let patience = scaled(Duration::from_secs(10));
    while issued.elapsed() < patience {
        // The chain renewed on every response keeps sticking throughout.
        let resp = get_with(&client, &alb, "/lb/renew", &lb_renewed).await;
        assert_eq!(
            backend_of(&resp),
            lb_target,
            "a cookie renewed on each response sticks past the duration ({:?} in)",
            issued.elapsed()
        );
        lb_renewed = format!("AWSALB={}", cookie(&resp, "AWSALB").value);
        if lb_expired.is_none() && !sticks(&client, &alb, "lb", &lb_old, &lb_target).await {
            lb_expired = Some(issued.elapsed());
        }
        if app_expired.is_none() && !sticks(&client, &alb, "app", &app_old, &app_target).await {
            app_expired = Some(issued.elapsed());
        }
        if lb_expired.is_some() && app_expired.is_some() && issued.elapsed() > Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lb_expired = lb_expired.expect("the AWSALB cookie should stop sticking after 2 s");
    let app_expired = app_expired.expect("the AWSALBAPP-0 cookie should stop sticking after 2 s");
    // Issued for 2 s (whole seconds): it cannot lapse before at least 1 s.
    assert!(
        lb_expired >= Duration::from_millis(900) && app_expired >= Duration::from_millis(900),
        "cookies lapsed early: AWSALB after {lb_expired:?}, AWSALBAPP-0 after {app_expired:?}"
    );
    assert!(
        issued.elapsed() > Duration::from_secs(3),
        "the renewed cookie was checked past its first duration"
    );
    assert!(metric(&alb, "hostalb_non_sticky_requests_total").await >= 2.0);
}
