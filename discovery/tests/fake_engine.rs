//! Faults a real Docker engine cannot be made to show on demand, against a fake Engine
//! API on a unix socket: an event stream cut mid-way, events that never arrive (healed by
//! the periodic resync), an engine that is not there at start, stop signals versus other
//! signals. Everything else is tested against a real engine (tests/e2e).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hostalb_config::{DockerSelector, TargetType};
use hostalb_discovery::{Discovery, GroupSelector, Selection, Settings};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::UnixListener;
use tokio::sync::mpsc;

/// The fake engine's state: the containers it lists, and the open event streams.
#[derive(Default)]
struct Engine {
    containers: Vec<Value>,
    streams: Vec<mpsc::UnboundedSender<Bytes>>,
    list_calls: usize,
}

#[derive(Clone)]
struct Fake {
    engine: Arc<Mutex<Engine>>,
    socket: PathBuf,
    _dir: Arc<tempfile::TempDir>,
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        Fake {
            engine: Arc::default(),
            socket: dir.path().join("docker.sock"),
            _dir: Arc::new(dir),
        }
    }

    fn start(&self) -> tokio::task::JoinHandle<()> {
        let _ = std::fs::remove_file(&self.socket);
        let listener = UnixListener::bind(&self.socket).unwrap();
        let engine = self.engine.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let engine = engine.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let engine = engine.clone();
                        async move { Ok::<_, Infallible>(answer(&engine, &req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    }

    fn settings(&self, resync: Duration) -> Settings {
        Settings {
            endpoint: Some(format!("unix://{}", self.socket.display())),
            resync,
            selection: Selection {
                groups: vec![GroupSelector {
                    name: "web".into(),
                    docker: Some(DockerSelector {
                        labels: BTreeMap::from([("app".into(), "web".into())]),
                        container_port: Some(80),
                    }),
                    target_type: TargetType::Instance,
                }],
                host_address: IpAddr::from([127, 0, 0, 1]),
                create_label_groups: false,
            },
        }
    }

    fn add(&self, id: &str, host_port: u16) {
        self.engine
            .lock()
            .unwrap()
            .containers
            .push(container(id, host_port));
    }

    fn remove(&self, id: &str) {
        self.engine.lock().unwrap().containers.retain(|c| c["Id"] != id);
    }

    /// Sends an event to every open stream.
    fn event(&self, action: &str, id: &str, attributes: Value) {
        let line = json!({
            "Type": "container",
            "Action": action,
            "Actor": { "ID": id, "Attributes": attributes },
            "time": 0,
        });
        let bytes = Bytes::from(format!("{line}\n"));
        for s in &self.engine.lock().unwrap().streams {
            let _ = s.send(bytes.clone());
        }
    }

    /// Ends every open event stream (the engine cuts its subscribers).
    fn cut_streams(&self) {
        self.engine.lock().unwrap().streams.clear();
    }

    fn list_calls(&self) -> usize {
        self.engine.lock().unwrap().list_calls
    }
}

fn container(id: &str, host_port: u16) -> Value {
    json!({
        "Id": id,
        "Names": [format!("/{id}")],
        "State": "running",
        "Status": "Up 1 second",
        "Labels": { "app": "web" },
        "Ports": [{ "IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": host_port, "Type": "tcp" }],
        "NetworkSettings": { "Networks": { "bridge": { "IPAddress": "172.17.0.9" } } },
    })
}

fn answer(engine: &Arc<Mutex<Engine>>, req: &Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let json_body = |v: Value| {
        Full::new(Bytes::from(v.to_string()))
            .map_err(|e| match e {})
            .boxed()
    };
    if path.ends_with("/_ping") {
        return Response::new(
            Full::new(Bytes::from_static(b"OK"))
                .map_err(|e| match e {})
                .boxed(),
        );
    }
    if path.ends_with("/version") {
        return Response::new(json_body(
            json!({ "ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.0" }),
        ));
    }
    if path.ends_with("/containers/json") {
        let mut e = engine.lock().unwrap();
        e.list_calls += 1;
        let query = req.uri().query().unwrap_or_default().to_owned();
        let list: Vec<Value> = e
            .containers
            .iter()
            .filter(|c| {
                // A filtered list by id (one container after an event).
                let id = c["Id"].as_str().unwrap_or_default();
                !query.contains("filters") || query.contains(id)
            })
            .cloned()
            .collect();
        return Response::new(json_body(Value::Array(list)));
    }
    if path.ends_with("/events") {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        engine.lock().unwrap().streams.push(tx);
        let stream = futures_stream(rx);
        return Response::new(StreamBody::new(stream).boxed());
    }
    let mut r = Response::new(json_body(json!({ "message": format!("no route {path}") })));
    *r.status_mut() = hyper::StatusCode::NOT_FOUND;
    r
}

/// The event lines of one subscriber, as a body stream that ends when the engine drops
/// the sender (cuts the stream).
fn futures_stream(
    rx: mpsc::UnboundedReceiver<Bytes>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
    })
}

