//! Rule evaluation cost per request, at 10, 100 and 1000 rules, with the matching rule
//! first or last (the worst case: every rule before it is evaluated and fails).
//!
//! Run: `cargo bench --bench rules`.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hostalb_proxy::rules::{RequestView, RuleTable};

/// A listener with `n` rules. Rule i matches host `svc-i.example.com` and path
/// `/svc-i/*`; every fifth also requires a header and every seventh a method, so the
/// table mixes condition types the way real ones do.
fn table(n: usize) -> RuleTable {
    let mut text = String::from(
        "[[listener]]\nname = \"web\"\naddress = \"127.0.0.1:0\"\n\
         default_action = { type = \"fixed-response\", status_code = 404 }\n",
    );
    for i in 0..n {
        let mut conditions = format!(
            "{{ field = \"host-header\", values = [\"svc-{i}.example.com\", \"*.svc-{i}.example.com\"] }}, \
             {{ field = \"path-pattern\", values = [\"/svc-{i}/*\"] }}"
        );
        if i % 5 == 0 {
            conditions.push_str(", { field = \"http-header\", name = \"X-Env\", values = [\"prod*\"] }");
        }
        if i % 7 == 0 {
            conditions.push_str(", { field = \"http-request-method\", values = [\"GET\", \"POST\"] }");
        }
        text.push_str(&format!(
            "[[listener.rule]]\npriority = {}\nconditions = [{conditions}]\n\
             action = {{ type = \"forward\", target_group = \"app\" }}\n",
            i + 1
        ));
    }
    text.push_str("[target_group.app]\n");
    let loaded = match hostalb_config::parse(&text, hostalb_config::Format::Toml, "bench") {
        Ok(l) => l,
        Err(e) => panic!("bench config: {e}"),
    };
    RuleTable::compile(&loaded.config.listeners[0], &|_| Some(0))
}

fn bench_rules(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    let headers: &[(&[u8], &[u8])] = &[
        (b"user-agent", b"wrk"),
        (b"accept", b"*/*"),
        (b"x-env", b"production"),
    ];
    let peer = IpAddr::from([10, 0, 0, 7]);
    for n in [10usize, 100, 1000] {
        let t = table(n);
        for (shape, index) in [("match_first", 0), ("match_last", n - 1)] {
            // Rule 0 needs the header and the method; both are present.
            let host = format!("svc-{index}.example.com:8080");
            let path = format!("/svc-{index}/items/42");
            let view = RequestView {
                method: b"GET",
                path: path.as_bytes(),
                query: Some(b"page=2"),
                host: Some(host.as_bytes()),
                headers,
                peer,
            };
            assert_eq!(t.evaluate(&view).priority, Some(index as u32 + 1));
            group.bench_with_input(
                BenchmarkId::new(format!("rules_{n}_host_path_{shape}"), n),
                &view,
                |b, v| b.iter(|| black_box(t.evaluate(black_box(v)).priority)),
            );
        }
        let miss_path = "/nothing/here".to_owned();
        let view = RequestView {
            method: b"GET",
            path: miss_path.as_bytes(),
            query: None,
            host: Some(b"other.example.com"),
            headers,
            peer,
        };
        assert_eq!(t.evaluate(&view).priority, None);
        group.bench_with_input(
            BenchmarkId::new(format!("rules_{n}_host_path_no_match"), n),
            &view,
            |b, v| b.iter(|| black_box(t.evaluate(black_box(v)).priority)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_rules);
criterion_main!(benches);
