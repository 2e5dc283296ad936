//! A target's health as ALB reports it (DescribeTargetHealth's states and reasons), and
//! the threshold counting that moves it. The probes that feed it run in
//! [`crate::control::health`].

/// A target's state as DescribeTargetHealth reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Initial,
    Healthy,
    Unhealthy,
    Draining,
    Unused,
    Unavailable,
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Initial => "initial",
            State::Healthy => "healthy",
            State::Unhealthy => "unhealthy",
            State::Draining => "draining",
            State::Unused => "unused",
            State::Unavailable => "unavailable",
        }
    }
}

/// Why a target is in its state (`TargetHealth.Reason` and `Description`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reason {
    RegistrationInProgress,
    InitialHealthChecking,
    ResponseCodeMismatch(u16),
    Timeout,
    FailedHealthChecks,
    DeregistrationInProgress,
    NotRegistered,
    NotInUse,
    HealthCheckDisabled,
}

impl Reason {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Reason::RegistrationInProgress => "Elb.RegistrationInProgress",
            Reason::InitialHealthChecking => "Elb.InitialHealthChecking",
            Reason::ResponseCodeMismatch(_) => "Target.ResponseCodeMismatch",
            Reason::Timeout => "Target.Timeout",
            Reason::FailedHealthChecks => "Target.FailedHealthChecks",
            Reason::DeregistrationInProgress => "Target.DeregistrationInProgress",
            Reason::NotRegistered => "Target.NotRegistered",
            Reason::NotInUse => "Target.NotInUse",
            Reason::HealthCheckDisabled => "Target.HealthCheckDisabled",
        }
    }

    pub(crate) fn description(&self) -> String {
        match self {
            Reason::RegistrationInProgress => "Target registration is in progress".into(),
            Reason::InitialHealthChecking => "Initial health checks in progress".into(),
            Reason::ResponseCodeMismatch(code) => format!("Health checks failed with these codes: [{code}]"),
            Reason::Timeout => "Request timed out".into(),
            Reason::FailedHealthChecks => "Health checks failed".into(),
            Reason::DeregistrationInProgress => "Target deregistration is in progress".into(),
            Reason::NotRegistered => "Target is not registered to the target group".into(),
            Reason::NotInUse => {
                "Target group is not configured to receive traffic from the load balancer".into()
            }
            Reason::HealthCheckDisabled => "Health checks disabled".into(),
        }
    }
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    Pass,
    CodeMismatch(u16),
    Timeout,
    /// Connection refused or reset, or a reply that is not HTTP.
    Failed,
}

/// Threshold counting for one target (initial / healthy / unhealthy).
#[derive(Debug, Clone)]
pub(crate) struct Tracker {
    pub(crate) state: State,
    pub(crate) reason: Option<Reason>,
    passes: u32,
    failures: u32,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            state: State::Initial,
            reason: Some(Reason::RegistrationInProgress),
            passes: 0,
            failures: 0,
        }
    }
}

impl Tracker {
    /// Marks the start of health checking (`Elb.InitialHealthChecking`).
    pub(crate) fn checking(&mut self) {
        if self.state == State::Initial {
            self.reason = Some(Reason::InitialHealthChecking);
        }
    }

    /// Records a probe; returns whether the state changed.
    pub(crate) fn record(&mut self, probe: &Probe, healthy_threshold: u32, unhealthy_threshold: u32) -> bool {
        let before = self.state;
        if *probe == Probe::Pass {
            self.failures = 0;
            self.passes = self.passes.saturating_add(1);
            let needed = if self.state == State::Initial {
                1
            } else {
                healthy_threshold
            };
            if self.state == State::Healthy || self.passes >= needed {
                self.state = State::Healthy;
                self.reason = None;
            }
        } else {
            self.passes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.state == State::Unhealthy || self.failures >= unhealthy_threshold {
                self.state = State::Unhealthy;
                self.reason = Some(match probe {
                    Probe::CodeMismatch(code) => Reason::ResponseCodeMismatch(*code),
                    Probe::Timeout => Reason::Timeout,
                    _ => Reason::FailedHealthChecks,
                });
            } else if self.state == State::Initial {
                self.reason = Some(Reason::InitialHealthChecking);
            }
        }
        self.state != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_admits_a_new_target_then_thresholds_govern() {
        let mut t = Tracker::default();
        assert_eq!(
            (t.state, t.reason.clone()),
            (State::Initial, Some(Reason::RegistrationInProgress))
        );
        t.checking();
        assert_eq!(t.reason, Some(Reason::InitialHealthChecking));
        assert!(t.record(&Probe::Pass, 3, 2), "one pass: initial -> healthy");
        assert_eq!((t.state, t.reason.clone()), (State::Healthy, None));
        assert!(!t.record(&Probe::Timeout, 3, 2), "one failure is not enough");
        assert!(t.record(&Probe::CodeMismatch(500), 3, 2));
        assert_eq!(
            (t.state, t.reason.clone()),
            (State::Unhealthy, Some(Reason::ResponseCodeMismatch(500)))
        );
        assert_eq!(
            t.reason.as_ref().map(Reason::description).unwrap_or_default(),
            "Health checks failed with these codes: [500]"
        );
        assert!(!t.record(&Probe::Pass, 3, 2));
        assert!(!t.record(&Probe::Pass, 3, 2));
        assert!(!t.record(&Probe::Failed, 3, 2), "a failure resets the passes");
        assert_eq!(t.reason, Some(Reason::FailedHealthChecks));
        assert!(!t.record(&Probe::Pass, 3, 2));
        assert!(!t.record(&Probe::Pass, 3, 2));
        assert!(
            t.record(&Probe::Pass, 3, 2),
            "healthy_threshold passes bring it back"
        );
        assert_eq!(t.state, State::Healthy);
    }

    #[test]
    fn initial_becomes_unhealthy_after_the_threshold() {
        let mut t = Tracker::default();
        assert!(!t.record(&Probe::Timeout, 5, 3));
        assert!(!t.record(&Probe::Timeout, 5, 3));
        assert_eq!(t.state, State::Initial);
        assert!(t.record(&Probe::Timeout, 5, 3));
        assert_eq!(
            (t.state, t.reason.clone()),
            (State::Unhealthy, Some(Reason::Timeout))
        );
    }
}
