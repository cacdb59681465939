//! Values that may be lists: a variable (`regions: [eu-1, eu-2]` as well as `database: omni`)
//! and a loop's `for_each:` (a list written in the step, or `"{{ regions }}"` naming a list
//! variable). Loaded as written; the compiler checks what they name.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::types::Text;
use crate::span::Sp;

/// A variable's value: a scalar, or a list of scalars (a list variable).
#[derive(Clone, Debug, PartialEq)]
pub enum VarDoc {
    Scalar(Text),
    List(Vec<Sp<Text>>),
    /// A plain scalar YAML read as a number or a boolean: the loader puts its text back as
    /// written (`9.10` stays `9.10`) and makes it a [`VarDoc::Scalar`] (see [`as_written`]).
    Typed(String),
}

impl VarDoc {
    /// The value as the templates' string variables hold it: a list's items joined by `,`
    /// (the form `--var regions=a,b` takes; an item may not hold a comma).
    pub fn text(&self) -> String {
        match self {
            VarDoc::Scalar(t) => t.0.clone(),
            VarDoc::Typed(t) => t.clone(),
            VarDoc::List(items) => join(items.iter().map(|i| i.value.0.as_str())),
        }
    }

    pub fn list(&self) -> Option<&[Sp<Text>]> {
        match self {
            VarDoc::List(items) => Some(items),
            _ => None,
        }
    }
}

/// A list variable's items as one string, as the run's variables and the journal hold it.
pub fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(",")
}

/// A list variable's items from its string form (`a,b,c`); an empty string is no items.
pub fn split(value: &str) -> Vec<String> {
    if value.is_empty() {
        return Vec::new();
    }
    value.split(',').map(str::to_owned).collect()
}

/// Puts back the text of each variable that YAML read as a number or a boolean, from the
/// source text at its position: `9.10` is a version, not `9.1`; `0012345` keeps its zeros.
pub fn as_written(vars: &mut BTreeMap<String, Sp<VarDoc>>, text: &str) {
    for v in vars.values_mut() {
        if let VarDoc::Typed(read) = &v.value {
            let written = text
                .get(v.pos.offset..v.pos.offset + v.pos.len)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .unwrap_or(read);
            v.value = VarDoc::Scalar(Text(written.to_owned()));
        }
    }
}

impl<'de> Deserialize<'de> for VarDoc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = VarDoc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean, or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<VarDoc, E> {
                Ok(VarDoc::Scalar(Text(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<VarDoc, E> {
                Ok(VarDoc::Scalar(Text(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<VarDoc, E> {
                Ok(VarDoc::Typed(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<VarDoc, E> {
                Ok(VarDoc::Typed(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<VarDoc, E> {
                Ok(VarDoc::Typed(v.to_string()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<VarDoc, E> {
                Ok(VarDoc::Typed(v.to_string()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<VarDoc, E> {
                Ok(VarDoc::Typed(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<VarDoc, E> {
                Ok(VarDoc::Typed(v.to_string()))
            }
            // Said in the format's words by the loader (`WORDING`), as for any other value.
            fn visit_unit<E: de::Error>(self) -> Result<VarDoc, E> {
                Err(E::custom("cannot deserialize null into a variable"))
            }
            fn visit_none<E: de::Error>(self) -> Result<VarDoc, E> {
                self.visit_unit()
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<VarDoc, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Sp<Text>>()? {
                    items.push(item);
                }
                Ok(VarDoc::List(items))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for VarDoc {
    fn schema_name() -> Cow<'static, str> {
        "Var".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": ["string", "number", "boolean"] },
                { "type": "array", "items": { "type": ["string", "number", "boolean"] } }
            ]
        })
    }
}

/// A loop's `for_each:`: the items written in the step, or a template naming a list variable
/// (`"{{ regions }}"`).
#[derive(Clone, Debug, PartialEq)]
pub enum ForEachDoc {
    Items(Vec<Sp<Text>>),
    Template(String),
}

impl<'de> Deserialize<'de> for ForEachDoc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ForEachDoc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of items, or \"{{ <list variable> }}\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ForEachDoc, E> {
                Ok(ForEachDoc::Template(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ForEachDoc, E> {
                Ok(ForEachDoc::Template(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ForEachDoc, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Sp<Text>>()? {
                    items.push(item);
                }
                Ok(ForEachDoc::Items(items))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for ForEachDoc {
    fn schema_name() -> Cow<'static, str> {
        "ForEach".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "array", "items": { "type": ["string", "number", "boolean"] } },
                {
                    "type": "string",
                    "description": "`{{ <list variable> }}`: one instance per item of a list variable"
                }
            ]
        })
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    reason = "in a test, an index out of range is a failure"
)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn vars(yaml: &str) -> BTreeMap<String, Sp<VarDoc>> {
        let mut v: BTreeMap<String, Sp<VarDoc>> = serde_saphyr::from_str(yaml).unwrap();
        as_written(&mut v, yaml);
        v
    }

    #[test]
    fn a_var_is_a_scalar_as_written_or_a_list() {
        let v = vars("pgver: 9.10\nacct: 0012345\non: true\nname: omni\nregions: [eu-1, 2.10]\n");
        assert_eq!(v["pgver"].value, VarDoc::Scalar(Text("9.10".into())));
        assert_eq!(v["acct"].value.text(), "0012345");
        assert_eq!(v["on"].value.text(), "true");
        assert_eq!(v["name"].value.text(), "omni");
        assert_eq!(v["regions"].value.text(), "eu-1,2.10");
        assert_eq!(v["regions"].value.list().map(<[_]>::len), Some(2));
    }

    #[test]
    fn a_list_var_splits_back_into_its_items() {
        assert_eq!(split("a,b"), ["a", "b"]);
        assert!(split("").is_empty());
        assert_eq!(join(["a", "b"].into_iter()), "a,b");
    }
}
