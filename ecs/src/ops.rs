//! The ECS operations served: clusters, task definitions and tasks. Each reads its input
//! shape, checks everything before changing anything, then changes the state and writes
//! the state file.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::driver::{self, Phase};
use crate::model::TaskDefinition;
use crate::records::{Cluster, Container, Task};
use crate::{EcsError, Inner, Stop, now, random_hex, validate};

/// The cluster that always exists.
const DEFAULT_CLUSTER: &str = "default";
/// RunTask's `count` bound (ECS's).
const MAX_RUN_COUNT: u32 = 10;
/// List operations' page size when `maxResults` is absent (ECS's: 100).
const DEFAULT_PAGE: usize = 100;
/// ECS's operations (botocore 1.44.8's model) that hostalb does not carry out yet: they
/// answer `UnsupportedFeatureException`, other names `UnknownOperationException`.
const UNSUPPORTED: &[&str] = &[
    "AssociateGatewayWithCluster",
    "ContinueServiceDeployment",
    "CreateCapacityProvider",
    "CreateDaemon",
    "CreateExpressGatewayService",
    "CreateGateway",
    "CreateTaskSet",
    "DeleteAccountSetting",
    "DeleteAttributes",
    "DeleteCapacityProvider",
    "DeleteCluster",
    "DeleteDaemon",
    "DeleteDaemonTaskDefinition",
    "DeleteExpressGatewayService",
    "DeleteGateway",
    "DeleteTaskDefinitions",
    "DeleteTaskSet",
    "DeregisterContainerInstance",
    "DescribeCapacityProviders",
    "DescribeContainerInstances",
    "DescribeDaemon",
    "DescribeDaemonDeployments",
    "DescribeDaemonRevisions",
    "DescribeDaemonTaskDefinition",
    "DescribeExpressGatewayService",
    "DescribeGateway",
    "DescribeGatewayResources",
    "DescribeGatewayRoute",
    "DescribeServiceRevisions",
    "DescribeTaskSets",
    "DisassociateGatewayFromCluster",
    "DiscoverPollEndpoint",
    "ExecuteCommand",
    "GetTaskProtection",
    "ListAccountSettings",
    "ListAttributes",
    "ListContainerInstances",
    "ListDaemonDeployments",
    "ListDaemonTaskDefinitions",
    "ListDaemons",
    "ListGatewayClusterAssociations",
    "ListGatewayRoutes",
    "ListGateways",
    "ListServicesByNamespace",
    "ListTagsForResource",
    "ListTaskDefinitionFamilies",
    "PutAccountSetting",
    "PutAccountSettingDefault",
    "PutAttributes",
    "PutClusterCapacityProviders",
    "RegisterContainerInstance",
    "RegisterDaemonTaskDefinition",
    "StartTask",
    "StopServiceDeployment",
    "SubmitAttachmentStateChanges",
    "SubmitContainerStateChange",
    "SubmitTaskStateChange",
    "TagResource",
    "UntagResource",
    "UpdateCapacityProvider",
    "UpdateCluster",
    "UpdateClusterSettings",
    "UpdateContainerAgent",
    "UpdateContainerInstancesState",
    "UpdateDaemon",
    "UpdateExpressGatewayService",
    "UpdateGateway",
    "UpdateServicePrimaryTaskSet",
    "UpdateTaskProtection",
    "UpdateTaskSet",
];

/// The operations served (the match of [`call`]).
const SERVED: &[&str] = &[
    "CreateCluster",
    "DescribeClusters",
    "ListClusters",
    "RegisterTaskDefinition",
    "DescribeTaskDefinition",
    "ListTaskDefinitions",
    "DeregisterTaskDefinition",
    "RunTask",
    "StopTask",
    "ListTasks",
    "DescribeTasks",
    "CreateService",
    "DescribeServices",
    "ListServices",
    "DeleteService",
    "UpdateService",
    "ListServiceDeployments",
    "DescribeServiceDeployments",
];

