//! The parameters of one Query request, with typed accessors by member path.
//!
//! Paths are the member names joined by dots. A list is `Name.member.N.…` (1-based; the
//! order is the order of N), or flattened `Name.N.…`; an empty list is `Name=` with an
//! empty value (botocore sends it so). A map is `Name.entry.N.key` / `Name.entry.N.value`,
//! or flattened `Name.N.key` / `Name.N.value`.

use std::collections::BTreeMap;
use std::fmt;

use super::form::decode_form;

/// What cannot be read from a Query request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The body is not a form (a broken escape, bytes that are not UTF-8).
    Malformed(String),
    /// A required member is absent.
    Missing(String),
    /// A member's value cannot be read as its type.
    Invalid {
        path: String,
        value: String,
        expected: &'static str,
    },
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Malformed(m) => write!(f, "malformed request: {m}"),
            QueryError::Missing(p) => write!(f, "{p} is required"),
            QueryError::Invalid {
                path,
                value,
                expected,
            } => {
                write!(f, "{path}: `{value}` is not {expected}")
            }
        }
    }
}

impl std::error::Error for QueryError {}

/// The prefix a list's or map's indices follow, and the indices in order (with their text
/// as written).
type Indexed = (String, Vec<(u32, String)>);

/// The decoded parameters of a request, by full path. A repeated name keeps its last value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    map: BTreeMap<String, String>,
}

impl Params {
    /// Reads a form body (or a URL's query string).
    pub fn parse(form: &str) -> Result<Params, QueryError> {
        Ok(Params {
            map: decode_form(form)?.into_iter().collect(),
        })
    }

    /// The top-level members.
    pub fn root(&self) -> Members<'_> {
        Members {
            params: self,
            prefix: String::new(),
        }
    }

    /// `Action`.
    pub fn action(&self) -> Option<&str> {
        self.map.get("Action").map(String::as_str)
    }

    /// `Version`.
    pub fn version(&self) -> Option<&str> {
        self.map.get("Version").map(String::as_str)
    }

    /// Every parameter, by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Paths that start with `prefix`, in order.
    fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.map
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The members of one structure of a request: the top level, a list element, a nested
/// structure.
#[derive(Debug, Clone)]
pub struct Members<'a> {
    params: &'a Params,
    /// Empty at the top level, else the structure's path followed by a dot.
    prefix: String,
}

impl<'a> Members<'a> {
    /// The full path of a member, for messages.
    pub fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Whether the member is present (as a value or as a structure, list or map).
    pub fn has(&self, name: &str) -> bool {
        let path = self.path(name);
        self.params.map.contains_key(&path) || self.params.under(&format!("{path}.")).next().is_some()
    }

