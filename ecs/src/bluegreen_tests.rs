//! Unit tests of the blue/green schedule, weights, checks and group roles.

use super::*;
use crate::records::{CanaryConfiguration, LinearConfiguration, ServiceLoadBalancer};

fn cfg(strategy: &str) -> DeploymentConfiguration {
    DeploymentConfiguration {
        strategy: Some(strategy.into()),
        bake_time_in_minutes: Some(0),
        ..DeploymentConfiguration::default()
    }
}

#[test]
fn linear_moves_step_percent_per_step_bake_and_canary_the_rest_after_its_bake() {
    let mut l = cfg("LINEAR");
    l.linear_configuration = Some(LinearConfiguration {
        step_percent: Some(25.0),
        step_bake_time_in_minutes: Some(2),
    });
    let at: Vec<f64> = [0.0, 1.9, 2.0, 4.5, 6.0, 8.0, 100.0]
        .iter()
        .map(|m| production_percent(&l, *m))
        .collect();
    assert_eq!(at, vec![25.0, 25.0, 50.0, 75.0, 100.0, 100.0, 100.0]);
    // Defaults: 10 % every 6 minutes; a step that does not divide 100 ends at 100.
    l.linear_configuration = Some(LinearConfiguration::default());
    assert_eq!(production_percent(&l, 0.0), 10.0);
    assert_eq!(production_percent(&l, 54.0), 100.0);
    l.linear_configuration = Some(LinearConfiguration {
        step_percent: Some(33.3),
        step_bake_time_in_minutes: Some(1),
    });
    assert_eq!(production_percent(&l, 2.0), 99.9);
    assert_eq!(production_percent(&l, 3.0), 100.0);
    let mut c = cfg("CANARY");
    assert_eq!(production_percent(&c, 9.9), 5.0, "default 5 % for 10 minutes");
    assert_eq!(production_percent(&c, 10.0), 100.0);
    c.canary_configuration = Some(CanaryConfiguration {
        canary_percent: Some(0.5),
        canary_bake_time_in_minutes: Some(0),
    });
    assert_eq!(production_percent(&c, 0.0), 100.0, "no bake: the rest at once");
    assert_eq!(production_percent(&cfg("BLUE_GREEN"), 0.0), 100.0);
}

#[test]
fn shares_become_forward_weights_in_percent_or_tenths() {
    assert_eq!(weights(0.0), (0, 100));
    assert_eq!(weights(25.0), (25, 75));
    assert_eq!(weights(100.0), (100, 0));
    assert_eq!(weights(0.5), (5, 995));
    assert_eq!(weights(99.9), (999, 1));
}

#[test]
fn the_configuration_is_checked_as_ecs_does() {
    let ok = |c: &DeploymentConfiguration| check_configuration(c).map_err(|e| e.message);
    assert!(ok(&cfg("BLUE_GREEN")).is_ok());
    let mut c = cfg("BLUE_GREEN");
    c.bake_time_in_minutes = None;
    assert!(ok(&c).unwrap_err().contains("bakeTimeInMinutes is required"));
    c.bake_time_in_minutes = Some(1441);
    assert!(ok(&c).unwrap_err().contains("between 0 and 1440"));
    let mut c = cfg("LINEAR");
    c.linear_configuration = Some(LinearConfiguration {
        step_percent: Some(2.9),
        step_bake_time_in_minutes: None,
    });
    assert!(ok(&c).unwrap_err().contains("stepPercent"));
    c.linear_configuration = Some(LinearConfiguration {
        step_percent: Some(10.05),
        step_bake_time_in_minutes: None,
    });
    assert!(ok(&c).unwrap_err().contains("multiple of 0.1"));
    let mut c = cfg("CANARY");
    c.canary_configuration = Some(CanaryConfiguration {
        canary_percent: Some(0.05),
        canary_bake_time_in_minutes: None,
    });
    assert!(ok(&c).unwrap_err().contains("canaryPercent"));
    c.canary_configuration = Some(CanaryConfiguration {
        canary_percent: Some(0.1),
        canary_bake_time_in_minutes: Some(1440),
    });
    assert!(ok(&c).is_ok());
    let mut c = cfg("BLUE_GREEN");
    c.linear_configuration = Some(LinearConfiguration::default());
    assert!(
        ok(&c)
            .unwrap_err()
            .contains("only valid when the deployment strategy is LINEAR")
    );
    let mut c = cfg("BLUE_GREEN");
    c.lifecycle_hooks =
        Some(json!([{"hookTargetArn": "arn:aws:lambda:x", "lifecycleStages": ["POST_SCALE_UP"]}]));
    let e = check_configuration(&c).unwrap_err();
    assert_eq!(e.code, "UnsupportedFeatureException");
    assert!(e.message.contains("lifecycleHooks"));
    c.lifecycle_hooks = Some(json!([]));
    assert!(ok(&c).is_ok(), "an empty list asks for nothing");
    assert!(
        ok(&cfg("SHADOW"))
            .unwrap_err()
            .contains("strategy SHADOW is invalid")
    );
    let rolling = DeploymentConfiguration {
        bake_time_in_minutes: Some(1),
        ..DeploymentConfiguration::default()
    };
    assert!(ok(&rolling).unwrap_err().contains("bakeTimeInMinutes"));
}

#[test]
fn green_takes_the_group_blue_does_not_serve_and_the_roles_swap() {
    let lb = ServiceLoadBalancer {
        target_group_arn: "tg-a".into(),
        container_name: "web".into(),
        container_port: 80,
        advanced_configuration: Some(AdvancedConfiguration {
            alternate_target_group_arn: "tg-b".into(),
            production_listener_rule: "rule".into(),
            test_listener_rule: None,
            role_arn: "arn:aws:iam::1:role/r".into(),
        }),
    };
    let mut s = Service {
        load_balancers: vec![lb],
        deployment_configuration: cfg("BLUE_GREEN"),
        deployment_id: "d1".into(),
        task_definition: "td:1".into(),
        ..Service::default()
    };
    s.deployments = crate::deploy::deployments(&s);
    begin(&mut s);
    let first = s.deployments[0].blue_green.clone().unwrap();
    assert_eq!(
        first.green_groups,
        vec!["tg-a".to_owned()],
        "the first deployment: targetGroupArn"
    );
    assert_eq!(first.blue_groups, vec!["tg-b".to_owned()]);
    assert_eq!(serving_groups(&s), vec!["tg-b".to_owned()], "nothing moved yet");
    s.deployments[0].blue_green.as_mut().unwrap().stage = DONE.into();
    assert_eq!(serving_groups(&s), vec!["tg-a".to_owned()]);
    crate::deploy::start_deployment(&mut s, "td:2".into(), "r");
    begin(&mut s);
    let second = s.deployments[1].blue_green.clone().unwrap();
    assert_eq!(second.green_groups, vec!["tg-b".to_owned()], "the alternate next");
    assert_eq!(second.blue_groups, vec!["tg-a".to_owned()]);
    assert_eq!(
        second.blue_deployment.as_deref(),
        Some(s.deployments[0].id.as_str())
    );
    let t = Task {
        started_by: Some(s.deployments[1].id.clone()),
        ..Task::default()
    };
    assert_eq!(register_group(&s, &t, 0).as_deref(), Some("tg-b"));
}