/// `UnknownOperationException` for a name that is no ECS operation, served or not: the
/// answer does not depend on the Docker engine.
pub(crate) fn unknown(op: &str) -> Option<EcsError> {
    (!SERVED.contains(&op) && !UNSUPPORTED.contains(&op)).then(|| {
        EcsError::new(
            "UnknownOperationException",
            format!("{op} is not an ECS operation hostalb knows"),
        )
    })
}

pub(crate) async fn call(inner: &Arc<Inner>, op: &str, body: &[u8]) -> Result<Value, EcsError> {
    if let Some(e) = unknown(op) {
        return Err(e);
    }
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| EcsError::new("SerializationException", e.to_string()))?
    };
    // One call at a time changes the state (see Inner::calls).
    let _one = inner.calls.lock().await;
    match op {
        "CreateCluster" => create_cluster(inner, input),
        "DescribeClusters" => describe_clusters(inner, input),
        "ListClusters" => list_clusters(inner, input),
        "RegisterTaskDefinition" => register(inner, input),
        "DescribeTaskDefinition" => describe_task_definition(inner, input),
        "ListTaskDefinitions" => list_task_definitions(inner, input),
        "DeregisterTaskDefinition" => deregister(inner, input),
        "RunTask" => run_task(inner, input),
        "StopTask" => stop_task(inner, input),
        "ListTasks" => list_tasks(inner, input),
        "DescribeTasks" => describe_tasks(inner, input),
        "CreateService" => {
            crate::bluegreen::check_input(inner, op, &input).await?;
            crate::network::check_target_groups(inner, &input).await?;
            crate::services::create(inner, input)
        }
        "DescribeServices" => crate::services::describe(inner, input),
        "ListServices" => crate::services::list(inner, input),
        "DeleteService" => crate::services::delete(inner, input),
        "ListServiceDeployments" => crate::service_deployments::list(inner, input),
        "DescribeServiceDeployments" => crate::service_deployments::describe(inner, input),
        "UpdateService" => {
            crate::bluegreen::check_input(inner, op, &input).await?;
            crate::deploy::update(inner, input)
        }
        _ if UNSUPPORTED.contains(&op) => Err(EcsError::new(
            "UnsupportedFeatureException",
            format!(
                "{op} is not supported by hostalb yet: the ECS API here serves clusters, task definitions, tasks and services (Create/Describe/List/Update/DeleteService with rolling and blue/green deployments)"
            ),
        )),
        _ => Err(unknown(op).unwrap_or_else(|| EcsError::server(format!("{op} has no handler")))),
    }
}

pub(crate) fn parse<T: for<'de> Deserialize<'de>>(input: Value) -> Result<T, EcsError> {
    serde_json::from_value(input).map_err(|e| EcsError::new("SerializationException", e.to_string()))
}

fn prefix(inner: &Inner) -> String {
    format!("arn:aws:ecs:{}:{}", inner.scope.region, inner.scope.account)
}

fn cluster_arn(inner: &Inner, name: &str) -> String {
    format!("{}:cluster/{name}", prefix(inner))
}

/// The cluster a `cluster` member names (name or ARN; absent: default).
fn cluster(inner: &Inner, reference: Option<&str>) -> Result<Cluster, EcsError> {
    let reference = reference.unwrap_or(DEFAULT_CLUSTER);
    let name = reference.rsplit_once(":cluster/").map_or(reference, |(_, n)| n);
    if name == DEFAULT_CLUSTER {
        return Ok(Cluster {
            cluster_name: DEFAULT_CLUSTER.into(),
            cluster_arn: cluster_arn(inner, DEFAULT_CLUSTER),
        });
    }
    inner
        .state
        .lock()
        .clusters
        .iter()
        .find(|c| c.cluster_name == name)
        .cloned()
        .ok_or_else(|| {
            EcsError::new(
                "ClusterNotFoundException",
                format!("Cluster not found: {reference}"),
            )
        })
}