    /// A string member.
    pub fn str(&self, name: &str) -> Option<&'a str> {
        self.params.map.get(&self.path(name)).map(String::as_str)
    }

    /// A string member, owned.
    pub fn string(&self, name: &str) -> Option<String> {
        self.str(name).map(str::to_owned)
    }

    /// A string member that must be present.
    pub fn required(&self, name: &str) -> Result<String, QueryError> {
        self.string(name)
            .ok_or_else(|| QueryError::Missing(self.path(name)))
    }

    /// An integer member.
    pub fn integer<T: std::str::FromStr>(
        &self,
        name: &str,
        expected: &'static str,
    ) -> Result<Option<T>, QueryError> {
        match self.str(name) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|_| QueryError::Invalid {
                    path: self.path(name),
                    value: text.to_owned(),
                    expected,
                }),
        }
    }

    /// A boolean member: `true` or `false` (any case).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, QueryError> {
        match self.str(name) {
            None => Ok(None),
            Some(t) if t.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(t) if t.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(t) => Err(QueryError::Invalid {
                path: self.path(name),
                value: t.to_owned(),
                expected: "true or false",
            }),
        }
    }

    /// A nested structure, when any of its members is present.
    pub fn structure(&self, name: &str) -> Option<Members<'a>> {
        let path = self.path(name);
        self.params.under(&format!("{path}.")).next()?;
        Some(Members {
            params: self.params,
            prefix: format!("{path}."),
        })
    }

    /// The elements of a list member, in index order: `None` when the list is absent,
    /// `Some(empty)` for `Name=`.
    pub fn list(&self, name: &str) -> Result<Option<Vec<Members<'a>>>, QueryError> {
        let path = self.path(name);
        let Some((base, indices)) = self.indices(&path, "member")? else {
            return Ok(self.params.map.contains_key(&path).then(Vec::new));
        };
        Ok(Some(
            indices
                .into_iter()
                .map(|(_, text)| Members {
                    params: self.params,
                    prefix: format!("{base}{text}."),
                })
                .collect(),
        ))
    }

    /// A list of strings.
    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>, QueryError> {
        let path = self.path(name);
        let Some((base, indices)) = self.indices(&path, "member")? else {
            return Ok(self.params.map.contains_key(&path).then(Vec::new));
        };
        Ok(Some(
            indices
                .into_iter()
                .filter_map(|(_, text)| self.params.map.get(&format!("{base}{text}")).cloned())
                .collect(),
        ))
    }

    /// A list of strings that defaults to empty.
    pub fn strings_or_empty(&self, name: &str) -> Result<Vec<String>, QueryError> {
        Ok(self.strings(name)?.unwrap_or_default())
    }

    /// A map of strings to strings.
    pub fn map(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, QueryError> {
        let path = self.path(name);
        let Some((base, indices)) = self.indices(&path, "entry")? else {
            return Ok(self.params.map.contains_key(&path).then(BTreeMap::new));
        };
        let mut out = BTreeMap::new();
        for (_, text) in indices {
            let key = self.params.map.get(&format!("{base}{text}.key"));
            let value = self.params.map.get(&format!("{base}{text}.value"));
            match (key, value) {
                (Some(k), Some(v)) => {
                    out.insert(k.clone(), v.clone());
                }
                (None, _) => return Err(QueryError::Missing(format!("{base}{text}.key"))),
                (Some(_), None) => return Err(QueryError::Missing(format!("{base}{text}.value"))),
            }
        }
        Ok(Some(out))
    }

    /// A member of any depth as JSON, its lists as arrays and its maps as objects: for
    /// members kept as written (authentication configurations).
    pub fn json(&self, name: &str) -> Result<Option<serde_json::Value>, QueryError> {
        let path = self.path(name);
        if let Some(v) = self.params.map.get(&path) {
            return Ok(Some(serde_json::Value::String(v.clone())));
        }
        if let Some((base, indices)) = self.indices(&path, "member")? {
            if base.ends_with(".member.") {
                let mut out = Vec::new();
                for (_, text) in indices {
                    let element = Members {
                        params: self.params,
                        prefix: base.clone(),
                    };
                    out.extend(element.json(&text)?);
                }
                return Ok(Some(serde_json::Value::Array(out)));
            }
        }
        if let Some((base, _)) = self.indices(&path, "entry")? {
            if base.ends_with(".entry.") {
                let map = self.map(name)?.unwrap_or_default();
                return Ok(Some(serde_json::Value::Object(
                    map.into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect(),
                )));
            }
        }
        match self.structure(name) {
            Some(inner) => Ok(Some(inner.json_here()?)),
            None => Ok(None),
        }
    }

    /// This structure as a JSON object of its direct members.
    fn json_here(&self) -> Result<serde_json::Value, QueryError> {
        let mut names: Vec<&str> = self
            .params
            .under(&self.prefix)
            .map(|(k, _)| {
                let rest = &k[self.prefix.len()..];
                rest.split('.').next().unwrap_or(rest)
            })
            .collect();
        names.dedup();
        let mut out = serde_json::Map::new();
        for n in names {
            if let Some(v) = self.json(n)? {
                out.insert(n.to_owned(), v);
            }
        }
        Ok(serde_json::Value::Object(out))
    }

    /// The indices of a list or map at `path`: the `path.KIND.N` form, else the flattened
    /// `path.N` form. Returns the prefix the index follows and the indices sorted by value
    /// (with their text as written).
    fn indices(&self, path: &str, kind: &str) -> Result<Option<Indexed>, QueryError> {
        for base in [format!("{path}.{kind}."), format!("{path}.")] {
            let mut found: Vec<(u32, String)> = Vec::new();
            for (key, _) in self.params.under(&base) {
                let rest = &key[base.len()..];
                let text = rest.split('.').next().unwrap_or(rest);
                match text.parse::<u32>() {
                    Ok(n) if n > 0 => {
                        if !found.iter().any(|(m, _)| *m == n) {
                            found.push((n, text.to_owned()));
                        }
                    }
                    _ if base.ends_with(&format!(".{kind}.")) => {
                        return Err(QueryError::Invalid {
                            path: format!("{base}{text}"),
                            value: text.to_owned(),
                            expected: "a list index (1, 2, ...)",
                        });
                    }
                    // Flattened form: a member name, not an index; this is no list.
                    _ => {
                        found.clear();
                        break;
                    }
                }
            }
            if !found.is_empty() {
                found.sort_unstable();
                return Ok(Some((base, found)));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &str) -> Params {
        Params::parse(text).unwrap()
    }

    #[test]
    fn lists_follow_their_index_not_their_order() {
        let p = params("Names.member.2=b&Names.member.10=c&Names.member.1=a&Other=x");
        assert_eq!(
            p.root().strings("Names").unwrap(),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(p.root().strings("Missing").unwrap(), None);
    }

    #[test]
    fn an_empty_list_is_a_name_with_no_value() {
        let p = params("Action=ModifyRule&Conditions=");
        assert_eq!(p.root().list("Conditions").unwrap().map(|l| l.len()), Some(0));
        assert_eq!(p.root().strings("Conditions").unwrap(), Some(vec![]));
    }

    #[test]
    fn nested_lists_of_structures() {
        let p = params(
            "Conditions.member.1.Field=path-pattern\
             &Conditions.member.1.PathPatternConfig.Values.member.1=%2Fa%2A\
             &Conditions.member.1.PathPatternConfig.Values.member.2=%2Fb\
             &Conditions.member.2.Field=source-ip",
        );
        let list = p.root().list("Conditions").unwrap().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].str("Field"), Some("path-pattern"));
        let cfg = list[0].structure("PathPatternConfig").unwrap();
        assert_eq!(
            cfg.strings("Values").unwrap(),
            Some(vec!["/a*".into(), "/b".into()])
        );
        assert_eq!(cfg.path("Values"), "Conditions.member.1.PathPatternConfig.Values");
        assert!(list[1].structure("PathPatternConfig").is_none());
    }

    #[test]
    fn flattened_lists_and_maps() {
        let p = params("Ids.1=a&Ids.2=b&Tags.1.key=k&Tags.1.value=v&Cfg.Name=x");
        assert_eq!(
            p.root().strings("Ids").unwrap(),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            p.root()
                .map("Tags")
                .unwrap()
                .unwrap()
                .get("k")
                .map(String::as_str),
            Some("v")
        );
        // `Cfg` has a member, not an index: it is no list.
        assert_eq!(p.root().strings("Cfg").unwrap(), None);
    }

    #[test]
    fn maps_by_entry() {
        let p = params(
            "Extra.entry.1.key=prompt&Extra.entry.1.value=login&Extra.entry.2.key=a&Extra.entry.2.value=b",
        );
        let m = p.root().map("Extra").unwrap().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["prompt"], "login");
        let broken = params("Extra.entry.1.key=prompt");
        assert!(matches!(broken.root().map("Extra"), Err(QueryError::Missing(_))));
    }

    #[test]
    fn typed_scalars_report_their_path() {
        let p = params("Port=80&Bad=eighty&On=TRUE&Off=false&No=maybe");
        let r = p.root();
        assert_eq!(r.integer::<u16>("Port", "a port").unwrap(), Some(80));
        assert_eq!(
            r.integer::<u16>("Bad", "a port"),
            Err(QueryError::Invalid {
                path: "Bad".into(),
                value: "eighty".into(),
                expected: "a port"
            })
        );
        assert_eq!(r.boolean("On").unwrap(), Some(true));
        assert_eq!(r.boolean("Off").unwrap(), Some(false));
        assert!(r.boolean("No").is_err());
        assert_eq!(r.required("Nope"), Err(QueryError::Missing("Nope".into())));
    }

    #[test]
    fn a_bad_list_index_is_an_error() {
        let p = params("Names.member.x=a");
        assert!(p.root().strings("Names").is_err());
        let p = params("Names.member.0=a");
        assert!(p.root().strings("Names").is_err());
    }

    #[test]
    fn structures_as_json() {
        let p = params(
            "A.AuthenticateOidcConfig.Issuer=https%3A%2F%2Fi\
             &A.AuthenticateOidcConfig.AuthenticationRequestExtraParams.entry.1.key=k\
             &A.AuthenticateOidcConfig.AuthenticationRequestExtraParams.entry.1.value=v\
             &A.AuthenticateOidcConfig.Scopes.member.1=openid",
        );
        let a = p.root().structure("A").unwrap();
        let v = a.json("AuthenticateOidcConfig").unwrap().unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "Issuer": "https://i",
                "AuthenticationRequestExtraParams": {"k": "v"},
                "Scopes": ["openid"]
            })
        );
    }
}
