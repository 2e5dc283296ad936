//! Shared helpers: small documents to embed a rule, an action or a target group in, and
//! assertions on the problems validation reports.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use hostalb_config::{ConfigError, Format, Loaded, Problem, Severity, parse};

/// A listener `web` on 127.0.0.1:8080 and the target group `api` (one static target).
/// `rules` is inserted as the listener's `[[listener.rule]]` tables.
pub(crate) fn with_rules(rules: &str) -> String {
    format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:8080"
{rules}

[target_group.api]
targets = ["127.0.0.1:9001"]
"#
    )
}

/// One rule (priority 10) with these conditions (a TOML array) forwarding to `api`.
pub(crate) fn with_conditions(conditions: &str) -> String {
    with_rules(&format!(
        r#"
[[listener.rule]]
priority = 10
conditions = {conditions}
action = {{ type = "forward", target_group = "api" }}
"#
    ))
}

/// One rule (priority 10, path-pattern `/x`) whose action is this inline table.
pub(crate) fn with_action(action: &str) -> String {
    with_rules(&format!(
        r#"
[[listener.rule]]
priority = 10
conditions = [{{ field = "path-pattern", values = ["/x"] }}]
action = {action}
"#
    ))
}

/// A listener forwarding everything to `api`, whose table holds `body` (keys first,
/// then any sub-tables such as `[target_group.api.health_check]`).
pub(crate) fn with_group(body: &str) -> String {
    format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:8080"
default_action = {{ type = "forward", target_group = "api" }}

[target_group.api]
{body}
"#
    )
}

pub(crate) fn toml(text: &str) -> Result<Loaded, ConfigError> {
    parse(text, Format::Toml, "test.toml")
}

/// Parses `body` with `strict_alb` set as given.
pub(crate) fn toml_strict(body: &str, strict: bool) -> Result<Loaded, ConfigError> {
    toml(&format!("strict_alb = {strict}\n{body}"))
}

/// The document must be valid; returns its warnings.
pub(crate) fn warnings(text: &str) -> Vec<Problem> {
    match toml(text) {
        Ok(loaded) => loaded.warnings,
        Err(e) => panic!("expected a valid configuration, got:\n{e}"),
    }
}

/// The document must be valid and carry no warning.
pub(crate) fn clean(text: &str) -> Loaded {
    match toml(text) {
        Ok(loaded) => {
            assert!(
                loaded.warnings.is_empty(),
                "expected no warnings, got {:#?}",
                loaded.warnings
            );
            loaded
        }
        Err(e) => panic!("expected a valid configuration, got:\n{e}"),
    }
}

/// The document must be rejected as invalid; returns every problem.
pub(crate) fn problems(text: &str) -> Vec<Problem> {
    match toml(text) {
        Ok(loaded) => panic!(
            "expected an invalid configuration; it loaded with warnings {:#?}",
            loaded.warnings
        ),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected validation problems, got {other}"),
    }
}

/// The problems at exactly `path`.
pub(crate) fn at<'a>(problems: &'a [Problem], path: &str) -> Vec<&'a Problem> {
    problems.iter().filter(|p| p.path == path).collect()
}

fn describe(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks that `body` breaks exactly the listed ALB limits, each `(path, fragment of
/// the message)`: with `strict_alb = false` it loads with exactly those warnings; with
/// `strict_alb = true` it is rejected with exactly those problems, now errors.
pub(crate) fn assert_limits(body: &str, expected: &[(&str, &str)]) {
    let lenient = match toml_strict(body, false) {
        Ok(loaded) => loaded.warnings,
        Err(e) => panic!("ALB limits must not reject a config without strict_alb:\n{e}"),
    };
    let strict = match toml_strict(body, true) {
        Ok(loaded) => panic!(
            "strict_alb = true must reject this config; it loaded with {:#?}",
            loaded.warnings
        ),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected validation problems, got {other}"),
    };
    for (mode, severity, found) in [
        ("strict_alb = false", Severity::Warning, &lenient),
        ("strict_alb = true", Severity::Error, &strict),
    ] {
        assert_eq!(
            found.len(),
            expected.len(),
            "{mode}: expected {expected:?}, found:\n{}",
            describe(found)
        );
        for (path, fragment) in expected {
            let hit = found
                .iter()
                .find(|p| p.path == *path && p.message.contains(fragment))
                .unwrap_or_else(|| {
                    panic!(
                        "{mode}: no problem at `{path}` mentioning `{fragment}` in:\n{}",
                        describe(found)
                    )
                });
            assert_eq!(hit.severity, severity, "{mode}: {hit}");
            assert!(hit.alb_limit, "{mode}: {hit} must be marked as an ALB limit");
            assert!(!hit.fix.is_empty(), "{mode}: {hit} has no fix");
        }
    }
}

/// Checks that `body` breaks exactly one ALB limit, at `path`; returns that problem
/// (as a warning) for further checks of its fix.
pub(crate) fn assert_limit(body: &str, path: &str, fragment: &str) -> Problem {
    assert_limits(body, &[(path, fragment)]);
    let warnings = toml_strict(body, false).unwrap().warnings;
    warnings.into_iter().next().unwrap()
}

/// Checks that `text` is rejected whatever `strict_alb` says, with an error (not an ALB
/// limit) at `path` whose message holds `fragment`; returns that problem.
pub(crate) fn assert_error(text: &str, path: &str, fragment: &str) -> Problem {
    let found = match toml_strict(text, false) {
        Ok(loaded) => panic!(
            "expected an error at `{path}`; the config loaded with {:#?}",
            loaded.warnings
        ),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(other) => panic!("expected validation problems, got {other}"),
    };
    let hit = found
        .iter()
        .find(|p| p.path == path && p.message.contains(fragment))
        .unwrap_or_else(|| {
            panic!(
                "no problem at `{path}` mentioning `{fragment}` in:\n{}",
                describe(&found)
            )
        })
        .clone();
    assert_eq!(hit.severity, Severity::Error, "{hit}");
    assert!(!hit.alb_limit, "{hit} must not be an ALB limit");
    assert!(!hit.fix.is_empty(), "{hit} has no fix");
    hit
}

/// Like [`assert_error`], and the error is the only problem reported. A fragment without
/// any listener gets a minimal one, so that "no listener" is not counted against it.
pub(crate) fn assert_only_error(text: &str, path: &str, fragment: &str) -> Problem {
    let text = if text.contains("listener") {
        text.to_owned()
    } else {
        format!("{text}\n[[listener]]\nname = \"only\"\naddress = \"127.0.0.1:0\"\n")
    };
    let text = text.as_str();
    let hit = assert_error(text, path, fragment);
    let all = problems(&format!("strict_alb = false\n{text}"));
    assert_eq!(all.len(), 1, "expected one problem, got:\n{}", describe(&all));
    hit
}
