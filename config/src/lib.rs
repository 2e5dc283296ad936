//! hostalb's configuration: the model a user writes (TOML or JSON), its validation, and
//! the typed, compiled result the proxy runs.
//!
//! Pure: no sockets, no runtime. [`load`] reads a file, [`parse`] reads text; both return
//! a [`Loaded`] config with its warnings, or a [`ConfigError`] listing *every* problem
//! with its path (`listener[0].rule[2].conditions[1]`) and a fix. ALB's documented limits
//! are warnings unless `strict_alb = true` makes them errors.

mod api;
pub mod defaults;
pub mod glob;
pub mod model;
mod overlay;
mod problems;
mod raw;
mod ssl_policies;
mod validate;

use std::path::Path;

pub use glob::{Case, Glob};
pub use model::*;
pub use overlay::{
    AUTO_PRIORITY_START, EmbeddedAddresses, LABEL_ALIASES, LABEL_ATTRIBUTES, LabelAttribute, LabelGroup,
    LabelNote, LabelReport, LabelValue, Overlay, Place, label_attribute, label_attribute_like,
};
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
    load_with_overlay(path, &Overlay::default())
}

/// Reads a configuration file and validates it with `overlay` merged in.
pub fn load_with_overlay(path: &Path, overlay: &Overlay) -> Result<Loaded, ConfigError> {
    load_with_api(path, overlay, None)
}

/// Reads a configuration file and validates it with `overlay` and the resources the AWS
/// API made (`api`: a document with `listener` and `target_group`) merged in.
pub fn load_with_api(
    path: &Path,
    overlay: &Overlay,
    api: Option<&serde_json::Value>,
) -> Result<Loaded, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        origin: origin.clone(),
        source,
    })?;
    parse_with_api(&text, Format::from_path(path), &origin, overlay, api)
}

/// The embedded default configuration, validated.
pub fn embedded_default() -> Result<Loaded, ConfigError> {
    embedded_default_with_overlay(&Overlay::default())
}

/// What `hostalb check` and messages call the embedded default.
pub const EMBEDDED_ORIGIN: &str = "(embedded default)";

/// The embedded default's text with the command line's addresses written in.
pub fn embedded_default_text(addresses: &EmbeddedAddresses) -> String {
    addresses.apply(EMBEDDED_DEFAULT)
}

/// The embedded default with the command line's addresses and the target groups and
/// rules from container labels.
pub fn embedded_default_with_overlay(overlay: &Overlay) -> Result<Loaded, ConfigError> {
    embedded_default_with_api(overlay, None)
}

/// The embedded default with `overlay` and the AWS API's resources merged in.
pub fn embedded_default_with_api(
    overlay: &Overlay,
    api: Option<&serde_json::Value>,
) -> Result<Loaded, ConfigError> {
    let text = embedded_default_text(&overlay.addresses);
    parse_with_api(&text, Format::Toml, EMBEDDED_ORIGIN, overlay, api)
}

/// What is wrong with the labels of `overlay`'s groups and the priority each group's rule
/// runs at, as [`embedded_default_with_overlay`] merges them (the same resolution, so the
/// report describes exactly what is served).
pub fn embedded_label_report(overlay: &Overlay) -> LabelReport {
    let text = embedded_default_text(&overlay.addresses);
    match toml::from_str::<serde_json::Value>(&text) {
        Ok(doc) => overlay.resolve(&doc).report,
        Err(_) => LabelReport::default(),
    }
}

/// Validates configuration text. `origin` names it in messages (a file path).
pub fn parse(text: &str, format: Format, origin: &str) -> Result<Loaded, ConfigError> {
    parse_with_overlay(text, format, origin, &Overlay::default())
}

/// Validates configuration text with `overlay`'s label groups merged in. Label values that
/// validation refuses are left out (see [`embedded_label_report`]); should the merged
/// document still fail, the label groups are left out whole with one warning.
pub fn parse_with_overlay(
    text: &str,
    format: Format,
    origin: &str,
    overlay: &Overlay,
) -> Result<Loaded, ConfigError> {
    parse_with_api(text, format, origin, overlay, None)
}

/// Validates configuration text with the AWS API's resources (`api`) and `overlay`'s label
/// groups merged in. The API's resources are merged strictly: any problem they cause fails
/// the whole (the API then refuses the call that made them).
pub fn parse_with_api(
    text: &str,
    format: Format,
    origin: &str,
    overlay: &Overlay,
    api: Option<&serde_json::Value>,
) -> Result<Loaded, ConfigError> {
    let mut doc: serde_json::Value = match format {
        Format::Toml => toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: format!("TOML syntax: {}", e.to_string().trim_end()),
        })?,
        Format::Json => serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: format!("JSON syntax: {e}"),
        })?,
    };
    if let Some(api) = api {
        let clashes = api::merge(&mut doc, api);
        if !clashes.is_empty() {
            return Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                problems: clashes,
            });
        }
    }
    let (config, problems) = if overlay.is_empty() {
        validate::validate(doc)
    } else {
        let merged = overlay.resolve(&doc).doc;
        match validate::validate(merged) {
            (Some(config), problems) => (Some(config), problems),
            (None, merged_problems) => {
                let (config, mut problems) = validate::validate(doc);
                if config.is_some() {
                    problems.push(overlay::left_out(&merged_problems));
                }
                (config, problems)
            }
        }
    };
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
