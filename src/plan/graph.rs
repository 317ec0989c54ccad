//! The workflow as a graph (`drflow graph`): Mermaid `flowchart TD` (default) or Graphviz DOT.
//!
//! Steps are boxes in execution order from `start` to `end`. A `parallel` group forks into its branches and joins
//! after them; a `steps:` group is a small header node followed by its steps. A step with `when` has a decision in
//! front of it (`when CONDITION`): a dashed edge labelled `yes` enters the step, one labelled `no` goes on past it.
//! `on_failure: {goto: X}` is a red edge labelled `on failure`. `finally` steps sit in a subgraph (a cluster in DOT)
//! that the main steps lead into.

use std::collections::HashMap;

use crate::workflow::{OnFailure, Step, StepKind, Workflow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mermaid,
    Dot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Terminal,
    Step,
    Fork,
    Join,
    Group,
    Decision,
}

#[derive(Debug)]
struct Node {
    id: String,
    lines: Vec<String>,
    shape: Shape,
    finally: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Style {
    Normal,
    Condition,
    Failure,
}

#[derive(Debug)]
struct Edge {
    from: String,
    to: String,
    label: Option<String>,
    style: Style,
}

/// Where control may leave a step: from a node, with a label and a style for the edge that follows.
type Exit = (String, Option<String>, Style);

#[derive(Default)]
struct Graph {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    /// Step id → the node that starts it.
    entry: HashMap<String, String>,
    /// (node, target step id) of `on_failure: goto`.
    gotos: Vec<(String, String)>,
}

/// The workflow's graph in `format`, ending with a newline.
pub fn render(wf: &Workflow, format: Format) -> String {
    let g = build(wf);
    match format {
        Format::Mermaid => mermaid(&g),
        Format::Dot => dot(&g, &wf.name),
    }
}

fn build(wf: &Workflow) -> Graph {
    let mut g = Graph::default();
    let start = g.node("run_start", vec!["start".into()], Shape::Terminal, false);
    let mut exits = g.sequence(&wf.steps, vec![(start, None, Style::Normal)], false);
    if !wf.finally.is_empty() {
        exits = g.sequence(&wf.finally, exits, true);
    }
    let end = g.node("run_end", vec!["end".into()], Shape::Terminal, false);
    g.connect(&exits, &end);
    for (from, target) in std::mem::take(&mut g.gotos) {
        if let Some(to) = g.entry.get(&target).cloned() {
            g.edges.push(Edge {
                from,
                to,
                label: Some("on failure".into()),
                style: Style::Failure,
            });
        }
    }
    g
}

impl Graph {
    fn node(&mut self, base: &str, lines: Vec<String>, shape: Shape, finally: bool) -> String {
        let clean: String = base
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut id = clean.clone();
        let mut n = 2;
        while self.nodes.iter().any(|x| x.id == id) {
            id = format!("{clean}_{n}");
            n += 1;
        }
        self.nodes.push(Node {
            id: id.clone(),
            lines,
            shape,
            finally,
        });
        id
    }

    fn connect(&mut self, incoming: &[Exit], to: &str) {
        for (from, label, style) in incoming {
            self.edges.push(Edge {
                from: from.clone(),
                to: to.to_string(),
                label: label.clone(),
                style: *style,
            });
        }
    }

    fn sequence(&mut self, steps: &[Step], mut incoming: Vec<Exit>, finally: bool) -> Vec<Exit> {
        for s in steps {
            incoming = self.step(s, incoming, finally);
        }
        incoming
    }

