//! The API's resources as configuration: the importer's mapping of ELBv2 shapes to
//! hostalb's listeners and target groups (one mapping, shared with `hostalb import`),
//! with the listeners bound on `[admin] api_listener_address`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use hostalb_aws::arn::{Scope, target_group_arn};
use hostalb_aws::import::{ApiResources, NoteKind, api_document};
use serde_json::Value;

use super::state::ApiState;

/// Whether the API serves a resource the importer noted as asked: a note of any other
/// kind (a rule, an action or a setting the configuration cannot carry) refuses the call.
/// Decided on the note's kind, never its wording.
fn served_as_asked(kind: NoteKind) -> bool {
    match kind {
        // Groups get their targets by RegisterTargets.
        NoteKind::NoTargets => true,
        // Two load balancers with a listener on one port: the second binds 127.0.0.2.
        NoteKind::AddressMoved => true,
        // Certificates are read from files (`locate`).
        NoteKind::CertificateFiles => true,
        // HealthCheckProtocol other than the group's: hostalb checks with the group's.
        NoteKind::HealthCheckProtocol => true,
        NoteKind::NotCarried => false,
    }
}

/// Why the API's resources give no configuration.
#[derive(Debug)]
pub(crate) enum DocError {
    /// hostalb's own fault.
    Internal(String),
    /// What the importer could not carry over, as it says it.
    NotCarried(Vec<String>),
}

impl std::fmt::Display for DocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocError::Internal(m) => f.write_str(m),
            DocError::NotCarried(notes) => write!(f, "not served by hostalb: {}", notes.join("; ")),
        }
    }
}

/// Where HTTPS listeners' certificates are read: for `arn:aws:acm:...:certificate/ID`,
/// `DIR/ID.pem` (the chain) and `DIR/ID.key`; an ARN hostalb shows for a file listener's
/// certificate reads that listener's files (`files`: cert file, key file).
#[derive(Debug)]
pub(crate) struct Certificates<'a> {
    pub dir: &'a Path,
    pub files: &'a [(PathBuf, PathBuf)],
}

/// The configuration document for `state`; `file_groups` are the target groups defined
/// elsewhere that actions may forward to.
pub(crate) fn document(
    state: &ApiState,
    file_groups: &[String],
    listen: IpAddr,
    certs: &Certificates<'_>,
) -> Result<Value, DocError> {
    let scope = Scope::default();
    let resources = ApiResources {
        load_balancers: state.load_balancers.clone(),
        listeners: state.listeners.iter().map(|l| l.listener.clone()).collect(),
        rules: state.rules.clone(),
        target_groups: state.target_groups.clone(),
        attributes: state
            .attributes
            .iter()
            .map(|(arn, a)| (arn.clone(), a.clone()))
            .collect(),
        external_groups: file_groups
            .iter()
            .map(|n| (target_group_arn(&scope, n), n.clone()))
            .collect(),
    };
    let (mut doc, notes) = api_document(resources).map_err(DocError::Internal)?;
    let refused: Vec<String> = notes
        .into_iter()
        .filter(|n| !served_as_asked(n.kind))
        .map(|n| n.text)
        .collect();
    if !refused.is_empty() {
        return Err(DocError::NotCarried(refused));
    }
    if let Some(Value::Array(listeners)) = doc.get_mut("listener") {
        for l in listeners {
            let Some(address) = l.get("address").and_then(Value::as_str) else {
                continue;
            };
            if let Some(port) = address.strip_prefix("127.0.0.1:") {
                let host = match listen {
                    IpAddr::V4(a) => a.to_string(),
                    IpAddr::V6(a) => format!("[{a}]"),
                };
                l["address"] = Value::String(format!("{host}:{port}"));
            }
            if let Some(Value::Array(list)) = l.get_mut("certificates") {
                for c in list {
                    locate(c, certs);
                }
            }
        }
    }
    Ok(doc)
}

/// Points a `{ cert_file = "certs/ID.pem", key_file = "certs/ID.key" }` entry the importer
/// wrote at the files of certificate `ID`.
fn locate(entry: &mut Value, certs: &Certificates<'_>) {
    let Some(id) = entry
        .get("cert_file")
        .and_then(Value::as_str)
        .and_then(|f| f.strip_prefix("certs/"))
        .and_then(|f| f.strip_suffix(".pem"))
        .map(str::to_owned)
    else {
        return;
    };
    let scope = Scope::default();
    let known = certs.files.iter().find(|(cert, _)| {
        let arn = hostalb_aws::arn::certificate_arn(&scope, &cert.display().to_string());
        arn.rsplit('/').next() == Some(id.as_str())
    });
    let (cert, key) = match known {
        Some((c, k)) => (c.clone(), k.clone()),
        None => (
            certs.dir.join(format!("{id}.pem")),
            certs.dir.join(format!("{id}.key")),
        ),
    };
    entry["cert_file"] = Value::String(cert.display().to_string());
    entry["key_file"] = Value::String(key.display().to_string());
}

