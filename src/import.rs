//! `hostalb import FILE... [-o hostalb.toml]`: a configuration from the JSON the AWS CLI
//! prints (`aws elbv2 describe-*`, `aws ecs describe-services`, `aws ecs
//! describe-task-definition`). The work is hostalb-aws's; this reads the files, writes the
//! result, checks it as `hostalb check` would, and lists on stderr what could not be
//! carried over.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use hostalb_aws::import::{Input, import};
use hostalb_config::Severity;

/// Runs the subcommand. `files` are `FILE` or `NAME_OR_ARN=FILE` (attributes outputs); a
/// directory stands for the `.json` files in it.
pub(crate) fn run(files: &[String], output: Option<&Path>) -> ExitCode {
    let mut inputs = Vec::new();
    for arg in files {
        let (name, path) = split_argument(arg);
        let paths = match expand(&path) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("hostalb import: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        for p in paths {
            match std::fs::read_to_string(&p) {
                Ok(text) => inputs.push(Input {
                    origin: p.display().to_string(),
                    name: name.clone(),
                    text,
                }),
                Err(e) => {
                    eprintln!("hostalb import: cannot read {}: {e}", p.display());
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let imported = match import(&inputs) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("hostalb import: {e}");
            return ExitCode::FAILURE;
        }
    };
    for note in &imported.notes {
        eprintln!("hostalb import: note: {note}");
    }
    let origin = output.map_or_else(|| "(standard output)".to_owned(), |p| p.display().to_string());
    // What `hostalb check` would say of the result, before it is written.
    match hostalb_config::parse(&imported.toml, hostalb_config::Format::Toml, &origin) {
        Ok(loaded) => {
            for p in loaded.warnings.iter().filter(|p| p.severity == Severity::Warning) {
                eprintln!("hostalb import: {origin}: {p}");
            }
        }
        Err(e) => {
            for p in e.problems() {
                eprintln!("hostalb import: {origin}: {p}");
            }
            eprintln!(
                "hostalb import: the result does not pass `hostalb check`; it is written all the same, to be fixed by hand"
            );
        }
    }
    match output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &imported.toml) {
                eprintln!("hostalb import: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            eprintln!("hostalb import: wrote {}", path.display());
        }
        None => print!("{}", imported.toml),
    }
    ExitCode::SUCCESS
}

/// `NAME_OR_ARN=FILE` or `FILE`. An ARN holds no `=`, and neither do target group names; a
/// path that exists as written is a file even with an `=` in it.
fn split_argument(arg: &str) -> (Option<String>, PathBuf) {
    if Path::new(arg).exists() {
        return (None, PathBuf::from(arg));
    }
    match arg.split_once('=') {
        Some((name, file)) if !name.is_empty() => (Some(name.to_owned()), PathBuf::from(file)),
        _ => (None, PathBuf::from(arg)),
    }
}

/// A file as itself; a directory as its `.json` files, in name order.
fn expand(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    Ok(files)
}