    fn step(&mut self, s: &Step, incoming: Vec<Exit>, finally: bool) -> Vec<Exit> {
        // A `when` is a decision in front of the step: "yes" enters it, "no" goes on past it.
        let (incoming, skip) = match s.when_text.as_deref() {
            Some(text) => {
                let lines = vec![format!("when {}", condition(text))];
                let decision = self.node(&format!("when_{}", s.id), lines, Shape::Decision, finally);
                self.connect(&incoming, &decision);
                (
                    vec![(decision.clone(), Some("yes".to_string()), Style::Condition)],
                    Some((decision, Some("no".to_string()), Style::Condition)),
                )
            }
            None => (incoming, None),
        };
        let mut note = Vec::new();
        if s.on_failure == OnFailure::Continue {
            note.push("continue on error".to_string());
        }
        let (entry, failure_from, mut exits) = match &s.kind {
            StepKind::Action(a) => {
                let mut lines = vec![s.id.clone(), a.action.name.to_string()];
                if let Some(r) = &a.region {
                    lines.push(format!("region: {r}"));
                }
                lines.extend(note);
                let id = self.node(&format!("step_{}", s.id), lines, Shape::Step, finally);
                self.connect(&incoming, &id);
                (id.clone(), id.clone(), vec![(id, None, Style::Normal)])
            }
            StepKind::Parallel(branches) => {
                let mut lines = vec![s.id.clone(), "parallel".to_string()];
                lines.extend(note);
                let fork = self.node(&format!("fork_{}", s.id), lines, Shape::Fork, finally);
                self.connect(&incoming, &fork);
                let mut ends = Vec::new();
                for b in branches {
                    ends.extend(self.step(b, vec![(fork.clone(), None, Style::Normal)], finally));
                }
                let join = self.node(&format!("join_{}", s.id), vec!["join".into()], Shape::Join, finally);
                self.connect(&ends, &join);
                (fork, join.clone(), vec![(join, None, Style::Normal)])
            }
            StepKind::ForEach(fe) => {
                let mut lines = vec![s.id.clone(), format!("for each item, {} at a time", fe.max_concurrency)];
                lines.extend(note);
                let head = self.node(&format!("each_{}", s.id), lines, Shape::Group, finally);
                self.connect(&incoming, &head);
                let ends = self.sequence(&fe.steps, vec![(head.clone(), None, Style::Normal)], finally);
                (head.clone(), head, ends)
            }
            StepKind::Sequence(children) => {
                let mut lines = vec![s.id.clone(), "steps".to_string()];
                lines.extend(note);
                let head = self.node(&format!("seq_{}", s.id), lines, Shape::Group, finally);
                self.connect(&incoming, &head);
                let ends = self.sequence(children, vec![(head.clone(), None, Style::Normal)], finally);
                (head.clone(), head, ends)
            }
        };
        // A route to this step arrives at its decision, if it has one.
        let entry = match &skip {
            Some((decision, ..)) => decision.clone(),
            None => entry,
        };
        self.entry.insert(s.id.clone(), entry);
        if let OnFailure::Goto(target) = &s.on_failure {
            self.gotos.push((failure_from, target.clone()));
        }
        exits.extend(skip);
        exits
    }
}

/// `${{ inputs.x }}` → `inputs.x`; anything else as written.
fn condition(text: &str) -> String {
    let t = text.trim();
    match t.strip_prefix("${{").and_then(|r| r.strip_suffix("}}")) {
        Some(inner) if !inner.contains("${{") => inner.trim().to_string(),
        _ => t.to_string(),
    }
}

fn mermaid(g: &Graph) -> String {
    let esc = |s: &str| s.replace('"', "#quot;");
    let node = |n: &Node| {
        let label = esc(&n.lines.join("<br/>"));
        match n.shape {
            Shape::Terminal => format!("{}([\"{label}\"])", n.id),
            Shape::Step => format!("{}[\"{label}\"]", n.id),
            Shape::Fork => format!("{}{{{{\"{label}\"}}}}", n.id),
            Shape::Join => format!("{}((\"{label}\"))", n.id),
            Shape::Group => format!("{}[[\"{label}\"]]", n.id),
            Shape::Decision => format!("{}{{\"{label}\"}}", n.id),
        }
    };
    let mut out = String::from("flowchart TD\n");
    for n in g.nodes.iter().filter(|n| !n.finally) {
        out.push_str(&format!("    {}\n", node(n)));
    }
    if g.nodes.iter().any(|n| n.finally) {
        out.push_str("    subgraph finally_steps [\"finally (always runs)\"]\n");
        for n in g.nodes.iter().filter(|n| n.finally) {
            out.push_str(&format!("        {}\n", node(n)));
        }
        out.push_str("    end\n");
    }
    let mut failures = Vec::new();
    for (i, e) in g.edges.iter().enumerate() {
        let arrow = match e.style {
            Style::Normal => "-->",
            Style::Condition => "-.->",
            Style::Failure => {
                failures.push(i.to_string());
                "-->"
            }
        };
        match &e.label {
            Some(l) => out.push_str(&format!("    {} {arrow}|\"{}\"| {}\n", e.from, esc(l), e.to)),
            None => out.push_str(&format!("    {} {arrow} {}\n", e.from, e.to)),
        }
    }
    if !failures.is_empty() {
        out.push_str(&format!(
            "    linkStyle {} stroke:#c33,color:#c33\n",
            failures.join(",")
        ));
    }
    out
}

fn dot(g: &Graph, name: &str) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let node = |n: &Node| {
        let label = n.lines.iter().map(|l| esc(l)).collect::<Vec<_>>().join("\\n");
        let shape = match n.shape {
            Shape::Terminal => ", shape=oval, style=\"\"",
            Shape::Step => "",
            Shape::Fork => ", shape=hexagon, style=\"\"",
            Shape::Join => ", shape=circle, style=\"\"",
            Shape::Group => ", shape=box, style=\"\"",
            Shape::Decision => ", shape=diamond, style=\"\"",
        };
        format!("{} [label=\"{label}\"{shape}];", n.id)
    };
    let mut out = format!("digraph \"{}\" {{\n", esc(name));
    out.push_str("    rankdir=TB;\n    node [shape=box, style=rounded];\n");
    for n in g.nodes.iter().filter(|n| !n.finally) {
        out.push_str(&format!("    {}\n", node(n)));
    }
    if g.nodes.iter().any(|n| n.finally) {
        out.push_str(
            "    subgraph cluster_finally {\n        label=\"finally (always runs)\";\n        style=dashed;\n",
        );
        for n in g.nodes.iter().filter(|n| n.finally) {
            out.push_str(&format!("        {}\n", node(n)));
        }
        out.push_str("    }\n");
    }
    for e in &g.edges {
        let mut attrs = Vec::new();
        match e.style {
            Style::Normal => {}
            Style::Condition => attrs.push("style=dashed".to_string()),
            Style::Failure => attrs.push("color=\"#cc3333\", fontcolor=\"#cc3333\"".to_string()),
        }
        if let Some(l) = &e.label {
            attrs.push(format!("label=\"{}\"", esc(l)));
        }
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attrs.join(", "))
        };
        out.push_str(&format!("    {} -> {}{attrs};\n", e.from, e.to));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{Source, parse};

    const YAML: &str = r#"
