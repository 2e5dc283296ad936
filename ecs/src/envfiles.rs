//! `environmentFiles`: on AWS the agent downloads each S3 object; here no S3 is reachable,
//! so an environment file is a local file, named by an absolute path or a `file://` URL.
//! The files are read when the task starts, in ECS's `.env` format: `VAR=VALUE` lines,
//! blank lines and lines starting with `#` skipped, the value taken as written (no quotes
//! removed, no variables expanded). As the agent merges them: a variable of `environment`
//! wins over the files, and an earlier file wins over a later one.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::model::ContainerDefinition;

/// The one `type` ECS has.
pub const S3: &str = "s3";
/// ECS's limit on environment files per container.
pub const MAX_FILES: usize = 10;

/// The local file an environment file's `value` names, or why it names none.
pub fn local_path(value: &str) -> Result<PathBuf, String> {
    let path = value.strip_prefix("file://").unwrap_or(value);
    if value.starts_with("arn:") || value.starts_with("s3://") {
        return Err(format!(
            "environment file `{value}` is in S3, which hostalb cannot reach: download it (aws s3 cp) and give its local path, /abs/path.env or file:///abs/path.env"
        ));
    }
    if !path.starts_with('/') {
        return Err(format!(
            "environment file `{value}` must be an absolute local path or a file:// URL (hostalb reads it when the task starts)"
        ));
    }
    Ok(PathBuf::from(path))
}

/// The variables of one file, in order (a later line of the same file wins, as in a map).
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#')
        })
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The container's environment as Docker's `KEY=VALUE` list: `environment` first, then
/// each file's variables not set before (`files`: each file's content, in order).
pub fn merge(c: &ContainerDefinition, files: &[String]) -> Vec<String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for e in &c.environment {
        seen.insert(e.name.clone());
        out.push(format!("{}={}", e.name, e.value));
    }
    for text in files {
        let vars = parse(text);
        let mut this_file: Vec<(String, String)> = Vec::new();
        for (k, v) in vars {
            if seen.contains(&k) {
                continue;
            }
            // Within one file the last line of a variable wins.
            match this_file.iter_mut().find(|(n, _)| *n == k) {
                Some(slot) => slot.1 = v,
                None => this_file.push((k, v)),
            }
        }
        for (k, v) in this_file {
            seen.insert(k.clone());
            out.push(format!("{k}={v}"));
        }
    }
    out
}

/// Reads the container's environment files (blocking file reads, off the runtime).
pub async fn read(c: &ContainerDefinition) -> Result<Vec<String>, String> {
    let mut texts = Vec::with_capacity(c.environment_files.len());
    for f in &c.environment_files {
        let path = local_path(&f.value)?;
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| format!("environment file {}: {e}", path.display()))?;
        texts.push(text);
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn files_are_read_as_ecs_reads_them_and_environment_wins() {
        let c: ContainerDefinition = serde_json::from_value(json!({
            "name": "a", "image": "i", "environment": [{"name": "A", "value": "from-env"}]
        }))
        .unwrap();
        let first =
            "# comment\n\nA=from-file\nB=one\r\nB=two\n  # indented comment\nnot a var\nC=x=y\n=nameless\n"
                .to_owned();
        let second = "B=later\nD= spaced \n".to_owned();
        assert_eq!(
            merge(&c, &[first, second]),
            vec!["A=from-env", "B=two", "C=x=y", "D= spaced "]
        );
    }

    #[test]
    fn only_local_absolute_paths_are_read() {
        assert_eq!(local_path("/etc/app.env").unwrap(), PathBuf::from("/etc/app.env"));
        assert_eq!(
            local_path("file:///etc/app.env").unwrap(),
            PathBuf::from("/etc/app.env")
        );
        assert!(
            local_path("arn:aws:s3:::bucket/app.env")
                .unwrap_err()
                .contains("aws s3 cp")
        );
        assert!(local_path("s3://bucket/app.env").unwrap_err().contains("S3"));
        assert!(local_path("app.env").unwrap_err().contains("absolute"));
    }
}
