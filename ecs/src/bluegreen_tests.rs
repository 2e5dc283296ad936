//! Unit tests of the blue/green schedule, weights, checks and group roles.

use super::*;
use crate::records::{CanaryConfiguration, LinearConfiguration, ServiceLoadBalancer};
use crate::services::group;

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

/// Listener rules in memory: rule ARN to its forward (group, weight), and the Set calls.
type Rules = Arc<std::sync::Mutex<(std::collections::HashMap<String, Vec<(String, u32)>>, usize)>>;

/// An API (no engine asked: the service wants 0 tasks) whose rules live in `Rules`, and
/// a blue/green service whose blue deployment serves from group A; its new deployment of
/// `td:2` is under way with `configuration`.
fn service_under_way(configuration: DeploymentConfiguration) -> (crate::Ecs, Rules) {
    let both = vec![("a".to_owned(), 100), ("b".to_owned(), 0)];
    let rules: Rules = Arc::new(std::sync::Mutex::new((
        [("prod".to_owned(), both.clone()), ("test".to_owned(), both)]
            .into_iter()
            .collect(),
        0,
    )));
    let kept = Arc::clone(&rules);
    let weights: crate::RuleWeights = Arc::new(move |call| {
        let kept = Arc::clone(&kept);
        Box::pin(async move {
            let mut r = kept.lock().unwrap();
            match call {
                RuleCall::Read(rule) => r.0.get(&rule).cloned().ok_or_else(|| "RuleNotFound".to_owned()),
                RuleCall::Set(rule, w) => {
                    r.1 += 1;
                    r.0.insert(rule, w.clone());
                    Ok(w)
                }
            }
        })
    });
    let docker = crate::docker::connect(Some("tcp://127.0.0.1:9")).unwrap();
    let registrar: crate::Registrar = Arc::new(|_| Box::pin(async { Ok(std::time::Duration::ZERO) }));
    let ecs =
        crate::Ecs::new(crate::Shared::default(), docker, Box::new(|| Ok(())), registrar).with_rules(weights);
    let mut s = Service {
        service_arn: "svc".into(),
        service_name: "x".into(),
        cluster_arn: "c".into(),
        status: "ACTIVE".into(),
        created_at: 1.0,
        task_definition: "td:1".into(),
        deployment_id: "ecs-svc/blue".into(),
        load_balancers: vec![ServiceLoadBalancer {
            target_group_arn: "a".into(),
            container_name: "web".into(),
            container_port: 80,
            advanced_configuration: Some(AdvancedConfiguration {
                alternate_target_group_arn: "b".into(),
                production_listener_rule: "prod".into(),
                test_listener_rule: Some("test".into()),
                role_arn: "arn:aws:iam::1:role/r".into(),
            }),
        }],
        deployment_configuration: configuration,
        ..Service::default()
    };
    s.deployments = crate::deploy::deployments(&s);
    s.deployments[0].rollout_state = "COMPLETED".into();
    crate::deploy::start_deployment(&mut s, "td:2".into(), "r");
    begin(&mut s);
    ecs.inner.state.lock().services.push(s);
    (ecs, rules)
}

fn current(ecs: &crate::Ecs) -> (Service, BlueGreen) {
    let s = ecs.inner.state.lock().services[0].clone();
    let b = s.deployments.last().and_then(|d| d.blue_green.clone()).unwrap();
    (s, b)
}

async fn round(ecs: &crate::Ecs) -> BlueGreen {
    let (s, _) = current(ecs);
    crate::deploy::roll(&ecs.inner, &s, &[], true).await;
    current(ecs).1
}

/// Moves the current stage's start `minutes` ECS minutes back, as if they had passed.
fn age(ecs: &crate::Ecs, minutes: f64) {
    let mut state = ecs.inner.state.lock();
    if let Some(b) = state.services[0]
        .deployments
        .last_mut()
        .and_then(|d| d.blue_green.as_mut())
    {
        b.stage_started_at -= minutes * minute();
    }
}

fn rule(rules: &Rules, name: &str) -> Vec<(String, u32)> {
    rules.lock().unwrap().0[name].clone()
}

