//! The step library: `steps/<system>/<name>.yaml`, loaded once per process and checked once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::diag::{Problem, Problems};
use crate::format::{LibraryDoc, Loaded, load_library};
use crate::project::Project;
use crate::template::{self, Quoting, Scope};

/// A loaded library step.
#[derive(Debug)]
pub struct Entry {
    pub name: String,
    pub loaded: Loaded<LibraryDoc>,
}

/// Library steps by `system/name`, each loaded and checked at most once.
#[derive(Default)]
pub struct Library {
    cache: BTreeMap<std::path::PathBuf, Result<Arc<Entry>, Problems>>,
}

impl Library {
    pub fn new() -> Self {
        Self::default()
    }

    /// `Ok(None)` when no such library step exists; `Err` with its problems when it is invalid
    /// (reported in full the first time only, so one bad library step is not reported again
    /// for every runbook that uses it).
    pub fn get(&mut self, project: &Project, name: &str) -> Result<Option<Arc<Entry>>, Problems> {
        if name.split('/').count() != 2 || name.contains("..") || name.starts_with('/') {
            return Ok(None);
        }
        let path = project.library_file(name);
        if let Some(cached) = self.cache.get(&path) {
            return match cached {
                Ok(e) => Ok(Some(e.clone())),
                Err(_) => Err(Problems::default()),
            };
        }
        if !path.is_file() {
            return Ok(None);
        }
        let result = check_entry(name, &path);
        self.cache.insert(path, result.clone());
        result.map(Some)
    }
}

/// Loads one library step and checks its own templates: the command sees `inputs` only.
pub fn check_entry(name: &str, path: &std::path::Path) -> Result<Arc<Entry>, Problems> {
    let loaded = load_library(path)?;
    let mut problems = Problems::default();
    let doc = &loaded.doc;
    let inputs: BTreeSet<&str> = doc.inputs.keys().map(String::as_str).collect();
    let scope = Scope {
        inputs: Some(inputs),
        ..Default::default()
    };
    for e in template::check(&doc.run.value, Quoting::Shell, &scope) {
        let pos = super::template_pos(&loaded.file, &doc.run, e.range.clone());
        problems.push(
            Problem::error(format!("command: {}", e.message))
                .at(&loaded.file, pos)
                .label("here")
                .maybe_help(e.help),
        );
    }
    for (iname, input) in &doc.inputs {
        if input.required && input.default.is_some() {
            let pos = input.default.as_ref().map(|d| d.pos).unwrap_or_default();
            problems.push(
                Problem::error(format!("input `{iname}` is required and has a default"))
                    .at(&loaded.file, pos)
                    .help("drop `required: true` (the default applies) or drop the default"),
            );
        }
    }
    if problems.has_errors() {
        return Err(problems);
    }
    Ok(Arc::new(Entry {
        name: name.to_owned(),
        loaded,
    }))
}
