//! `hostalb check --config FILE` of the state file the run would use: a run refuses to
//! start on a state file that cannot be read, that a newer hostalb wrote, or whose
//! resources no longer validate beside the file, so the check says so first.

use std::path::{Path, PathBuf};

use hostalb_config::{Config, Overlay};
use serde_json::Value;

use super::{elbv2, state};

/// What the check found in the state file.
#[derive(Debug)]
pub(crate) struct StateCheck {
    pub path: PathBuf,
    /// Whether the file exists (a missing one is an empty state: nothing to check).
    pub exists: bool,
    /// What a run would refuse to start with.
    pub errors: Vec<String>,
    /// What a run would start with but not serve.
    pub warnings: Vec<String>,
}

/// Checks the state file that `hostalb run --config config_file` would read, beside
/// `config` (the file's configuration, valid).
pub(crate) fn check(config_file: &Path, config: &Config) -> StateCheck {
    let path = state::path_for(config.admin.state_file.as_deref(), Some(config_file));
    let exists = path.exists();
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    if exists {
        match state::load(&path) {
            Err(e) => errors.push(e.to_string()),
            Ok(s) => {
                errors.extend(resources(config_file, config, &s, &path));
                warnings.extend(registrations(config, &s));
            }
        }
    }
    StateCheck {
        path,
        exists,
        errors,
        warnings,
    }
}

/// What the state's resources give beside the configuration file: the problems a run
/// would refuse them for.
fn resources(config_file: &Path, config: &Config, s: &state::ApiState, path: &Path) -> Vec<String> {
    let doc = match elbv2::state_document(config, s, &Value::Null, path) {
        Ok(d) => d,
        Err(e) => return vec![format!("its resources do not fit the configuration: {e}")],
    };
    let mut problems = Vec::new();
    if !s.listeners.is_empty() || !s.target_groups.is_empty() {
        match hostalb_config::load_with_api(config_file, &Overlay::default(), Some(&doc)) {
            Ok(loaded) => problems.extend(
                hostalb_proxy::tls_file_problems(&loaded.config)
                    .into_iter()
                    .map(|p| format!("its resources do not fit the configuration: {p}")),
            ),
            Err(e) => problems.extend(
                e.problems()
                    .into_iter()
                    .filter(|p| p.severity == hostalb_config::Severity::Error)
                    .map(|p| format!("its resources do not fit the configuration: {p}")),
            ),
        }
    }
    problems
}

/// Registrations for a group neither the file nor the API defines: kept, never served.
fn registrations(config: &Config, s: &state::ApiState) -> Vec<String> {
    let mut problems = Vec::new();
    for group in s.registrations.keys() {
        let known = config.target_groups.iter().any(|g| &g.name == group)
            || s.target_groups.iter().any(|g| &g.target_group_name == group);
        if !known {
            problems.push(format!(
                "registrations (RegisterTargets) for target group `{group}`, which neither the configuration file nor the API defines: they are not served; fix: register them to a group that exists, or remove them from the state file"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use hostalb_aws::arn::{Scope, listener_arn, load_balancer_arn, target_group_arn};
    use hostalb_aws::elbv2::{Action, Listener, LoadBalancer, TargetDescription};

    use super::*;
    use crate::api::state::{ApiListener, ApiState, FORMAT_VERSION};

    const FILE: &str = "[admin]\naddress = \"127.0.0.1:0\"\nstate_file = \"s.json\"\n";
    const FILES_GROUP: &str = "\n[target_group.files]\ntargets = [\"127.0.0.1:9\"]\n";

    /// An API listener forwarding to the file's group `files`.
    fn forwarding_to_files() -> ApiState {
        let scope = Scope::default();
        let lb = load_balancer_arn(&scope, "shop");
        ApiState {
            format_version: FORMAT_VERSION,
            load_balancers: vec![LoadBalancer {
                load_balancer_arn: lb.clone(),
                load_balancer_name: "shop".into(),
                ..LoadBalancer::default()
            }],
            listeners: vec![ApiListener {
                key: "18080-1".into(),
                listener: Listener {
                    listener_arn: listener_arn(&scope, "shop", "18080-1"),
                    load_balancer_arn: Some(lb),
                    port: Some(18080),
                    protocol: Some("HTTP".into()),
                    default_actions: vec![Action {
                        kind: "forward".into(),
                        target_group_arn: Some(target_group_arn(&scope, "files")),
                        ..Action::default()
                    }],
                    ..Listener::default()
                },
            }],
            ..ApiState::default()
        }
    }

    fn check_with(file: &str, state: Option<&str>) -> StateCheck {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostalb.toml");
        std::fs::write(&path, file).unwrap();
        if let Some(text) = state {
            std::fs::write(dir.path().join("s.json"), text).unwrap();
        }
        let loaded = hostalb_config::load(&path).unwrap();
        check(&path, &loaded.config)
    }

    fn saved(s: &ApiState) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        state::save(&path, s).unwrap();
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn no_state_file_is_nothing_to_check() {
        let c = check_with(FILE, None);
        assert!(!c.exists);
        assert!(c.errors.is_empty() && c.warnings.is_empty());
        assert!(c.path.ends_with("s.json"));
    }

    #[test]
    fn corrupt_and_newer_state_files_are_errors() {
        for (text, expect) in [
            ("{\"FormatVersion\": 1,", "cannot be read"),
            ("{\"FormatVersion\": 9}", "newer hostalb"),
        ] {
            let c = check_with(FILE, Some(text));
            assert!(c.exists);
            assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
            assert!(c.errors[0].contains(expect), "{:?}", c.errors);
        }
    }

    #[test]
    fn resources_must_still_fit_the_file() {
        let text = saved(&forwarding_to_files());
        let fits = check_with(&format!("{FILE}{FILES_GROUP}"), Some(&text));
        assert!(fits.errors.is_empty(), "{:?}", fits.errors);
        // The file's group the API listener forwards to is gone.
        let gone = check_with(FILE, Some(&text));
        assert!(!gone.errors.is_empty());
        assert!(
            gone.errors
                .iter()
                .all(|e| e.contains("do not fit the configuration")),
            "{:?}",
            gone.errors
        );
    }

    #[test]
    fn registrations_for_a_missing_group_are_warned_of() {
        let mut s = forwarding_to_files();
        s.listeners.clear();
        s.registrations.insert(
            "gone".into(),
            vec![TargetDescription {
                id: "127.0.0.1".into(),
                port: Some(9),
                ..TargetDescription::default()
            }],
        );
        let c = check_with(FILE, Some(&saved(&s)));
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("`gone`"), "{:?}", c.warnings);
    }
}