#[tokio::test]
async fn a_linear_deployment_moves_through_its_stages_step_by_step() {
    let mut c = cfg("LINEAR");
    c.bake_time_in_minutes = Some(1);
    c.linear_configuration = Some(LinearConfiguration {
        step_percent: Some(50.0),
        step_bake_time_in_minutes: Some(1),
    });
    let (ecs, rules) = service_under_way(c);
    let ab = |a: u32, b: u32| vec![("a".to_owned(), a), ("b".to_owned(), b)];
    assert_eq!(current(&ecs).1.green_groups, vec!["b".to_owned()]);

    assert_eq!(
        round(&ecs).await.stage,
        TEST_TRAFFIC_SHIFT,
        "no task wanted: green is ready"
    );
    assert_eq!(rule(&rules, "test"), ab(0, 100), "test traffic on green");
    assert_eq!(rule(&rules, "prod"), ab(100, 0), "production still on blue");
    assert_eq!(round(&ecs).await.stage, PRODUCTION_TRAFFIC_SHIFT);
    let b = round(&ecs).await;
    assert_eq!(
        (b.stage.as_str(), b.production_percent),
        (PRODUCTION_TRAFFIC_SHIFT, 50.0)
    );
    assert_eq!(rule(&rules, "prod"), ab(50, 50));
    let sets = rules.lock().unwrap().1;
    round(&ecs).await;
    assert_eq!(rules.lock().unwrap().1, sets, "no change within a step");
    age(&ecs, 1.0);
    assert_eq!(round(&ecs).await.stage, BAKE_TIME);
    assert_eq!(rule(&rules, "prod"), ab(0, 100));
    assert_eq!(round(&ecs).await.stage, BAKE_TIME, "the bake is a minute");
    age(&ecs, 1.0);
    assert_eq!(round(&ecs).await.stage, CLEAN_UP);
    let b = round(&ecs).await;
    assert_eq!((b.stage.as_str(), b.status.as_str()), (DONE, "SUCCESSFUL"));
    let (s, _) = current(&ecs);
    assert_eq!(s.deployments.len(), 1);
    assert_eq!(s.deployments[0].rollout_state, "COMPLETED");
    assert_eq!(s.past_deployments.len(), 1, "blue kept as past");
    assert_eq!(
        serving_groups(&s),
        vec!["b".to_owned()],
        "B serves: the roles swapped"
    );
    assert!(!in_charge(&s));
}

#[tokio::test]
async fn the_breaker_moves_a_canary_back_to_blue() {
    let mut c = cfg("CANARY");
    c.canary_configuration = Some(CanaryConfiguration {
        canary_percent: Some(0.5),
        canary_bake_time_in_minutes: Some(5),
    });
    c.deployment_circuit_breaker = Some(CircuitBreaker {
        enable: true,
        rollback: true,
    });
    let (ecs, rules) = service_under_way(c);
    for _ in 0..3 {
        round(&ecs).await;
    }
    assert_eq!(current(&ecs).1.production_percent, 0.5);
    assert_eq!(
        rule(&rules, "prod"),
        vec![("a".to_owned(), 995), ("b".to_owned(), 5)]
    );
    let (s, b) = current(&ecs);
    let id = s.deployments.last().unwrap().id.clone();
    assert_eq!(b.stage, PRODUCTION_TRAFFIC_SHIFT);
    for _ in 0..3 {
        ecs.inner.state.lock().tasks.push(Task {
            cluster_arn: "c".into(),
            group: group("x"),
            started_by: Some(id.clone()),
            desired_status: "STOPPED".into(),
            last_status: "STOPPED".into(),
            stop_code: Some("EssentialContainerExited".into()),
            ..Task::default()
        });
    }
    assert_eq!(round(&ecs).await.status, "ROLLBACK_IN_PROGRESS");
    assert_eq!(
        rule(&rules, "prod"),
        vec![("a".to_owned(), 100), ("b".to_owned(), 0)]
    );
    assert_eq!(
        rule(&rules, "test"),
        vec![("a".to_owned(), 100), ("b".to_owned(), 0)]
    );
    let (s, _) = current(&ecs);
    crate::deploy::roll(&ecs.inner, &s, &[], true).await;
    let s = ecs.inner.state.lock().services[0].clone();
    assert_eq!(s.deployments.len(), 1);
    assert_eq!(s.deployments[0].id, "ecs-svc/blue");
    assert_eq!(s.deployments[0].status, "PRIMARY");
    assert_eq!(s.task_definition, "td:1");
    assert_eq!(s.past_deployments.len(), 1);
    assert_eq!(
        s.past_deployments[0].blue_green.as_ref().unwrap().status,
        "ROLLBACK_SUCCESSFUL"
    );
    assert_eq!(serving_groups(&s), vec!["a".to_owned()], "A still serves");
}
