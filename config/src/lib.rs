//! hostalb's configuration: the model a user writes (TOML or JSON), its validation, and
//! the typed, compiled result the proxy runs.
//!
//! Pure: no sockets, no runtime. [`load`] reads a file, [`parse`] reads text; both return
//! a [`Loaded`] config with its warnings, or a [`ConfigError`] listing *every* problem
//! with its path (`listener[0].rule[2].conditions[1]`) and a fix. ALB's documented limits
//! are warnings unless `strict_alb = true` makes them errors.

pub mod defaults;
pub mod glob;
pub mod model;
mod problems;
mod raw;
mod validate;

use std::path::Path;

pub use glob::{Case, Glob};
pub use model::*;
pub use problems::{ConfigError, Problem, Severity};

/// hostalb's built-in configuration (`hostalb run` without `--config`).
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// The two spellings of the same structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    /// `.json` files are JSON; everything else is TOML.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Toml,
        }
    }
}

/// A valid configuration and the warnings it carries (ALB limits it exceeds).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Problem>,
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        origin: origin.clone(),
        source,
    })?;
    parse(&text, Format::from_path(path), &origin)
}

/// The embedded default configuration, validated.
pub fn embedded_default() -> Result<Loaded, ConfigError> {
    parse(EMBEDDED_DEFAULT, Format::Toml, "(embedded default)")
}

/// Validates configuration text. `origin` names it in messages (a file path).
pub fn parse(text: &str, format: Format, origin: &str) -> Result<Loaded, ConfigError> {
    let doc: serde_json::Value = match format {
        Format::Toml => toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: format!("TOML syntax: {}", e.to_string().trim_end()),
        })?,
        Format::Json => serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: format!("JSON syntax: {e}"),
        })?,
    };
    let (config, problems) = validate::validate(doc);
    match config {
        Some(config) => Ok(Loaded {
            config,
            warnings: problems,
        }),
        None => Err(ConfigError::Invalid {
            origin: origin.to_owned(),
            problems,
        }),
    }
}
