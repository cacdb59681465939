//! The JSON Schema of the runbook format, made from the serde types by schemars, so editors
//! complete and check runbooks (`runbooks/schema.json`, `runbook schema`).

use crate::format::{EnvDoc, LibraryDoc, RunbookDoc};

pub fn runbook_schema_json() -> String {
    pretty(schemars::schema_for!(RunbookDoc))
}

pub fn library_schema_json() -> String {
    pretty(schemars::schema_for!(LibraryDoc))
}

pub fn env_schema_json() -> String {
    pretty(schemars::schema_for!(EnvDoc))
}

fn pretty(schema: schemars::Schema) -> String {
    serde_json::to_string_pretty(&schema).expect("a schema serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::keys;
    use serde_json::Value;

    fn props<'a>(schema: &'a Value, def: Option<&str>) -> Vec<&'a str> {
        let obj = match def {
            None => schema,
            Some(d) => &schema["$defs"][d],
        };
        let mut v: Vec<&str> = obj["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{def:?} has properties"))
            .keys()
            .map(String::as_str)
            .collect();
        v.sort();
        v
    }

    fn sorted(k: &[&'static str]) -> Vec<&'static str> {
        let mut v = k.to_vec();
        v.sort();
        v
    }

    /// The first loading pass reports unknown keys from `keys::*`; they must match the types.
    #[test]
    fn key_lists_match_the_schema() {
        let rb: Value = serde_json::from_str(&runbook_schema_json()).unwrap();
        assert_eq!(props(&rb, None), sorted(keys::RUNBOOK));
        assert_eq!(props(&rb, Some("StepDoc")), sorted(keys::STEP));
        assert_eq!(props(&rb, Some("ApprovalDoc")), sorted(keys::APPROVAL));
        assert_eq!(props(&rb, Some("PollDoc")), sorted(keys::POLL));
        assert_eq!(props(&rb, Some("HostsDoc")), sorted(keys::HOSTS));
        assert_eq!(props(&rb, Some("EscalationDoc")), sorted(keys::ESCALATION));
        let lib: Value = serde_json::from_str(&library_schema_json()).unwrap();
        assert_eq!(props(&lib, None), sorted(keys::LIBRARY));
        assert_eq!(props(&lib, Some("InputDoc")), sorted(keys::INPUT));
        let env: Value = serde_json::from_str(&env_schema_json()).unwrap();
        assert_eq!(props(&env, None), sorted(keys::ENV));
        assert_eq!(props(&env, Some("HostDoc")), sorted(keys::HOST));
    }
}
