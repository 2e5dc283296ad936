use hostalb_testkit::{Backend, Client};

use crate::common::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_to_a_static_target() {
    let backend = Backend::start("a").await;
    let alb = start(&format!(
        r#"
[[listener]]
name = "web"
address = "127.0.0.1:0"
default_action = {{ type = "forward", target_group = "app" }}

[target_group.app]
targets = ["{}"]
health_check = {{ enabled = false }}
"#,
        backend.addr()
    ))
    .await;
    let resp = Client::new().get(&alb.url("web", "/hello?x=1")).await.unwrap();
    assert_eq!(resp.status, 200);
    let reply = resp.reply().unwrap();
    assert_eq!(reply.backend, "a");
    assert_eq!(reply.target, "/hello?x=1");
    assert_eq!(reply.header("x-forwarded-for"), Some("127.0.0.1"));
}