/// The names of the listeners in a document made by [`document`].
pub(crate) fn listener_names(doc: &Value) -> Vec<String> {
    doc.get("listener")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use hostalb_aws::arn::{listener_arn, load_balancer_arn, target_group_arn};
    use hostalb_aws::elbv2::{Action, Certificate, Listener, LoadBalancer, TargetGroup};

    use super::*;
    use crate::api::state::ApiListener;

    fn state(protocol: &str, certificate: Option<&str>) -> ApiState {
        let scope = Scope::default();
        let lb = load_balancer_arn(&scope, "shop");
        ApiState {
            load_balancers: vec![LoadBalancer {
                load_balancer_arn: lb.clone(),
                load_balancer_name: "shop".into(),
                ..LoadBalancer::default()
            }],
            listeners: vec![ApiListener {
                key: "8080-1".into(),
                listener: Listener {
                    listener_arn: listener_arn(&scope, "shop", "8080-1"),
                    load_balancer_arn: Some(lb),
                    port: Some(8080),
                    protocol: Some(protocol.into()),
                    certificates: certificate.map(|c| {
                        vec![Certificate {
                            certificate_arn: Some(c.into()),
                            is_default: Some(true),
                        }]
                    }),
                    default_actions: vec![Action {
                        kind: "forward".into(),
                        target_group_arn: Some(target_group_arn(&scope, "files")),
                        ..Action::default()
                    }],
                    ..Listener::default()
                },
            }],
            target_groups: vec![TargetGroup {
                target_group_arn: target_group_arn(&scope, "api"),
                target_group_name: "api".into(),
                protocol: Some("HTTP".into()),
                ..TargetGroup::default()
            }],
            ..ApiState::default()
        }
    }

    #[test]
    fn listeners_bind_the_api_address_and_forward_to_file_groups() {
        let certs = Certificates {
            dir: Path::new("/state/certs"),
            files: &[],
        };
        let doc = document(
            &state("HTTP", None),
            &["files".into()],
            "127.0.0.3".parse().unwrap(),
            &certs,
        )
        .unwrap();
        assert_eq!(doc["listener"][0]["address"], "127.0.0.3:8080", "{doc}");
        assert_eq!(doc["listener"][0]["name"], "shop-8080");
        assert_eq!(
            doc["listener"][0]["default_action"]["target_group"], "files",
            "{doc}"
        );
        assert!(doc["target_group"]["api"].is_object(), "{doc}");
        assert!(
            doc["target_group"].get("files").is_none(),
            "the file's group is not written: {doc}"
        );
        assert_eq!(listener_names(&doc), ["shop-8080"]);
    }

    #[test]
    fn certificates_are_read_beside_the_state_file_or_from_a_file_listener() {
        let own = "arn:aws:acm:us-east-1:000000000000:certificate/abc";
        let files = [(
            PathBuf::from("/etc/tls/site.pem"),
            PathBuf::from("/etc/tls/site.key"),
        )];
        let certs = Certificates {
            dir: Path::new("/state/certs"),
            files: &files,
        };
        let doc = document(
            &state("HTTPS", Some(own)),
            &["files".into()],
            "127.0.0.1".parse().unwrap(),
            &certs,
        )
        .unwrap();
        assert_eq!(
            doc["listener"][0]["certificates"][0]["cert_file"], "/state/certs/abc.pem",
            "{doc}"
        );
        assert_eq!(
            doc["listener"][0]["certificates"][0]["key_file"],
            "/state/certs/abc.key"
        );
        let shown = hostalb_aws::arn::certificate_arn(&Scope::default(), "/etc/tls/site.pem");
        let doc = document(
            &state("HTTPS", Some(&shown)),
            &["files".into()],
            "127.0.0.1".parse().unwrap(),
            &certs,
        )
        .unwrap();
        assert_eq!(
            doc["listener"][0]["certificates"][0]["cert_file"], "/etc/tls/site.pem",
            "{doc}"
        );
    }

    #[test]
    fn notes_of_kinds_served_as_asked_refuse_nothing() {
        // A group without targets (NoTargets) and a HealthCheckProtocol other than the
        // group's (HealthCheckProtocol): both noted by the importer, both served.
        let mut s = state("HTTP", None);
        s.target_groups[0].health_check_protocol = Some("TCP".into());
        let certs = Certificates {
            dir: Path::new("/state/certs"),
            files: &[],
        };
        let doc = document(&s, &["files".into()], "127.0.0.1".parse().unwrap(), &certs).unwrap();
        assert!(doc["target_group"]["api"].is_object(), "{doc}");
        for kind in [
            NoteKind::NoTargets,
            NoteKind::AddressMoved,
            NoteKind::CertificateFiles,
            NoteKind::HealthCheckProtocol,
        ] {
            assert!(served_as_asked(kind), "{kind:?}");
        }
        assert!(!served_as_asked(NoteKind::NotCarried));
    }

    #[test]
    fn what_cannot_be_carried_is_refused() {
        let mut s = state("HTTP", None);
        s.listeners[0].listener.default_actions[0] = Action {
            kind: "redirect".into(),
            ..Action::default()
        };
        let certs = Certificates {
            dir: Path::new("/state/certs"),
            files: &[],
        };
        match document(&s, &["files".into()], "127.0.0.1".parse().unwrap(), &certs) {
            Err(DocError::NotCarried(notes)) => {
                assert!(notes.iter().any(|n| n.contains("RedirectConfig")), "{notes:?}")
            }
            other => panic!("{other:?}"),
        }
    }
}
