//! The Query protocol ELBv2 speaks: a form-urlencoded request body
//! (`Action=CreateRule&Version=2015-12-01&Conditions.member.1.Field=path-pattern&...`),
//! read here into [`Params`] with typed accessors for members, lists (`Name.member.N`, or
//! flattened `Name.N`) and maps (`Name.entry.N.key` / `.value`); answers are XML
//! ([`xml`]).

mod form;
mod params;
pub mod xml;

pub use form::{decode_form, encode_component};
pub use params::{Members, Params, QueryError};
