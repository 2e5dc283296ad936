//! How long a label-declared target group outlives its last container.
//!
//! During a redeploy (stop, then start; or `docker compose up` recreating a service) a
//! group has no container for a moment; it must not vanish then, or its rule would stop
//! matching and requests would fall to the default action instead of ALB's 503 for a group
//! without targets. A group that no container declares any more (a mistyped name, a
//! service removed) goes away once [`LABEL_GROUP_GRACE`] has passed, its last known
//! definition serving (503) until then.

use std::collections::BTreeMap;
use std::time::Duration;

use hostalb_config::LabelGroup;
use tokio::time::Instant;

use crate::select::DeclaredGroup;

/// How long a label-declared group stays once no container declares it: ALB's default
/// idle timeout, long enough for a redeploy that stops the last container before starting
/// its replacement, short enough that a mistyped group is gone within a minute.
pub const LABEL_GROUP_GRACE: Duration = Duration::from_secs(60);

/// A label-declared group as last declared, and since when no container declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedGroup {
    pub declared: DeclaredGroup,
    /// `None` while a container declares it.
    pub empty_since: Option<Instant>,
}

/// The label-declared groups served: those containers declare, and those in their grace.
#[derive(Debug, Clone)]
pub struct Retained {
    grace: Duration,
    groups: BTreeMap<String, RetainedGroup>,
}

impl Retained {
    pub fn new(grace: Duration) -> Retained {
        Retained {
            grace,
            groups: BTreeMap::new(),
        }
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Takes the groups containers declare now: their definitions replace the known ones;
    /// a known group missing from `current` starts its grace (kept from an earlier start);
    /// groups past their grace go.
    pub fn update(&mut self, now: Instant, current: &[DeclaredGroup]) {
        for g in self.groups.values_mut() {
            if g.empty_since.is_none() && !current.iter().any(|d| d.group.name == g.declared.group.name) {
                g.empty_since = Some(now);
            }
        }
        for d in current {
            self.groups.insert(
                d.group.name.clone(),
                RetainedGroup {
                    declared: d.clone(),
                    empty_since: None,
                },
            );
        }
        self.expire(now);
    }

    /// Drops groups whose grace has passed; returns whether any went.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.groups.len();
        let grace = self.grace;
        self.groups
            .retain(|_, g| g.empty_since.is_none_or(|since| now < since + grace));
        self.groups.len() != before
    }

    /// When the next group's grace ends.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.groups
            .values()
            .filter_map(|g| g.empty_since)
            .min()
            .map(|since| since + self.grace)
    }

    pub fn groups(&self) -> impl Iterator<Item = &RetainedGroup> {
        self.groups.values()
    }

    /// The definitions to serve.
    pub fn label_groups(&self) -> Vec<LabelGroup> {
        self.groups.values().map(|g| g.declared.group.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::ContainerRef;

    fn declared(name: &str, path: &str) -> DeclaredGroup {
        let by = ContainerRef {
            id: format!("id-{name}"),
            name: format!("{name}-1"),
        };
        DeclaredGroup {
            group: LabelGroup {
                name: name.into(),
                defined_by: by.name.clone(),
                since: 0,
                values: BTreeMap::from([(
                    "path-pattern".to_owned(),
                    hostalb_config::LabelValue {
                        label: "hostalb.path-pattern".into(),
                        value: path.into(),
                    },
                )]),
            },
            defined_by: by.clone(),
            containers: vec![by],
        }
    }

    fn names(r: &Retained) -> Vec<String> {
        r.label_groups().into_iter().map(|g| g.name).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_without_containers_stays_for_the_grace_then_goes() {
        let mut r = Retained::new(Duration::from_secs(60));
        let start = Instant::now();
        r.update(start, &[declared("api", "/api/*"), declared("typo", "/x/*")]);
        assert_eq!(names(&r), vec!["api", "typo"]);
        assert_eq!(r.next_expiry(), None);

        tokio::time::advance(Duration::from_secs(5)).await;
        r.update(Instant::now(), &[declared("api", "/api/*")]);
        assert_eq!(names(&r), vec!["api", "typo"], "in its grace");
        let deadline = r.next_expiry().unwrap();
        assert_eq!(deadline, start + Duration::from_secs(65));

        // Another change within the grace does not restart it.
        tokio::time::advance(Duration::from_secs(30)).await;
        r.update(Instant::now(), &[declared("api", "/api/v2/*")]);
        assert_eq!(r.next_expiry(), Some(deadline));

        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(!r.expire(Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(r.expire(Instant::now()));
        assert_eq!(names(&r), vec!["api"]);
        assert_eq!(
            r.label_groups()[0].values["path-pattern"].value,
            "/api/v2/*",
            "the latest definition"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_declared_again_within_its_grace_stays() {
        let mut r = Retained::new(Duration::from_secs(10));
        r.update(Instant::now(), &[declared("api", "/a/*")]);
        r.update(Instant::now(), &[]);
        assert!(r.next_expiry().is_some());
        tokio::time::advance(Duration::from_secs(9)).await;
        r.update(Instant::now(), &[declared("api", "/a/*")]);
        assert_eq!(r.next_expiry(), None);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(!r.expire(Instant::now()));
        assert_eq!(names(&r), vec!["api"]);
    }

    #[tokio::test(start_paused = true)]
    async fn no_grace_removes_at_once() {
        let mut r = Retained::new(Duration::ZERO);
        r.update(Instant::now(), &[declared("api", "/a/*")]);
        r.update(Instant::now(), &[]);
        assert!(names(&r).is_empty());
    }
}
