//! The configuration text: listeners with their rules, then target groups, each with a
//! comment naming the ARN it comes from.

use super::Described;
use super::groups::Groups;
use super::listeners::OutListener;
use super::toml_out::{Tv, comment, key, members};
use crate::ecs::labels;

pub(crate) fn render(d: &Described, listeners: &[OutListener], groups: &Groups) -> String {
    let mut out = String::new();
    comment(&mut out, "Imported by `hostalb import` from:");
    for o in &d.origins {
        comment(&mut out, &format!("  {o}"));
    }
    for lb in &d.load_balancers {
        comment(
            &mut out,
            &format!(
                "Load balancer `{}`: {}",
                lb.load_balancer_name, lb.load_balancer_arn
            ),
        );
    }
    for l in listeners {
        out.push_str("\n[[listener]]\n");
        comment(&mut out, &l.source);
        members(&mut out, &l.members);
        if let Some(a) = &l.default_action {
            members(&mut out, &[("default_action".to_owned(), a.clone())]);
        }
        for r in &l.rules {
            out.push_str("\n[[listener.rule]]\n");
            comment(&mut out, &r.source);
            out.push_str(&format!("priority = {}\n", r.priority));
            out.push_str("conditions = [\n");
            for c in &r.conditions {
                out.push_str(&format!("  {},\n", c.inline()));
            }
            out.push_str("]\n");
            if !r.transforms.is_empty() {
                out.push_str("transforms = [\n");
                for t in &r.transforms {
                    out.push_str(&format!("  {},\n", t.inline()));
                }
                out.push_str("]\n");
            }
            members(&mut out, &[("action".to_owned(), r.action.clone())]);
        }
    }
    for g in &groups.list {
        let table = format!("target_group.{}", key(&g.name));
        out.push_str(&format!("\n[{table}]\n"));
        comment(&mut out, &g.source);
        members(&mut out, &g.members);
        if !g.health_check.is_empty() {
            out.push_str(&format!("\n[{table}.health_check]\n"));
            members(&mut out, &g.health_check);
        }
        if let Some(s) = &g.docker {
            out.push_str(&format!("\n[{table}.docker]\n"));
            comment(
                &mut out,
                &format!(
                    "ECS service `{}`: the containers the ECS agent starts for it carry {} and {}",
                    s.service,
                    labels::TASK_DEFINITION_FAMILY,
                    labels::CONTAINER_NAME
                ),
            );
            let labels = Tv::Table(s.labels.iter().map(|(k, v)| (k.clone(), Tv::str(v))).collect());
            members(
                &mut out,
                &[
                    ("labels".to_owned(), labels),
                    ("container_port".to_owned(), Tv::Int(i64::from(s.container_port))),
                ],
            );
        }
    }
    out
}
