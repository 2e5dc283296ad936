//! What the command line and the environment change in the embedded default (`hostalb run`
//! without `--config`): the listener and admin addresses, and how long a label-declared
//! target group outlives its last container.
//!
//! Precedence: a flag, else its environment variable, else the embedded default. They
//! configure the embedded default only: with `--config FILE` a flag is refused (the file
//! names its own addresses) and a variable is ignored with a warning (it may be set for
//! every run on the host, as in a container image).

use std::net::SocketAddr;
use std::time::Duration;

use hostalb_config::EmbeddedAddresses;
use hostalb_discovery::LABEL_GROUP_GRACE;

/// The listener address of the embedded default, when `--listen` is not given.
pub(crate) const ENV_LISTEN: &str = "HOSTALB_LISTEN";
/// The admin address of the embedded default, when `--admin` is not given.
pub(crate) const ENV_ADMIN: &str = "HOSTALB_ADMIN";
/// Seconds a label-declared group stays without containers, when `--label-group-grace`
/// is not given.
pub(crate) const ENV_LABEL_GROUP_GRACE: &str = "HOSTALB_LABEL_GROUP_GRACE";

/// The flags as given.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    pub listen: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub label_group_grace: Option<f64>,
}

/// The embedded default's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Embedded {
    pub addresses: EmbeddedAddresses,
    pub label_group_grace: Duration,
}

/// How `resolve` ended: the settings, and the variables ignored because a file is used.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub embedded: Embedded,
    pub ignored: Vec<&'static str>,
}

/// Flags over variables (read with `env`) over the embedded default. `file`: a
/// configuration file is used, so flags are refused and variables ignored.
pub(crate) fn resolve(
    flags: Flags,
    file: bool,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Resolved, String> {
    let set = |name: &'static str| env(name).filter(|v| !v.trim().is_empty()).map(|v| (name, v));
    let vars = [set(ENV_LISTEN), set(ENV_ADMIN), set(ENV_LABEL_GROUP_GRACE)];
    if file {
        let given: Vec<&str> = [
            flags.listen.map(|_| "--listen"),
            flags.admin.map(|_| "--admin"),
            flags.label_group_grace.map(|_| "--label-group-grace"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !given.is_empty() {
            return Err(format!(
                "{} only apply to the embedded default (hostalb run without --config): with --config FILE, set the listener's `address` and [admin] `address` in FILE (and label-declared groups exist only without a file)",
                given.join(", ")
            ));
        }
        return Ok(Resolved {
            embedded: Embedded {
                addresses: EmbeddedAddresses::default(),
                label_group_grace: LABEL_GROUP_GRACE,
            },
            ignored: vars.into_iter().flatten().map(|(name, _)| name).collect(),
        });
    }
    let [listen_var, admin_var, grace_var] = vars;
    let address =
        |flag: Option<SocketAddr>, var: Option<(&str, String)>| -> Result<Option<SocketAddr>, String> {
            match (flag, var) {
                (Some(a), _) => Ok(Some(a)),
                (None, Some((name, v))) => {
                    v.trim().parse().map(Some).map_err(|_| {
                        format!("{name}={v} is not an address: write IP:PORT, e.g. 127.0.0.1:8080")
                    })
                }
                (None, None) => Ok(None),
            }
        };
    let grace = match (flags.label_group_grace, grace_var) {
        (Some(s), _) => Some(("--label-group-grace".to_owned(), s)),
        (None, Some((name, v))) => Some((
            format!("{name}={v}"),
            v.trim()
                .parse::<f64>()
                .map_err(|_| format!("{name}={v} is not a number of seconds"))?,
        )),
        (None, None) => None,
    };
    let label_group_grace = match grace {
        None => LABEL_GROUP_GRACE,
        Some((what, s)) => Duration::try_from_secs_f64(s)
            .ok()
            .filter(|d| d.as_secs() < 1_000_000_000)
            .ok_or_else(|| format!("{what}: {s} is not a number of seconds >= 0"))?,
    };
    Ok(Resolved {
        embedded: Embedded {
            addresses: EmbeddedAddresses {
                listen: address(flags.listen, listen_var)?,
                admin: address(flags.admin, admin_var)?,
            },
            label_group_grace,
        },
        ignored: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn flags_win_over_variables_which_win_over_the_default() {
        let r = resolve(
            Flags {
                listen: Some(addr("127.0.0.1:1")),
                ..Flags::default()
            },
            false,
            env(&[
                (ENV_LISTEN, "127.0.0.1:2"),
                (ENV_ADMIN, " 127.0.0.1:3 "),
                (ENV_LABEL_GROUP_GRACE, "2.5"),
            ]),
        )
        .unwrap();
        assert_eq!(r.embedded.addresses.listen, Some(addr("127.0.0.1:1")));
        assert_eq!(r.embedded.addresses.admin, Some(addr("127.0.0.1:3")));
        assert_eq!(r.embedded.label_group_grace, Duration::from_millis(2500));
        let r = resolve(Flags::default(), false, env(&[])).unwrap();
        assert_eq!(r.embedded.addresses, EmbeddedAddresses::default());
        assert_eq!(r.embedded.label_group_grace, LABEL_GROUP_GRACE);
    }

    #[test]
    fn bad_variables_are_refused_with_their_name() {
        let e = resolve(Flags::default(), false, env(&[(ENV_ADMIN, "localhost")])).unwrap_err();
        assert!(e.contains("HOSTALB_ADMIN=localhost is not an address"), "{e}");
        let e = resolve(Flags::default(), false, env(&[(ENV_LABEL_GROUP_GRACE, "-1")])).unwrap_err();
        assert!(e.contains("HOSTALB_LABEL_GROUP_GRACE=-1"), "{e}");
        let e = resolve(
            Flags {
                label_group_grace: Some(f64::NAN),
                ..Flags::default()
            },
            false,
            env(&[]),
        )
        .unwrap_err();
        assert!(e.contains("--label-group-grace"), "{e}");
    }

    #[test]
    fn with_a_file_flags_are_refused_and_variables_ignored() {
        let e = resolve(
            Flags {
                admin: Some(addr("127.0.0.1:1")),
                ..Flags::default()
            },
            true,
            env(&[]),
        )
        .unwrap_err();
        assert!(e.starts_with("--admin only apply to the embedded default"), "{e}");
        let r = resolve(Flags::default(), true, env(&[(ENV_LISTEN, "127.0.0.1:2")])).unwrap();
        assert_eq!(r.ignored, vec![ENV_LISTEN]);
        assert_eq!(r.embedded.addresses, EmbeddedAddresses::default());
    }
}
