//! Commands that look at workflows without running them: validate, schema, actions.

use std::path::PathBuf;

use crate::actions;
use crate::error::Error;
use crate::workflow;

pub fn validate(files: &[PathBuf]) -> Result<u8, Error> {
    let mut all = Vec::new();
    for f in files {
        match workflow::load(f, actions::catalog()) {
            Ok(wf) => {
                crate::error::print_warnings(&wf.warnings);
                let warned = match wf.warnings.len() {
                    0 => String::new(),
                    n => format!(", {n} warning(s)"),
                };
                println!("{}: ok ({} steps{warned})", f.display(), wf.all_steps().len());
            }
            Err(workflow::LoadError::Invalid(problems)) => all.extend(problems),
            Err(e) => return Err(e.into()),
        }
    }
    if all.is_empty() {
        Ok(0)
    } else {
        Err(Error::Invalid {
            file: String::new(),
            problems: all,
        })
    }
}

pub fn schema() -> Result<u8, Error> {
    println!(
        "{}",
        serde_json::to_string_pretty(&workflow::json_schema()).expect("JSON")
    );
    Ok(0)
}

pub fn actions() -> Result<u8, Error> {
    for action in actions::all() {
        let a = action.spec();
        let kind = if action.mutates() {
            "changes things"
        } else {
            "read-only"
        };
        println!("{}  ({kind})\n  {}", a.name, a.summary);
        for i in a.inputs {
            let req = if i.required { "required" } else { "optional" };
            println!(
                "    with.{:<20} {:<7} {req}: {}",
                i.name,
                i.kind.as_str(),
                i.description
            );
        }
        for o in a.outputs {
            println!("    outputs.{:<17} {}", o.name, o.description);
        }
        let iam: Vec<&str> = a.calls.iter().chain(a.extra_iam).copied().collect();
        if !iam.is_empty() {
            println!("    iam: {}", iam.join(", "));
        }
        println!();
    }
    Ok(0)
}