fn web(discovery: &Discovery) -> Vec<String> {
    discovery
        .desired()
        .borrow()
        .registrations
        .get("web")
        .map(|v| v.iter().map(|f| f.address.to_string()).collect())
        .unwrap_or_default()
}

/// Waits (bounded) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn lists_at_start_and_follows_start_and_die_events() {
    let fake = Fake::new();
    fake.add("a", 40001);
    let _server = fake.start();
    let d = Discovery::spawn(fake.settings(Duration::from_secs(3600)));
    until("the listed container is registered", || {
        web(&d) == ["127.0.0.1:40001"]
    })
    .await;
    fake.add("b", 40002);
    fake.event("start", "b", json!({}));
    until("a started container is registered", || web(&d).len() == 2).await;
    fake.remove("a");
    fake.event("die", "a", json!({ "exitCode": "0" }));
    until("a dead container is gone", || web(&d) == ["127.0.0.1:40002"]).await;
}

#[tokio::test]
async fn a_stop_signal_removes_the_target_at_once_other_signals_do_not() {
    let fake = Fake::new();
    fake.add("a", 40011);
    fake.add("b", 40012);
    let _server = fake.start();
    let d = Discovery::spawn(fake.settings(Duration::from_secs(3600)));
    until("both registered", || web(&d).len() == 2).await;
    // A log-rotation HUP is not a stop.
    fake.event("kill", "a", json!({ "signal": "1" }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(web(&d).len(), 2, "SIGHUP must not deregister");
    // SIGTERM: out of rotation before the process exits (the container is still listed
    // as running by the engine).
    fake.event("kill", "a", json!({ "signal": "15" }));
    until("the stopping container is out", || web(&d) == ["127.0.0.1:40012"]).await;
    assert!(
        fake.engine
            .lock()
            .unwrap()
            .containers
            .iter()
            .any(|c| c["Id"] == "a")
    );
}

#[tokio::test]
async fn a_cut_event_stream_reconnects_keeps_registrations_and_resyncs() {
    let fake = Fake::new();
    fake.add("a", 40021);
    let _server = fake.start();
    let d = Discovery::spawn(fake.settings(Duration::from_secs(3600)));
    until("registered", || web(&d) == ["127.0.0.1:40021"]).await;
    let lists_before = fake.list_calls();
    // Meanwhile a container came and the event was never delivered; then the stream is cut.
    fake.add("b", 40022);
    fake.cut_streams();
    until("reconnected and re-listed", || d.status().borrow().connects >= 2).await;
    assert!(
        fake.list_calls() > lists_before,
        "a reconnect lists everything again"
    );
    until("the missed container is found by the re-list", || {
        web(&d).len() == 2
    })
    .await;
}

#[tokio::test]
async fn lost_events_are_healed_by_the_periodic_resync() {
    let fake = Fake::new();
    fake.add("a", 40031);
    let _server = fake.start();
    let d = Discovery::spawn(fake.settings(Duration::from_millis(300)));
    until("registered", || web(&d) == ["127.0.0.1:40031"]).await;
    // No event at all for these two changes.
    fake.add("b", 40032);
    fake.remove("a");
    until("the resync converged", || web(&d) == ["127.0.0.1:40032"]).await;
    assert!(d.status().borrow().syncs >= 2);
}

#[tokio::test]
async fn an_engine_that_appears_later_is_found_and_one_that_leaves_keeps_the_registrations() {
    let fake = Fake::new();
    fake.add("a", 40041);
    let d = Discovery::spawn(fake.settings(Duration::from_secs(3600)));
    until("the first attempt failed", || {
        d.status().borrow().last_error.is_some()
    })
    .await;
    assert!(web(&d).is_empty());
    let server = fake.start();
    until("connected once the engine answers", || {
        web(&d) == ["127.0.0.1:40041"]
    })
    .await;
    // The engine goes away: the registrations stay while it is unreachable.
    server.abort();
    fake.cut_streams();
    let _ = std::fs::remove_file(&fake.socket);
    until("disconnected", || !d.status().borrow().connected).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(web(&d), ["127.0.0.1:40041"], "last known registrations are kept");
    // It comes back with a different container set: reconciled.
    fake.remove("a");
    fake.add("b", 40042);
    let _server = fake.start();
    until("reconnected and reconciled", || web(&d) == ["127.0.0.1:40042"]).await;
}