version: 1
name: g
inputs: {go: {type: bool, default: true}}
regions: {a: us-east-1}
steps:
  - id: first
    action: drflow.echo
    on_failure: {goto: cleanup}
  - id: both
    parallel:
      - id: left
        action: drflow.echo
      - id: right
        steps:
          - id: r1
            action: drflow.echo
            continue_on_error: true
  - id: maybe
    when: ${{ inputs.go && steps.first.status == "succeeded" }}
    action: drflow.echo
  - id: cleanup
    action: drflow.echo
finally:
  - id: report
    action: drflow.echo
"#;

    fn wf() -> Workflow {
        parse(
            Source::new(std::path::Path::new("g.yaml"), YAML.to_string()),
            crate::actions::catalog(),
        )
        .expect("valid")
    }

    #[test]
    fn mermaid_shows_forks_conditions_failures_and_finally() {
        let m = render(&wf(), Format::Mermaid);
        assert!(m.starts_with("flowchart TD\n"), "{m}");
        for needle in [
            "fork_both{{\"both<br/>parallel\"}}",
            "fork_both --> step_left",
            "fork_both --> seq_right",
            "step_left --> join_both",
            "step_r1 --> join_both",
            "when_maybe{\"when inputs.go && steps.first.status == #quot;succeeded#quot;\"}",
            "join_both --> when_maybe",
            "when_maybe -.->|\"yes\"| step_maybe",
            "when_maybe -.->|\"no\"| step_cleanup",
            "step_maybe --> step_cleanup",
            "step_first -->|\"on failure\"| step_cleanup",
            "subgraph finally_steps [\"finally (always runs)\"]\n        step_report",
            "step_cleanup --> step_report",
            "step_report --> run_end",
            "continue on error",
            "linkStyle 13 stroke:#c33",
        ] {
            assert!(m.contains(needle), "missing `{needle}` in\n{m}");
        }
    }

    #[test]
    fn dot_has_the_same_edges() {
        let d = render(&wf(), Format::Dot);
        assert!(d.starts_with("digraph \"g\" {\n"), "{d}");
        for needle in [
            "subgraph cluster_finally {",
            "step_first -> step_cleanup [color=\"#cc3333\", fontcolor=\"#cc3333\", label=\"on failure\"];",
            "when_maybe -> step_maybe [style=dashed, label=\"yes\"];",
            "when_maybe [label=\"when inputs.go && steps.first.status == \\\"succeeded\\\"\", shape=diamond, style=\"\"];",
            "fork_both [label=\"both\\nparallel\", shape=hexagon, style=\"\"];",
        ] {
            assert!(d.contains(needle), "missing `{needle}` in\n{d}");
        }
        assert!(d.ends_with("}\n"));
    }
}
