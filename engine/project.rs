//! Where things are: the folder that holds `runbooks/` and `steps/`, scenario names resolved
//! to files, and the library steps.

use std::path::{Path, PathBuf};

use crate::diag::{Problem, suggestion};

/// The project folder: `runbooks/`, `steps/` and (by default) the state folder live under it,
/// and steps run with it as their working directory.
#[derive(Clone, Debug)]
pub struct Project {
    pub root: PathBuf,
}

impl Project {
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Project { root: root.into() }
    }

    /// The current directory.
    pub fn current() -> Self {
        Project::at(std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")))
    }

    /// The project a runbook file belongs to: the parent of its `runbooks/` folder when it
    /// sits in one, else this project.
    pub fn for_file(&self, file: &Path) -> Project {
        let abs = if file.is_absolute() {
            file.to_owned()
        } else {
            self.root.join(file)
        };
        match abs.parent() {
            Some(dir) if dir.file_name().is_some_and(|n| n == "runbooks") => {
                Project::at(dir.parent().unwrap_or(dir))
            }
            _ => self.clone(),
        }
    }

    pub fn runbooks_dir(&self) -> PathBuf {
        self.root.join("runbooks")
    }

    pub fn steps_dir(&self) -> PathBuf {
        self.root.join("steps")
    }

    /// A SCENARIO argument: a path to a file when it looks like one, else a name under
    /// `runbooks/`.
    pub fn resolve(&self, scenario: &str) -> Result<PathBuf, Problem> {
        let looks_like_path =
            scenario.contains('/') || scenario.ends_with(".yaml") || scenario.ends_with(".yml");
        if looks_like_path {
            let p = PathBuf::from(scenario);
            if p.is_file() {
                return Ok(p);
            }
            return Err(Problem::error(format!("no runbook file `{scenario}`"))
                .help("give a path to a runbook file, or a scenario name from `runbook list`"));
        }
        let p = self.runbooks_dir().join(format!("{scenario}.yaml"));
        if p.is_file() {
            return Ok(p);
        }
        let names = self.scenarios();
        let help = suggestion(scenario, names.iter().map(String::as_str)).unwrap_or_else(|| {
            if names.is_empty() {
                format!(
                    "there is no runbooks/ folder in {}; run from the project folder",
                    self.root.display()
                )
            } else {
                format!("the scenarios are: {}", names.join(", "))
            }
        });
        Err(Problem::error(format!(
            "no scenario `{scenario}` (looked for runbooks/{scenario}.yaml)"
        ))
        .help(help))
    }

    /// Scenario names: the `*.yaml` files directly under `runbooks/`, sorted.
    pub fn scenarios(&self) -> Vec<String> {
        yaml_files(&self.runbooks_dir())
            .iter()
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect()
    }

    pub fn runbook_files(&self) -> Vec<PathBuf> {
        yaml_files(&self.runbooks_dir())
    }

    /// `system/name` of every library step, sorted.
    pub fn library_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for dir in subdirs(&self.steps_dir()) {
            let system = dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            for f in yaml_files(&dir) {
                let name = f.file_stem().unwrap_or_default().to_string_lossy();
                out.push(format!("{system}/{name}"));
            }
        }
        out.sort();
        out
    }

    pub fn library_file(&self, name: &str) -> PathBuf {
        self.steps_dir().join(format!("{name}.yaml"))
    }

    /// An `--env` argument: a name under `runbooks/env/`, or a path.
    pub fn env_file(&self, env: &str) -> PathBuf {
        if env.contains('/') || env.ends_with(".yaml") {
            PathBuf::from(env)
        } else {
            self.runbooks_dir().join("env").join(format!("{env}.yaml"))
        }
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    v.sort();
    v
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}
