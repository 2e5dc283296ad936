//! The dashboard as HTML, rendered on the server: the page (`GET /`) is complete without
//! script, and its script fetches the same rendering of the view (`GET /dashboard/view`)
//! every 2 s. Every text that comes from configuration, Docker or the network is escaped.

use std::fmt::Write as _;

use crate::admin::dashboard::{
    ConfigView, GroupView, Level, ListenerView, TargetView, Traffic, View, Warning, short_id,
};
use crate::control::DiscoveryReport;

/// The page shell: styles, header and the script that refreshes the view.
const SHELL: &str = include_str!("dashboard.html");

/// The whole page.
pub(crate) fn page(view: &View) -> String {
    let body = fragment(view);
    let mut out = String::with_capacity(SHELL.len() + body.len());
    let mut rest = SHELL;
    for (marker, text) in [
        ("<!--LB-->", esc(&view.load_balancer.name)),
        ("<!--RENDERED-->", esc(&view.generated_at)),
        ("<!--VIEW-->", body),
    ] {
        if let Some((before, after)) = rest.split_once(marker) {
            out.push_str(before);
            out.push_str(&text);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The view alone (what `#view` holds).
pub(crate) fn fragment(v: &View) -> String {
    let mut h = String::with_capacity(16 * 1024);
    summary(&mut h, v);
    notices(&mut h, &v.warnings);
    let _ = write!(
        h,
        "<h2>Listeners and rules<span class=\"sub\">traffic shown is the target group's</span></h2>"
    );
    for l in &v.listeners {
        listener(&mut h, l, &v.target_groups);
    }
    let _ = write!(
        h,
        "<h2>Target groups and targets<span class=\"sub\">rates over the last 10 s, latency percentiles over the last minute</span></h2>"
    );
    if v.target_groups.is_empty() {
        h.push_str("<p class=\"muted\">No target group.</p>");
    }
    for g in &v.target_groups {
        group(&mut h, g);
    }
    discovery(&mut h, &v.discovery);
    configuration(&mut h, &v.configuration);
    h
}

fn summary(h: &mut String, v: &View) {
    let lb = &v.load_balancer;
    h.push_str("<section class=\"cards\">");
    let _ = write!(
        h,
        "<div class=\"card\" data-field=\"lb-requests\"><div class=\"label\">Requests</div><div class=\"value\">{}<small>/s</small></div>{}<div class=\"note\"><span data-field=\"lb-requests-total\">{}</span> since start</div></div>",
        rate(lb.requests_per_second),
        spark(&lb.request_rates),
        lb.requests_total
    );
    let _ = write!(
        h,
        "<div class=\"card\"><div class=\"label\">Connections</div><div class=\"value\" data-field=\"lb-active-connections\">{}</div><div class=\"note\">{}/s new</div></div>",
        lb.active_connections,
        rate(lb.new_connections_per_second)
    );
    let _ = write!(
        h,
        "<div class=\"card\"><div class=\"label\">ELB 4xx / 5xx</div><div class=\"value\"><span class=\"{}\">{}</span> / <span class=\"{}\">{}</span><small>/s</small></div><div class=\"note\"><span data-field=\"lb-elb-4xx-total\">{}</span> / <span data-field=\"lb-elb-5xx-total\">{}</span> since start</div></div>",
        warn_if(lb.elb_4xx_per_second > 0.0),
        rate(lb.elb_4xx_per_second),
        bad_if(lb.elb_5xx_per_second > 0.0),
        rate(lb.elb_5xx_per_second),
        lb.elb_4xx_total,
        lb.elb_5xx_total
    );
    let _ = write!(
        h,
        "<div class=\"card\"><div class=\"label\">Target 4xx / 5xx</div><div class=\"value\"><span class=\"{}\">{}</span> / <span class=\"{}\">{}</span><small>/s</small></div><div class=\"note\"><span data-field=\"lb-target-4xx-total\">{}</span> / <span data-field=\"lb-target-5xx-total\">{}</span> since start</div></div>",
        warn_if(lb.target_4xx_per_second > 0.0),
        rate(lb.target_4xx_per_second),
        bad_if(lb.target_5xx_per_second > 0.0),
        rate(lb.target_5xx_per_second),
        lb.target_4xx_total,
        lb.target_5xx_total
    );
    let _ = write!(
        h,
        "<div class=\"card\"><div class=\"label\">Hosts</div><div class=\"value\"><span class=\"ok\" data-field=\"lb-healthy\">{}</span> / <span class=\"{}\" data-field=\"lb-unhealthy\">{}</span></div><div class=\"note\">healthy / unhealthy</div></div>",
        lb.healthy_hosts,
        bad_if(lb.unhealthy_hosts > 0),
        lb.unhealthy_hosts
    );
    let _ = write!(
        h,
        "<div class=\"card\"><div class=\"label\">Processed</div><div class=\"value\">{}</div><div class=\"note\">{:.3} LCU (ALB's estimate)</div></div>",
        bytes_rate(lb.processed_bytes_per_second),
        lb.consumed_lcus
    );
    let c = &v.configuration;
    let _ = write!(
        h,
        "<div class=\"card\"><div class=\"label\">Configuration</div><div class=\"value {}\">{}</div><div class=\"note\">{} reloads · up {}</div></div>",
        bad_if(c.last_reload_failed),
        match c.generation {
            Some(g) => format!("#{g}"),
            None => "start".to_owned(),
        },
        c.reloads,
        age(Some(v.uptime_seconds))
    );
    h.push_str("</section>");
}

fn notices(h: &mut String, warnings: &[Warning]) {
    h.push_str("<ul class=\"notices\" data-field=\"warnings\">");
    if warnings.is_empty() {
        h.push_str("<li class=\"none\">No warnings: every group has a healthy target, discovery and configuration are fine.</li>");
    }
    for w in warnings {
        let class = match w.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        let _ = write!(h, "<li class=\"{class}\">{}</li>", esc(&w.text));
    }
    h.push_str("</ul>");
}

fn listener(h: &mut String, l: &ListenerView, groups: &[GroupView]) {
    let _ = write!(
        h,
        "<div class=\"panel\" data-listener=\"{}\"><div class=\"head\"><span class=\"name\">Listener {}</span><span class=\"meta\">{} on <code>{}</code></span></div>",
        esc(&l.name),
        esc(&l.name),
        esc(&l.protocol),
        esc(&l.address)
    );
    h.push_str("<table><tr><th>Priority</th><th>Conditions</th><th>Action</th><th class=\"num\">Req/s</th><th class=\"num\">4xx/s</th><th class=\"num\">5xx/s</th><th class=\"num\">p99</th></tr>");
    for r in &l.rules {
        let _ = write!(
            h,
            "<tr data-rule=\"{}\"><td>{}</td><td>",
            esc(&r.priority),
            esc(&r.priority)
        );
        if r.conditions.is_empty() {
            h.push_str("<span class=\"muted\">every request no rule took</span>");
        }
        for c in &r.conditions {
            let _ = write!(h, "<code class=\"cond\">{}</code>", esc(c));
        }
        let _ = write!(h, "</td><td><code>{}</code></td>", esc(&r.action));
        let traffic: Vec<&Traffic> = r
            .target_groups
            .iter()
            .filter_map(|name| groups.iter().find(|g| &g.name == name))
            .map(|g| &g.traffic)
            .collect();
        if traffic.is_empty() {
            h.push_str("<td class=\"num muted\">–</td><td class=\"num muted\">–</td><td class=\"num muted\">–</td><td class=\"num muted\">–</td>");
        } else {
            let sum = |f: fn(&Traffic) -> f64| traffic.iter().map(|t| f(t)).sum::<f64>();
            let p99 = traffic
                .iter()
                .filter_map(|t| t.p99)
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
            let _ = write!(
                h,
                "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num {}\">{}</td><td class=\"num\">{}</td>",
                rate(sum(|t| t.requests_per_second)),
                rate(sum(|t| t.http_4xx_per_second)),
                bad_if(sum(|t| t.http_5xx_per_second) > 0.0),
                rate(sum(|t| t.http_5xx_per_second)),
                seconds(p99)
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table></div>");
}

fn group(h: &mut String, g: &GroupView) {
    let t = &g.traffic;
    let _ = write!(
        h,
        "<div class=\"panel\" data-group=\"{}\"><div class=\"head\"><span class=\"name\">{}</span>",
        esc(&g.name),
        esc(&g.name)
    );
    if !g.in_use {
        h.push_str("<span class=\"badge unused\">not in use</span>");
    }
    if g.fail_open {
        h.push_str("<span class=\"badge failopen\">fail-open</span>");
    }
    let _ = write!(
        h,
        "<span class=\"meta\">{} · {} · health check {} · <code>{}</code></span></div>",
        g.protocol,
        g.algorithm,
        esc(&g.health_check),
        esc(&g.dimension)
    );
    let _ = write!(
        h,
        "<div class=\"stats\"><div><span>Req/s</span><b data-field=\"group-rps\">{}</b></div><div><span>Requests</span><b data-field=\"group-requests-total\">{}</b></div><div><span>4xx/s</span><b class=\"{}\">{}</b></div><div><span>5xx/s</span><b class=\"{}\">{}</b></div><div><span>p50</span><b data-field=\"group-p50\">{}</b></div><div><span>p90</span><b>{}</b></div><div><span>p99</span><b data-field=\"group-p99\">{}</b></div><div><span>Healthy</span><b class=\"ok\">{}</b></div><div><span>Unhealthy</span><b class=\"{}\">{}</b></div><div class=\"sparkbox\"><span>Req/s, last minute</span>{}</div></div>",
        rate(t.requests_per_second),
        t.requests_total,
        warn_if(t.http_4xx_per_second > 0.0),
        rate(t.http_4xx_per_second),
        bad_if(t.http_5xx_per_second > 0.0),
        rate(t.http_5xx_per_second),
        seconds(t.p50),
        seconds(t.p90),
        seconds(t.p99),
        g.healthy,
        bad_if(g.unhealthy > 0),
        g.unhealthy,
        spark(&g.request_rates)
    );
    if g.targets.is_empty() {
        h.push_str(
            "<p class=\"muted\" style=\"padding: 8px 14px; margin: 0\">No registered target.</p></div>",
        );
        return;
    }
    h.push_str("<table><tr><th>Target</th><th>Container</th><th>Health</th><th>Since</th><th class=\"num\">Req/s</th><th class=\"num\">Requests</th><th class=\"num\">4xx</th><th class=\"num\">5xx</th><th class=\"num\">p50</th><th class=\"num\">p99</th><th class=\"num\">In flight</th><th class=\"num\">Conn. errors</th></tr>");
    for target in &g.targets {
        target_row(h, target);
    }
    h.push_str("</table></div>");
}

fn target_row(h: &mut String, t: &TargetView) {
    let tr = &t.traffic;
    let _ = write!(
        h,
        "<tr data-target=\"{}\"><td><code>{}</code></td><td>",
        esc(&t.address),
        esc(&t.address)
    );
    match (&t.container_name, &t.container_id) {
        (Some(name), id) => {
            let _ = write!(
                h,
                "{}<div class=\"reason mono\">{}</div>",
                esc(name.trim_start_matches('/')),
                esc(id.as_deref().map(short_id).unwrap_or(""))
            );
        }
        (None, Some(id)) => {
            let _ = write!(h, "<code>{}</code>", esc(short_id(id)));
        }
        (None, None) => h.push_str("<span class=\"muted\">static</span>"),
    }
    let _ = write!(
        h,
        "</td><td><span class=\"badge {}\" data-field=\"state\">{}</span>",
        t.state, t.state
    );
    if let Some(reason) = t.reason {
        let _ = write!(
            h,
            "<div class=\"reason\" title=\"{}\">{}</div>",
            esc(t.description.as_deref().unwrap_or("")),
            esc(reason)
        );
        if let Some(d) = &t.description {
            let _ = write!(h, "<div class=\"reason\">{}</div>", esc(d));
        }
    }
    let since = if t.since_start {
        format!(
            "<span title=\"{}\">≥ {} <span class=\"muted\">(since start)</span></span>",
            esc(&t.since),
            age(Some(t.since_seconds))
        )
    } else if t.since_seconds == 0 {
        format!("<span title=\"{}\">just now</span>", esc(&t.since))
    } else {
        format!(
            "<span title=\"{}\">{} ago</span>",
            esc(&t.since),
            age(Some(t.since_seconds))
        )
    };
    let _ = write!(
        h,
        "</td><td>{since}</td><td class=\"num\" data-field=\"rps\">{}</td><td class=\"num\" data-field=\"requests-total\">{}</td><td class=\"num {}\" data-field=\"4xx-total\">{}</td><td class=\"num {}\" data-field=\"5xx-total\">{}</td><td class=\"num\" data-field=\"p50\">{}</td><td class=\"num\" data-field=\"p99\">{}</td><td class=\"num\">{}</td><td class=\"num {}\">{}</td></tr>",
        rate(tr.requests_per_second),
        tr.requests_total,
        warn_if(tr.http_4xx_total > 0),
        tr.http_4xx_total,
        bad_if(tr.http_5xx_total > 0),
        tr.http_5xx_total,
        seconds(tr.p50),
        seconds(tr.p99),
        t.in_flight,
        bad_if(tr.connection_errors_total > 0),
        tr.connection_errors_total
    );
}

fn discovery(h: &mut String, d: &DiscoveryReport) {
    h.push_str("<h2>Docker discovery</h2><div class=\"panel\" data-field=\"discovery\">");
    if !d.enabled {
        h.push_str("<div class=\"head\"><span class=\"badge off\">off</span><span class=\"meta\">no target group selects Docker containers</span></div></div>");
        return;
    }
    let (class, state) = if d.connected {
        ("connected", "connected")
    } else {
        ("disconnected", "disconnected")
    };
    let _ = write!(
        h,
        "<div class=\"head\"><span class=\"badge {class}\" data-field=\"docker-state\">{state}</span><span class=\"meta\"><code>{}</code></span></div><dl class=\"kv\"><dt>Containers selected</dt><dd>{}</dd><dt>Full syncs</dt><dd>{}</dd><dt>Connects</dt><dd>{}</dd><dt>Events</dt><dd>{}</dd><dt>Last error</dt><dd>{}</dd></dl>",
        esc(&d.endpoint),
        d.containers,
        d.syncs,
        d.connects,
        d.events,
        d.last_error.as_deref().map(esc).unwrap_or_else(|| "none".into())
    );
    if !d.not_registered.is_empty() {
        h.push_str("<table><tr><th>Container not registered</th><th>Target group</th><th>Why</th></tr>");
        for n in &d.not_registered {
            let _ = write!(
                h,
                "<tr><td>{} <span class=\"reason mono\">{}</span></td><td>{}</td><td>{}</td></tr>",
                esc(&n.container_name),
                esc(short_id(&n.container_id)),
                esc(&n.target_group),
                esc(&n.reason)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</div>");
}

fn configuration(h: &mut String, c: &ConfigView) {
    let _ = write!(
        h,
        "<h2 id=\"configuration\">Configuration</h2><div class=\"panel\" data-field=\"configuration\"><dl class=\"kv\"><dt>Source</dt><dd><code>{}</code></dd><dt>Generation</dt><dd data-field=\"generation\">{} <span class=\"muted\">(snapshot {})</span></dd><dt>Applied</dt><dd>{} {}</dd><dt>Reloads</dt><dd>{} applied, {} refused</dd><dt>Warnings</dt><dd>{}</dd></dl>",
        esc(&c.source),
        match c.generation {
            Some(g) => g.to_string(),
            None => "start".to_owned(),
        },
        c.snapshot_generation,
        c.applied_at.as_deref().map(esc).unwrap_or_else(|| "–".into()),
        if c.applied_by_reload {
            "by a reload"
        } else {
            "at start"
        },
        c.reloads,
        c.reload_failures,
        c.warnings.len()
    );
    if let (Some(at), Some(message)) = (&c.last_failure_at, &c.last_failure) {
        let _ = write!(
            h,
            "<div class=\"head\"><span class=\"badge {}\">last refused reload</span><span class=\"meta\">{}</span></div><pre class=\"problems\" data-field=\"last-failure\">{}</pre>",
            if c.last_reload_failed { "unhealthy" } else { "idle" },
            esc(at),
            esc(message)
        );
    }
    if !c.warnings.is_empty() {
        let _ = write!(
            h,
            "<div class=\"head\"><span class=\"badge initial\">warnings</span><span class=\"meta\">of the configuration serving</span></div><pre class=\"problems\">{}</pre>",
            esc(&c.warnings.join("\n"))
        );
    }
    h.push_str("</div>");
}

/// An inline chart of `values` (oldest first), scaled to its maximum.
fn spark(values: &[f64]) -> String {
    const W: f64 = 60.0;
    const H: f64 = 20.0;
    if values.len() < 2 {
        return "<svg class=\"spark\" viewBox=\"0 0 60 20\" preserveAspectRatio=\"none\" aria-hidden=\"true\"></svg>".into();
    }
    let max = values.iter().copied().fold(0.0, f64::max);
    let step = W / (values.len() - 1) as f64;
    let mut line = String::new();
    for (i, v) in values.iter().enumerate() {
        let y = if max > 0.0 {
            H - (v / max) * (H - 1.0)
        } else {
            H - 0.5
        };
        let _ = write!(
            line,
            "{}{:.2},{:.2}",
            if i == 0 { "M" } else { " L" },
            i as f64 * step,
            y
        );
    }
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 60 20\" preserveAspectRatio=\"none\" aria-hidden=\"true\"><path class=\"area\" d=\"{line} L{W},{H} L0,{H} Z\"/><path class=\"line\" d=\"{line}\"/></svg>"
    )
}

fn bad_if(cond: bool) -> &'static str {
    if cond { "bad" } else { "" }
}

fn warn_if(cond: bool) -> &'static str {
    if cond { "warn" } else { "" }
}

/// A rate per second: `0`, `3.4`, `120`, `12.5k`.
fn rate(r: f64) -> String {
    if r <= 0.0 {
        "0".into()
    } else if r < 10.0 {
        format!("{r:.1}")
    } else if r < 10_000.0 {
        format!("{r:.0}")
    } else {
        format!("{:.1}k", r / 1000.0)
    }
}

/// A duration in seconds as milliseconds or seconds; `–` when unknown.
fn seconds(s: Option<f64>) -> String {
    match s {
        None => "–".into(),
        Some(s) if s < 0.01 => format!("{:.2} ms", s * 1e3),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1e3),
        Some(s) => format!("{s:.2} s"),
    }
}

fn bytes_rate(b: f64) -> String {
    if b < 1e3 {
        format!("{b:.0} B/s")
    } else if b < 1e6 {
        format!("{:.1} kB/s", b / 1e3)
    } else {
        format!("{:.1} MB/s", b / 1e6)
    }
}

/// An age: `12s`, `4m 03s`, `2h 05m`, `3d 4h`.
fn age(secs: Option<u64>) -> String {
    let Some(s) = secs else {
        return "–".into();
    };
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_outside_is_escaped() {
        assert_eq!(esc("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn numbers_read_at_a_glance() {
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(2.345), "2.3");
        assert_eq!(rate(123.4), "123");
        assert_eq!(rate(12_345.0), "12.3k");
        assert_eq!(seconds(None), "–");
        assert_eq!(seconds(Some(0.000_43)), "0.43 ms");
        assert_eq!(seconds(Some(0.120)), "120 ms");
        assert_eq!(seconds(Some(2.5)), "2.50 s");
        assert_eq!(age(Some(59)), "59s");
        assert_eq!(age(Some(243)), "4m 03s");
        assert_eq!(age(Some(7_500)), "2h 05m");
        assert_eq!(age(Some(273_600)), "3d 4h");
        assert_eq!(bytes_rate(1_500_000.0), "1.5 MB/s");
    }

    fn view_with(target: TargetView, discovery: DiscoveryReport) -> View {
        use crate::admin::dashboard::{LoadBalancerView, RuleView};
        View {
            generated_at: "2026-12-01T00:00:00Z".into(),
            uptime_seconds: 75,
            load_balancer: LoadBalancerView {
                name: "app/hostalb/0123456789abcdef".into(),
                requests_per_second: 12.5,
                requests_total: 1_000,
                active_connections: 3,
                new_connections_per_second: 0.5,
                processed_bytes_per_second: 2_048.0,
                elb_4xx_per_second: 0.0,
                elb_5xx_per_second: 0.1,
                elb_4xx_total: 0,
                elb_5xx_total: 7,
                target_4xx_per_second: 0.0,
                target_5xx_per_second: 0.0,
                target_4xx_total: 2,
                target_5xx_total: 0,
                healthy_hosts: 1,
                unhealthy_hosts: 0,
                consumed_lcus: 0.01,
                request_rates: vec![0.0, 10.0, 12.5],
            },
            warnings: vec![Warning {
                level: Level::Error,
                text: "Docker: not connected to <x>".into(),
            }],
            listeners: vec![ListenerView {
                name: "web".into(),
                protocol: "HTTP".into(),
                address: "127.0.0.1:8080".into(),
                rules: vec![RuleView {
                    priority: "default".into(),
                    conditions: Vec::new(),
                    action: "forward app".into(),
                    target_groups: vec!["app".into()],
                }],
            }],
            target_groups: vec![GroupView {
                name: "app".into(),
                dimension: "targetgroup/app/0123456789abcdef".into(),
                protocol: "HTTP",
                algorithm: "round_robin",
                health_check: "HTTP / every 30s".into(),
                in_use: true,
                fail_open: false,
                healthy: 1,
                unhealthy: 0,
                traffic: target.traffic.clone(),
                request_rates: Vec::new(),
                targets: vec![target],
            }],
            discovery,
            configuration: ConfigView {
                source: "/etc/hostalb.toml".into(),
                generation: None,
                snapshot_generation: 4,
                applied_at: Some("2026-12-01T00:00:00Z".into()),
                applied_by_reload: false,
                reloads: 0,
                reload_failures: 0,
                warnings: Vec::new(),
                last_failure_at: None,
                last_failure: None,
                last_reload_failed: false,
            },
        }
    }

    #[test]
    fn targets_show_their_container_and_docker_its_state_escaped() {
        let target = TargetView {
            address: "172.17.0.1:49153".into(),
            container_name: Some("/web-<1>".into()),
            container_id: Some("0123456789abcdef0123".into()),
            state: "healthy",
            reason: None,
            description: None,
            since: "2026-11-30T23:58:45Z".into(),
            since_seconds: 75,
            since_start: false,
            in_flight: 2,
            traffic: Traffic {
                requests_total: 1_000,
                p50: Some(0.0007),
                ..Traffic::default()
            },
        };
        let discovery = DiscoveryReport {
            enabled: true,
            endpoint: "unix:///var/run/docker.sock".into(),
            connected: false,
            last_error: Some("connection refused <eof>".into()),
            ..DiscoveryReport::default()
        };
        let page = page(&view_with(target, discovery));
        assert!(
            page.contains("web-&lt;1&gt;<div class=\"reason mono\">0123456789ab</div>"),
            "{page}"
        );
        assert!(!page.contains("<1>") && !page.contains("<eof>") && !page.contains("<x>"));
        assert!(page.contains("data-field=\"docker-state\">disconnected</span>"));
        assert!(page.contains("connection refused &lt;eof&gt;"));
        assert!(page.contains("<span title=\"2026-11-30T23:58:45Z\">1m 15s ago</span>"));
        assert!(page.contains("data-field=\"p50\">0.70 ms<"));
        assert!(page.contains("<li class=\"error\">Docker: not connected to &lt;x&gt;</li>"));
        // The shell's markers are all replaced, the fragment sits in #view.
        assert!(!page.contains("<!--"), "{page}");
        assert!(page.contains("<main id=\"view\"><section class=\"cards\">"));
    }

    #[test]
    fn a_sparkline_scales_to_its_maximum() {
        let svg = spark(&[0.0, 5.0, 10.0]);
        assert!(svg.contains("M0.00,20.00 L30.00,10.50 L60.00,1.00"), "{svg}");
        assert!(!spark(&[1.0]).contains("path"));
    }
}