pub(crate) fn cluster_pub(inner: &Inner, reference: Option<&str>) -> Result<Cluster, EcsError> {
    cluster(inner, reference)
}

pub(crate) fn find_td_pub(inner: &Inner, reference: &str) -> Result<TaskDefinition, EcsError> {
    find_td(inner, reference)
}

/// How many of `tasks` are RUNNING and how many PENDING (PROVISIONING counted as
/// PENDING, as ECS's counts do).
pub(crate) fn running_pending<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> (usize, usize) {
    let (mut running, mut pending) = (0, 0);
    for t in tasks {
        match t.last_status.as_str() {
            "RUNNING" => running += 1,
            "PENDING" | "PROVISIONING" => pending += 1,
            _ => {}
        }
    }
    (running, pending)
}

fn cluster_json(inner: &Inner, c: &Cluster) -> Value {
    let state = inner.state.lock();
    let mine = state.tasks.iter().filter(|t| t.cluster_arn == c.cluster_arn);
    let (running, pending) = running_pending(mine);
    json!({
        "clusterArn": c.cluster_arn, "clusterName": c.cluster_name, "status": "ACTIVE",
        "registeredContainerInstancesCount": 1, "runningTasksCount": running,
        "pendingTasksCount": pending, "activeServicesCount": state.services.iter().filter(|s| s.cluster_arn == c.cluster_arn && s.status == "ACTIVE").count(),
        "statistics": [], "tags": [], "settings": [], "capacityProviders": [],
        "defaultCapacityProviderStrategy": [],
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct CreateClusterInput {
    cluster_name: Option<String>,
}

fn create_cluster(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    let input: CreateClusterInput = parse(input)?;
    let name = input.cluster_name.unwrap_or_else(|| DEFAULT_CLUSTER.into());
    if name.is_empty()
        || name.len() > 255
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(EcsError::invalid(format!(
            "clusterName `{name}` is invalid: up to 255 letters, numbers, hyphens and underscores"
        )));
    }
    // Creating a cluster that exists answers it, as ECS does.
    let c = match cluster(inner, Some(&name)) {
        Ok(c) => c,
        Err(_) => {
            let c = Cluster {
                cluster_arn: cluster_arn(inner, &name),
                cluster_name: name,
            };
            inner.state.lock().clusters.push(c.clone());
            inner.save();
            c
        }
    };
    Ok(json!({ "cluster": cluster_json(inner, &c) }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DescribeClustersInput {
    clusters: Vec<String>,
}

fn describe_clusters(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    let input: DescribeClustersInput = parse(input)?;
    let wanted = if input.clusters.is_empty() {
        vec![DEFAULT_CLUSTER.to_owned()]
    } else {
        input.clusters
    };
    let (mut found, mut failures) = (Vec::new(), Vec::new());
    for w in wanted {
        match cluster(inner, Some(&w)) {
            Ok(c) => found.push(cluster_json(inner, &c)),
            Err(_) => {
                let arn = if w.starts_with("arn:") {
                    w.clone()
                } else {
                    cluster_arn(inner, &w)
                };
                failures.push(json!({ "arn": arn, "reason": "MISSING" }));
            }
        }
    }
    Ok(json!({ "clusters": found, "failures": failures }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Page {
    next_token: Option<String>,
    max_results: Option<usize>,
}

/// One page of `items` and the token of the next.
pub(crate) fn page(items: Vec<String>, p: &Page) -> Result<(Vec<String>, Option<String>), EcsError> {
    let start = match &p.next_token {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| EcsError::invalid(format!("nextToken `{t}` is not one this hostalb gave")))?,
    };
    let size = p.max_results.unwrap_or(DEFAULT_PAGE);
    if size == 0 || size > DEFAULT_PAGE {
        return Err(EcsError::invalid(format!(
            "maxResults must be 1 to {DEFAULT_PAGE}"
        )));
    }
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((
        items.get(start..end).map(<[String]>::to_vec).unwrap_or_default(),
        next,
    ))
}

fn list_clusters(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    let p: Page = parse(input)?;
    let mut arns = vec![cluster_arn(inner, DEFAULT_CLUSTER)];
    arns.extend(inner.state.lock().clusters.iter().map(|c| c.cluster_arn.clone()));
    let (arns, next) = page(arns, &p)?;
    Ok(json!({ "clusterArns": arns, "nextToken": next }))
}

fn td_arn(inner: &Inner, family: &str, revision: u32) -> String {
    format!("{}:task-definition/{family}:{revision}", prefix(inner))
}

fn register(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    let mut td: TaskDefinition = parse(input)?;
    validate::task_definition(&td)?;
    let mut state = inner.state.lock();
    let revision = state
        .task_definitions
        .iter()
        .filter(|d| d.family == td.family)
        .filter_map(|d| d.revision)
        .max()
        .unwrap_or(0)
        + 1;
    td.revision = Some(revision);
    td.task_definition_arn = Some(td_arn(inner, &td.family, revision));
    td.status = Some("ACTIVE".into());
    td.network_mode.get_or_insert_with(|| "bridge".into());
    td.registered_at = Some(now());
    td.other.clear();
    let awsvpc = td.mode() == crate::model::NetworkMode::Awsvpc;
    for c in &mut td.container_definitions {
        c.other.clear();
        // awsvpc: ECS fills hostPort with the containerPort (the only value it takes).
        for m in c.port_mappings.iter_mut().filter(|_| awsvpc) {
            m.host_port = m.container_port;
        }
    }
    state.task_definitions.push(td.clone());
    drop(state);
    inner.save();
    Ok(json!({ "taskDefinition": td_json(&td), "tags": [] }))
}

fn td_json(td: &TaskDefinition) -> Value {
    let mut v = serde_json::to_value(td).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("compatibilities".into(), json!(["EC2"]));
    }
    v
}

/// The task definition a reference names: `family` (its latest ACTIVE revision),
/// `family:revision` or an ARN.
fn find_td(inner: &Inner, reference: &str) -> Result<TaskDefinition, EcsError> {
    let tail = reference
        .rsplit_once(":task-definition/")
        .map_or(reference, |(_, t)| t);
    let state = inner.state.lock();
    let found = match tail.split_once(':') {
        Some((family, rev)) => {
            let rev: u32 = rev.parse().map_err(|_| {
                EcsError::client(format!(
                    "task definition `{reference}`: revision `{rev}` is not a number"
                ))
            })?;
            state
                .task_definitions
                .iter()
                .find(|d| d.family == family && d.revision == Some(rev))
        }
        None => state
            .task_definitions
            .iter()
            .filter(|d| d.family == tail && d.status.as_deref() == Some("ACTIVE"))
            .max_by_key(|d| d.revision),
    };
    found.cloned().ok_or_else(|| {
        EcsError::client(format!(
            "Unable to describe task definition: `{reference}` is not registered"
        ))
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TdInput {
    task_definition: String,
}

fn describe_task_definition(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    let input: TdInput = parse(input)?;
    let td = find_td(inner, &input.task_definition)?;
    Ok(json!({ "taskDefinition": td_json(&td), "tags": [] }))
}

fn deregister(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    let input: TdInput = parse(input)?;
    let tail = input
        .task_definition
        .rsplit_once(":task-definition/")
        .map_or(input.task_definition.as_str(), |(_, t)| t);
    if !tail.contains(':') {
        return Err(EcsError::client(
            "DeregisterTaskDefinition needs family:revision or the full ARN (a revision is required)",
        ));
    }
    let td = find_td(inner, &input.task_definition)?;
    let mut out = td.clone();
    {
        let mut state = inner.state.lock();
        if let Some(d) = state
            .task_definitions
            .iter_mut()
            .find(|d| d.task_definition_arn == td.task_definition_arn)
        {
            d.status = Some("INACTIVE".into());
            d.deregistered_at.get_or_insert_with(now);
            out = d.clone();
        }
    }
    inner.save();
    Ok(json!({ "taskDefinition": td_json(&out) }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ListTdInput {
    family_prefix: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    #[serde(flatten)]
    page: Page,
}

fn list_task_definitions(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    let input: ListTdInput = parse(input)?;
    let status = input.status.unwrap_or_else(|| "ACTIVE".into());
    let mut tds: Vec<(String, u32, String)> = inner
        .state
        .lock()
        .task_definitions
        .iter()
        .filter(|d| {
            input
                .family_prefix
                .as_deref()
                .is_none_or(|p| d.family.starts_with(p))
        })
        .filter(|d| status == "ALL" || d.status.as_deref() == Some(status.as_str()))
        .map(|d| {
            (
                d.family.clone(),
                d.revision.unwrap_or(0),
                d.task_definition_arn.clone().unwrap_or_default(),
            )
        })
        .collect();
    tds.sort();
    if input.sort.as_deref() == Some("DESC") {
        tds.reverse();
    }
    let (arns, next) = page(tds.into_iter().map(|t| t.2).collect(), &input.page)?;
    Ok(json!({ "taskDefinitionArns": arns, "nextToken": next }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RunTaskInput {
    cluster: Option<String>,
    task_definition: String,
    count: Option<u32>,
    started_by: Option<String>,
    group: Option<String>,
    launch_type: Option<String>,
    overrides: Option<Value>,
    network_configuration: Option<Value>,
}

fn run_task(inner: &Arc<Inner>, input: Value) -> Result<Value, EcsError> {
    let input: RunTaskInput = parse(input)?;
    let cl = cluster(inner, input.cluster.as_deref())?;
    if input.task_definition.is_empty() {
        return Err(EcsError::invalid("taskDefinition is required"));
    }
    let td = find_td(inner, &input.task_definition)?;
    if td.status.as_deref() != Some("ACTIVE") {
        return Err(EcsError::client(format!(
            "TaskDefinition is inactive: {} was deregistered",
            td.task_definition_arn.as_deref().unwrap_or_default()
        )));
    }
    crate::network::check_configuration(td.mode(), input.network_configuration.as_ref())?;
    let count = input.count.unwrap_or(1);
    if count == 0 || count > MAX_RUN_COUNT {
        return Err(EcsError::invalid(format!(
            "count must be 1 to {MAX_RUN_COUNT}, not {count}"
        )));
    }
    if input.overrides.as_ref().is_some_and(|o| {
        o.as_object()
            .is_some_and(|m| m.values().any(|v| !v.is_null() && v != &json!([])))
    }) {
        return Err(EcsError::client(
            "RunTask overrides are not supported by hostalb yet: register a task definition revision with the change",
        ));
    }
    if let Some(lt) = input.launch_type.as_deref()
        && lt != "EC2"
    {
        return Err(EcsError::invalid(format!(
            "launchType {lt} is not served here: tasks run on this host's Docker engine as EC2 tasks do"
        )));
    }
    let group = input
        .group
        .clone()
        .unwrap_or_else(|| format!("family:{}", td.family));
    let tasks = launch(inner, &cl, &td, count, group, input.started_by.clone());
    Ok(json!({ "tasks": tasks.iter().map(task_json).collect::<Vec<_>>(), "failures": [] }))
}

/// Records `count` new tasks of `td` (PENDING) and starts their drivers.
pub(crate) fn launch(
    inner: &Arc<Inner>,
    cl: &Cluster,
    td: &TaskDefinition,
    count: u32,
    group: String,
    started_by: Option<String>,
) -> Vec<Task> {
    let family = td.family.clone();
    let revision = td.revision.unwrap_or(1);
    let mut tasks = Vec::new();
    {
        let mut state = inner.state.lock();
        let kept = crate::STOPPED_TASK_KEPT.as_secs_f64();
        let t_now = now();
        state
            .tasks
            .retain(|t| t.last_status != "STOPPED" || t.stopped_at.is_none_or(|s| t_now - s < kept));
        for _ in 0..count {
            let id = random_hex(16);
            let task_arn = format!("{}:task/{}/{id}", prefix(inner), cl.cluster_name);
            let containers = td
                .container_definitions
                .iter()
                .map(|c| Container {
                    container_arn: format!(
                        "{}:container/{}/{id}/{}",
                        prefix(inner),
                        cl.cluster_name,
                        random_hex(16)
                    ),
                    task_arn: task_arn.clone(),
                    name: c.name.clone(),
                    image: c.image.clone(),
                    last_status: "PENDING".into(),
                    health_status: "UNKNOWN".into(),
                    essential: c.is_essential(),
                    docker_name: format!("ecs-{family}-{revision}-{}-{}", c.name, random_hex(10)),
                    ..Container::default()
                })
                .collect();
            let task = Task {
                task_arn,
                cluster_arn: cl.cluster_arn.clone(),
                task_definition_arn: td.task_definition_arn.clone().unwrap_or_default(),
                containers,
                last_status: "PENDING".into(),
                desired_status: "RUNNING".into(),
                launch_type: "EC2".into(),
                group: group.clone(),
                started_by: started_by.clone(),
                created_at: t_now,
                health_status: "UNKNOWN".into(),
                version: 1,
                volumes: crate::volumes::plan(td, || random_hex(10)),
                ..Task::default()
            };
            state.tasks.push(task.clone());
            tasks.push(task);
        }
    }
    inner.save();
    for t in &tasks {
        driver::spawn(inner, t.task_arn.clone(), td.clone(), Phase::Start);
    }
    tasks
}

/// A task as ECS answers it (the Docker name is not an ECS member).
pub(crate) fn task_json(t: &Task) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("registered");
        m.remove("volumes");
        m.remove("pauseContainer");
    }
    if let Some(cs) = v.get_mut("containers").and_then(Value::as_array_mut) {
        for c in cs {
            if let Value::Object(m) = c {
                m.remove("dockerName");
                m.remove("essential");
            }
        }
    }
    v
}

/// The task a reference names (ARN or id) in a cluster.
fn find_task(inner: &Inner, cl: &Cluster, reference: &str) -> Option<Task> {
    let id = reference.rsplit('/').next().unwrap_or(reference);
    inner
        .state
        .lock()
        .tasks
        .iter()
        .find(|t| {
            t.cluster_arn == cl.cluster_arn
                && (t.task_arn == reference || t.task_arn.ends_with(&format!("/{id}")))
        })
        .cloned()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct StopTaskInput {
    cluster: Option<String>,
    task: String,
    reason: Option<String>,
}

fn stop_task(inner: &Arc<Inner>, input: Value) -> Result<Value, EcsError> {
    let input: StopTaskInput = parse(input)?;
    let cl = cluster(inner, input.cluster.as_deref())?;
    let Some(t) = find_task(inner, &cl, &input.task) else {
        return Err(EcsError::invalid(format!(
            "The referenced task was not found: {}",
            input.task
        )));
    };
    let reason = input
        .reason
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "Task stopped by user".into());
    if t.last_status != "STOPPED" {
        {
            let mut state = inner.state.lock();
            if let Some(x) = state.tasks.iter_mut().find(|x| x.task_arn == t.task_arn) {
                x.desired_status = "STOPPED".into();
                x.stopped_reason.get_or_insert_with(|| reason.clone());
                x.stop_code.get_or_insert_with(|| "UserInitiated".into());
                x.version += 1;
            }
        }
        inner.save();
        driver::request_stop(
            inner,
            &t.task_arn,
            Stop {
                code: "UserInitiated",
                reason,
            },
        );
    }
    let now = find_task(inner, &cl, &t.task_arn).unwrap_or(t);
    Ok(json!({ "task": task_json(&now) }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ListTasksInput {
    cluster: Option<String>,
    family: Option<String>,
    started_by: Option<String>,
    desired_status: Option<String>,
    service_name: Option<String>,
    #[serde(flatten)]
    page: Page,
}

fn list_tasks(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    let input: ListTasksInput = parse(input)?;
    let cl = cluster(inner, input.cluster.as_deref())?;
    let service_group = input
        .service_name
        .as_deref()
        .map(|s| crate::services::group(s.rsplit('/').next().unwrap_or(s)));
    let desired = input.desired_status.unwrap_or_else(|| "RUNNING".into());
    let family_of = |t: &Task| hostalb_aws::ecs::task_definition_family(&t.task_definition_arn).to_owned();
    let arns: Vec<String> = inner
        .state
        .lock()
        .tasks
        .iter()
        .filter(|t| t.cluster_arn == cl.cluster_arn && t.desired_status == desired)
        .filter(|t| input.family.as_deref().is_none_or(|f| family_of(t) == f))
        .filter(|t| input.started_by.is_none() || t.started_by == input.started_by)
        .filter(|t| service_group.as_ref().is_none_or(|g| &t.group == g))
        .map(|t| t.task_arn.clone())
        .collect();
    let (arns, next) = page(arns, &input.page)?;
    Ok(json!({ "taskArns": arns, "nextToken": next }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DescribeTasksInput {
    cluster: Option<String>,
    tasks: Vec<String>,
}

fn describe_tasks(inner: &Inner, input: Value) -> Result<Value, EcsError> {
    let input: DescribeTasksInput = parse(input)?;
    let cl = cluster(inner, input.cluster.as_deref())?;
    if input.tasks.is_empty() {
        return Err(EcsError::invalid("Tasks cannot be empty."));
    }
    Ok(described("tasks", &input.tasks, |r| {
        find_task(inner, &cl, r).map(|t| task_json(&t))
    }))
}

/// A Describe* answer: under `key` what `find` found of `wanted`, under `failures` the
/// rest as MISSING, each named as it was asked for (as ECS answers).
pub(crate) fn described(key: &str, wanted: &[String], mut find: impl FnMut(&str) -> Option<Value>) -> Value {
    let (mut found, mut failures) = (Vec::new(), Vec::new());
    for w in wanted {
        match find(w) {
            Some(v) => found.push(v),
            None => failures.push(json!({ "arn": w, "reason": "MISSING" })),
        }
    }
    json!({ key: found, "failures": failures })
}

#[cfg(test)]
mod known_tests {
    use super::*;

    #[test]
    fn only_names_that_are_no_ecs_operation_are_unknown() {
        for op in SERVED.iter().chain(UNSUPPORTED) {
            assert!(unknown(op).is_none(), "{op}");
        }
        assert_eq!(
            unknown("FlyToTheMoon").map(|e| e.code),
            Some("UnknownOperationException")
        );
    }

    /// Every name `call` dispatches is in SERVED (else it would be answered as unknown
    /// before reaching its handler), read from this file's own match arms.
    #[test]
    fn every_dispatched_operation_is_listed_as_served() {
        let source = include_str!("ops.rs");
        let body = source
            .split_once("match op {")
            .and_then(|(_, rest)| rest.split_once("_ if UNSUPPORTED"))
            .map(|(arms, _)| arms)
            .unwrap_or_default();
        let arms: Vec<&str> = body
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split_once('"').map(|(name, _)| name))
            .collect();
        assert!(arms.len() >= SERVED.len(), "{arms:?}");
        for op in &arms {
            assert!(SERVED.contains(op), "{op} is dispatched but not in SERVED");
        }
        for op in SERVED {
            assert!(arms.contains(op), "{op} is in SERVED but not dispatched");
        }
    }
}
