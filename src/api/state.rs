//! What the ELBv2 API made, and the state file that keeps it: human-readable JSON with a
//! format version, written atomically (a temporary file beside it, fsynced, renamed over
//! it, then the directory fsynced), so that a crash or `kill -9` at any point leaves the
//! previous or the new state, never a torn one. A state file that cannot be read, or that
//! a newer hostalb wrote, is refused at start and never overwritten.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use hostalb_aws::elbv2::{Attribute, Listener, LoadBalancer, Rule, Tag, TargetDescription, TargetGroup};
use serde::{Deserialize, Serialize};

/// The state file format this hostalb writes and reads; a file with a higher one is
/// refused (a newer hostalb wrote it and this one would lose what it does not know).
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Everything the ELBv2 API made, in ELBv2's own shapes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(crate) struct ApiState {
    pub format_version: u32,
    pub load_balancers: Vec<LoadBalancer>,
    pub listeners: Vec<ApiListener>,
    /// Rules other than the default ones (a listener's default rule is its default
    /// actions).
    pub rules: Vec<Rule>,
    pub target_groups: Vec<TargetGroup>,
    /// Attributes set on load balancers and target groups, by ARN.
    pub attributes: BTreeMap<String, Vec<Attribute>>,
    /// Tags of the API's resources, by ARN.
    pub tags: BTreeMap<String, Vec<Tag>>,
    /// RegisterTargets' registrations, by target group name (file groups included).
    pub registrations: BTreeMap<String, Vec<TargetDescription>>,
    /// What the ECS API made (clusters, task definitions, tasks, services), shared with it.
    #[serde(default, skip_serializing_if = "hostalb_ecs::Shared::is_empty")]
    pub ecs: hostalb_ecs::Shared,
}

/// A listener and the key its ARN (and its rules' ARNs) were made from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ApiListener {
    pub key: String,
    pub listener: Listener,
}

/// Why a state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    #[error(
        "state file {path}: cannot be read: {message}. hostalb leaves it as it is; fix: repair it, or move it away to start without the AWS API's resources (set [admin] state_file to use another file)"
    )]
    Corrupt { path: String, message: String },
    #[error(
        "state file {path}: format version {found} was written by a newer hostalb (this one reads version {FORMAT_VERSION}). hostalb leaves it as it is; fix: run the newer hostalb, or move the file away to start without the AWS API's resources"
    )]
    Newer { path: String, found: u32 },
    #[error("state file {path}: cannot be written: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Where the state file is: `[admin] state_file` (relative to the configuration file's
/// directory), else `hostalb.state.json` beside the configuration file, else in the
/// working directory.
pub(crate) fn path_for(configured: Option<&Path>, config_file: Option<&Path>) -> PathBuf {
    let base = config_file
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf);
    match (configured, base) {
        (Some(p), Some(base)) if p.is_relative() => base.join(p),
        (Some(p), _) => p.to_path_buf(),
        (None, Some(base)) => base.join(hostalb_config::defaults::STATE_FILE_NAME),
        (None, None) => PathBuf::from(hostalb_config::defaults::STATE_FILE_NAME),
    }
}

/// Reads the state file; a missing file is an empty state.
pub(crate) fn load(path: &Path) -> Result<ApiState, StateError> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ApiState {
                format_version: FORMAT_VERSION,
                ..ApiState::default()
            });
        }
        Err(e) => {
            return Err(StateError::Corrupt {
                path: shown,
                message: e.to_string(),
            });
        }
    };
    // The version first, so that a newer file is named as such rather than as unreadable.
    let version = serde_json::from_str::<serde_json::Value>(&text)
        .map_err(|e| StateError::Corrupt {
            path: shown.clone(),
            message: e.to_string(),
        })?
        .get("FormatVersion")
        .and_then(serde_json::Value::as_u64);
    match version {
        None => {
            return Err(StateError::Corrupt {
                path: shown,
                message: "no FormatVersion".into(),
            });
        }
        Some(v) if v > u64::from(FORMAT_VERSION) => {
            return Err(StateError::Newer {
                path: shown,
                found: u32::try_from(v).unwrap_or(u32::MAX),
            });
        }
        Some(_) => {}
    }
    serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
        path: shown,
        message: e.to_string(),
    })
}

/// Held by every write of the state file, and by the ECS side across its read-modify-write
/// (it has no copy of the ELBv2 side's resources): no write falls in between.
pub(crate) static WRITES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Writes the state file atomically (see [`write`]), one writer at a time.
pub(crate) fn save(path: &Path, state: &ApiState) -> Result<(), StateError> {
    let _one = WRITES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    write(path, state)
}

/// Writes the state file atomically: a temporary file in the same directory, fsynced,
/// renamed over the old one, then the directory fsynced so the rename itself is durable.
/// The caller holds [`WRITES`].
pub(crate) fn write(path: &Path, state: &ApiState) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: path.display().to_string(),
        source,
    };
    // Absent members are left out, as the CLI prints shapes: the file stays readable.
    let value = hostalb_aws::elbv2::to_json(state);
    let mut text = serde_json::to_vec_pretty(&value).map_err(|e| err(std::io::Error::other(e)))?;
    text.push(b'\n');
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ApiState {
        ApiState {
            format_version: FORMAT_VERSION,
            load_balancers: vec![LoadBalancer {
                load_balancer_arn: "arn:lb".into(),
                load_balancer_name: "web".into(),
                ..LoadBalancer::default()
            }],
            ..ApiState::default()
        }
    }

    #[test]
    fn saves_and_loads_back_readable_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        save(&path, &sample()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\n  \"FormatVersion\": 1,"), "{text}");
        assert_eq!(load(&path).unwrap(), sample());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_missing_file_is_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let s = load(&dir.path().join("none.json")).unwrap();
        assert!(s.load_balancers.is_empty());
        assert_eq!(s.format_version, FORMAT_VERSION);
    }

    #[test]
    fn corrupt_and_newer_files_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        for (text, expect) in [
            ("{\"FormatVersion\": 1, \"LoadBalancers\": [", "cannot be read"),
            ("{\"LoadBalancers\": []}", "no FormatVersion"),
            ("{\"FormatVersion\": 2}", "newer hostalb"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = load(&path).unwrap_err().to_string();
            assert!(e.contains(expect), "{e}");
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains("fix:"), "{e}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        }
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        save(&path, &sample()).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        // A directory where the temporary file would go makes the write fail.
        let tmp = dir.path().join(format!(".s.json.tmp-{}", std::process::id()));
        std::fs::create_dir(&tmp).unwrap();
        assert!(save(&path, &ApiState::default()).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    }

    #[test]
    fn the_path_defaults_beside_the_configuration_file() {
        let cfg = Path::new("/etc/hostalb/hostalb.toml");
        assert_eq!(
            path_for(None, Some(cfg)),
            Path::new("/etc/hostalb/hostalb.state.json")
        );
        assert_eq!(
            path_for(Some(Path::new("s.json")), Some(cfg)),
            Path::new("/etc/hostalb/s.json")
        );
        assert_eq!(
            path_for(Some(Path::new("/var/s.json")), Some(cfg)),
            Path::new("/var/s.json")
        );
        assert_eq!(path_for(None, None), Path::new("hostalb.state.json"));
    }
}
