//! Templates: minijinja with strict undefined, in two flavours.
//!
//! [`Quoting::Shell`] renders commands: every interpolated value is shell-quoted, so a variable,
//! an output or a secret can never inject a command; `| raw` opts out, visibly.
//! [`Quoting::Plain`] renders titles, prompts, inputs and environment values as they are.
//!
//! The compiler calls [`check`] on every template against a [`Scope`] — what will exist when
//! it renders — and the executor calls [`render`] with the real values.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{Environment, ErrorKind, UndefinedBehavior};

use crate::diag::suggestion;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quoting {
    Shell,
    Plain,
}

/// A problem in one template; `range` is a byte range inside the template's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub message: String,
    pub range: Option<Range<usize>>,
    pub help: Option<String>,
}

/// The work one render may do, in minijinja's fuel: about one instruction, or 64 bytes of text
/// made, per unit. A template fills values into a command, a title or a prompt; a loop that
/// runs for minutes or text of gigabytes (`range(100000)` nested, `"x" * 10**9`) is a bomb, and
/// without a bound it hangs `check` (which renders every template) and the run. This allows
/// about 250,000 instructions or 16 MB of text, far more than a command, title or prompt needs.
pub const FUEL: u64 = 250_000;

fn environment(quoting: Quoting) -> Environment<'static> {
    let mut env = Environment::new();
    // Depth needs no bound of ours: minijinja stops recursion at 500 levels (without its
    // `stacker` feature, which this crate does not enable), and fuel bounds the rest.
    env.set_fuel(Some(FUEL));
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_debug(false);
    // `raw` marks a value as already safe for the shell: the formatter writes it as it is.
    env.add_filter("raw", |v: Value| Value::from_safe_string(v.to_string()));
    if quoting == Quoting::Shell {
        env.set_formatter(|out, _state, value| {
            if value.is_safe() {
                return out
                    .write_str(value.as_str().unwrap_or_default())
                    .map_err(Into::into);
            }
            let text = if value.is_none() {
                String::new()
            } else {
                value.to_string()
            };
            let quoted = shlex::try_quote(&text).map_err(|_| {
                minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    "a value holds a NUL byte, which no shell command can carry",
                )
            })?;
            out.write_str(&quoted).map_err(Into::into)
        });
    }
    env
}

static SHELL: LazyLock<Environment<'static>> = LazyLock::new(|| environment(Quoting::Shell));
static PLAIN: LazyLock<Environment<'static>> = LazyLock::new(|| environment(Quoting::Plain));

fn env_for(q: Quoting) -> &'static Environment<'static> {
    match q {
        Quoting::Shell => &SHELL,
        Quoting::Plain => &PLAIN,
    }
}

/// Renders a template with real values.
pub fn render(src: &str, quoting: Quoting, ctx: &Value) -> Result<String, TemplateError> {
    if !src.contains("{{") && !src.contains("{%") && !src.contains("{#") {
        return Ok(src.to_owned()); // the common case costs nothing
    }
    env_for(quoting)
        .render_str(src, ctx)
        .map_err(|e| from_minijinja(&e, src))
}

/// What a template may refer to when it renders.
#[derive(Clone, Debug, Default)]
pub struct Scope<'a> {
    /// Names available at the top level (the runbook's vars, `message` for notify commands).
    pub names: BTreeSet<&'a str>,
    /// `steps['x']`: None when steps are not visible here (library steps, notify commands).
    pub steps: Option<StepsScope<'a>>,
    /// `inputs.x`: Some in a library step.
    pub inputs: Option<BTreeSet<&'a str>>,
    /// `run.status` and `run.failed_steps`: the run's outcome so far, seen by `finally:` steps.
    pub run: bool,
}

/// The steps a template may take outputs from. Upstream-ness is asked only of the steps a
/// template names, so that checking a large runbook does not build every step's ancestor set.
#[derive(Clone, Copy)]
pub struct StepsScope<'a> {
    /// Is this step upstream of the one whose template is checked?
    pub is_upstream: &'a dyn Fn(&str) -> bool,
    /// Every step id of the runbook.
    pub all: &'a BTreeSet<String>,
    pub this: &'a str,
    /// The `for_each:` steps and their items: their outputs are a map by item.
    pub loops: &'a BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for StepsScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepsScope")
            .field("this", &self.this)
            .field("all", &self.all.len())
            .finish_non_exhaustive()
    }
}

const PLACEHOLDER: &str = "x";

/// Checks a template against what will exist when it renders: syntax, undefined names, unknown
/// filters, and outputs of steps that are not upstream. Returns every problem found.
pub fn check(src: &str, quoting: Quoting, scope: &Scope) -> Vec<TemplateError> {
    check_with(src, quoting, scope, &[], true)
}

/// The text a condition renders as: `{% if EXPR %}true{% else %}false{% endif %}`. Its
/// expression starts [`CONDITION_AT`] bytes in, which is how an error's range is moved back
/// into the expression.
fn condition_template(expr: &str) -> String {
    format!("{{% if {expr} %}}true{{% else %}}false{{% endif %}}")
}
const CONDITION_AT: usize = "{% if ".len();

fn in_expression(mut e: TemplateError, expr: &str) -> TemplateError {
    e.range = e
        .range
        .and_then(|r| Some(r.start.checked_sub(CONDITION_AT)?..r.end.checked_sub(CONDITION_AT)?))
        .filter(|r| r.end <= expr.len());
    e
}

/// Checks a `when:` expression: its syntax, its names (the scope's, and `run`) and the steps
/// whose outputs it reads. Errors a render with placeholder values would make (`"x" | int`)
/// are not its own and are not reported. Ranges are in `expr`.
pub fn check_condition(expr: &str, scope: &Scope) -> Vec<TemplateError> {
    if expr.trim().is_empty() {
        return vec![TemplateError {
            message: "empty condition".into(),
            range: None,
            help: Some(
                "write an expression, e.g. `steps['check-lag'].outputs.lag_s | int <= 3600`".into(),
            ),
        }];
    }
    check_with(
        &condition_template(expr),
        Quoting::Plain,
        scope,
        &["run"],
        false,
    )
    .into_iter()
    .map(|e| in_expression(e, expr))
    .collect()
}

/// Evaluates a `when:` expression with real values: true, false, or why it could not be.
pub fn eval_condition(expr: &str, ctx: &Value) -> Result<bool, TemplateError> {
    render(&condition_template(expr), Quoting::Plain, ctx)
        .map(|out| out == "true")
        .map_err(|e| in_expression(e, expr))
}

/// The top-level names an expression reads (`lag_max`, `steps`, `run`), sorted.
pub fn condition_names(expr: &str) -> Vec<String> {
    let env = env_for(Quoting::Plain);
    let src = condition_template(expr);
    let Ok(tmpl) = env.template_from_str(&src) else {
        return Vec::new();
    };
    let mut names: Vec<String> = tmpl.undeclared_variables(false).into_iter().collect();
    names.sort();
    names
}

/// [`check`], with `objects`: more names that answer any attribute (`run` in a condition);
/// and `value_errors`: whether an error of the placeholder render itself is reported.
fn check_with(
    src: &str,
    quoting: Quoting,
    scope: &Scope,
    objects: &[&str],
    value_errors: bool,
) -> Vec<TemplateError> {
    if !src.contains("{{") && !src.contains("{%") && !src.contains("{#") {
        return Vec::new();
    }
    let env = env_for(quoting);
    let tmpl = match env.template_from_str(src) {
        Ok(t) => t,
        Err(e) => return vec![from_minijinja(&e, src)],
    };
    let mut errors = Vec::new();
    // Names in branches a render would not take are still checked here.
    let mut known: Vec<&str> = scope.names.iter().copied().collect();
    known.push("env");
    known.extend(objects);
    if scope.steps.is_some() {
        known.push("steps");
    }
    if scope.inputs.is_some() {
        known.push("inputs");
    }
    if scope.run {
        known.push("run");
    }
    let mut undeclared: Vec<String> = tmpl.undeclared_variables(false).into_iter().collect();
    undeclared.sort();
    for name in undeclared {
        if known.contains(&name.as_str()) || is_builtin(&name) {
            continue;
        }
        let help = suggestion(&name, known.iter().copied()).or_else(|| {
            Some(if name == "item" && scope.steps.is_some() {
                "`item` is the current item of a `for_each:` step, and this step has no `for_each`"
                    .to_owned()
            } else if scope.inputs.is_some() {
                "a library step sees only `inputs.<name>` and `env.<NAME>`".to_owned()
            } else {
                "declare it under `vars:`, or use `env.<NAME>` or `steps['<id>'].outputs.<key>`"
                    .to_owned()
            })
        });
        errors.push(TemplateError {
            message: format!("undefined variable `{name}`"),
            range: find_word(src, &name),
            help,
        });
    }
    if !errors.is_empty() {
        return errors;
    }

    let named_steps = Arc::new(Mutex::new(Vec::new()));
    let mut ctx: BTreeMap<String, Value> = scope
        .names
        .iter()
        .map(|n| (n.to_string(), Value::from(PLACEHOLDER)))
        .collect();
    ctx.insert("env".into(), Value::from_object(Anything));
    for name in objects {
        ctx.insert((*name).into(), Value::from_object(Anything));
    }
    if scope.steps.is_some() {
        ctx.insert(
            "steps".into(),
            Value::from_object(CheckSteps {
                named: named_steps.clone(),
                loops: scope
                    .steps
                    .as_ref()
                    .map(|s| s.loops.clone())
                    .unwrap_or_default(),
            }),
        );
    }
    if scope.run {
        ctx.insert("run".into(), run_value("real", "failed", &[PLACEHOLDER]));
    }
    if let Some(inputs) = &scope.inputs {
        let m: BTreeMap<String, Value> = inputs
            .iter()
            .map(|n| (n.to_string(), Value::from(PLACEHOLDER)))
            .collect();
        ctx.insert("inputs".into(), Value::from(m));
    }
    let result = tmpl.render(Value::from(ctx));
    if let Some(steps) = &scope.steps {
        let mut named = std::mem::take(&mut *named_steps.lock().expect("named steps lock"));
        let mut seen = BTreeSet::new();
        named.retain(|id| seen.insert(id.clone()));
        for id in named {
            if (steps.is_upstream)(&id) {
                continue;
            }
            let exists = steps.all.contains(&id);
            let v = Violation {
                suggestion: if exists {
                    None
                } else {
                    suggestion(&id, steps.all.iter().map(String::as_str))
                },
                step: id,
                this: steps.this.to_owned(),
                exists,
            };
            errors.push(v.into_error(src));
        }
    }
    let own_error = |e: &minijinja::Error| {
        value_errors
            || matches!(
                e.kind(),
                ErrorKind::UnknownFilter
                    | ErrorKind::UnknownTest
                    | ErrorKind::UnknownFunction
                    | ErrorKind::SyntaxError
                    | ErrorKind::OutOfFuel
            )
    };
    if errors.is_empty()
        && let Err(e) = result
        && own_error(&e)
    {
        let mut err = from_minijinja(&e, src);
        if e.kind() == ErrorKind::UndefinedError && scope.inputs.is_some() {
            err.help = Some(format!(
                "declare it under `inputs:`; this step has {}",
                list(scope.inputs.iter().flatten().copied())
            ));
        }
        errors.push(err);
    }
    errors
}

/// What `run` is in a `finally:` step's templates and in a `when:`: `run.mode` (`real`,
/// `drill`, `dry-run`), `run.status` (`succeeded` or `failed`, so far) and `run.failed_steps`
/// (their ids).
pub fn run_value(mode: &str, status: &str, failed_steps: &[&str]) -> Value {
    Value::from(BTreeMap::from([
        ("mode".to_owned(), Value::from(mode)),
        ("status".to_owned(), Value::from(status)),
        (
            "failed_steps".to_owned(),
            Value::from(
                failed_steps
                    .iter()
                    .map(|s| Value::from(*s))
                    .collect::<Vec<_>>(),
            ),
        ),
    ]))
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn is_builtin(name: &str) -> bool {
    matches!(
        name,
        "range" | "dict" | "namespace" | "debug" | "loop" | "true" | "false" | "none"
    )
}

fn from_minijinja(e: &minijinja::Error, src: &str) -> TemplateError {
    let detail = e.detail().map(str::to_owned);
    let range = e.range().filter(|r| r.end <= src.len());
    let (message, help) = match e.kind() {
        ErrorKind::UnknownFilter => (
            // minijinja points at the filter's name; its detail says "filter x is unknown".
            match range.clone().and_then(|r| src.get(r)) {
                Some(name) if is_name(name) => format!("unknown filter `{name}`"),
                _ => format!("unknown filter: {}", detail.clone().unwrap_or_default()),
            },
            Some("filters: `raw` (no shell quoting) and minijinja's built-ins such as `lower`, `default`".into()),
        ),
        ErrorKind::SyntaxError => (
            format!("template syntax error: {}", detail.clone().unwrap_or_default()),
            Some("templates are minijinja: `{{ name }}`, `{{ steps['id'].outputs.key }}`".into()),
        ),
        // The fix is in the message too: at run time only the message reaches the operator.
        ErrorKind::OutOfFuel => (
            format!(
                "template does too much work: past the limit of {FUEL} instructions or {} MB of \
                 text for one render; move loops and generated text into the step's script",
                FUEL * 64 / 1_000_000
            ),
            Some(
                "a template only fills values in; a script's work is bounded by the step's \
                 `timeout`, a template's by this limit"
                    .into(),
            ),
        ),
        ErrorKind::UndefinedError => (
            "undefined value in template".to_owned(),
            Some("a name, attribute or key here does not exist when the template renders".into()),
        ),
        _ => (
            match &detail {
                Some(d) => format!("template error: {d}"),
                None => format!("template error: {}", e.kind()),
            },
            None,
        ),
    };
    TemplateError {
        message,
        range,
        help,
    }
}

/// Where `steps['id']`, `steps["id"]` or `steps.id` names the step, else the first mention.
fn find_step_ref(src: &str, id: &str) -> Option<Range<usize>> {
    let mentions = src.match_indices(id).map(|(i, _)| i..i + id.len());
    let is_ref = |r: &Range<usize>| {
        let before = src.get(..r.start).unwrap_or_default();
        before.ends_with("steps.")
            || before.strip_suffix(['\'', '"']).is_some_and(|b| {
                b.trim_end()
                    .strip_suffix('[')
                    .is_some_and(|b| b.trim_end().ends_with("steps"))
            })
    };
    mentions
        .clone()
        .find(is_ref)
        .or_else(|| mentions.clone().next())
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

fn find_word(src: &str, word: &str) -> Option<Range<usize>> {
    let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    src.match_indices(word)
        .map(|(start, w)| start..start + w.len())
        .find(|r| {
            let before = src.get(..r.start).and_then(|s| s.chars().next_back());
            let after = src.get(r.end..).and_then(|s| s.chars().next());
            // `inputs.database` is an attribute, not the name `database`.
            !ident(before) && before != Some('.') && !ident(after)
        })
}

/// Answers any attribute with a placeholder: the operator's environment and step outputs are
/// known only when the run happens.
#[derive(Debug)]
struct Anything;

impl Object for Anything {
    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        Some(Value::from(PLACEHOLDER))
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }
}

/// `steps` while checking: records every step a template names, to be judged afterwards.
/// Dry-runs have no outputs: every `steps['x'].outputs.key` renders as `<x.key>`, so the
/// rehearsed command shows where a value will go. A loop's (`loops`: the `for_each:` steps
/// and their items) are by item: `steps['x'].outputs['a'].key` renders as `<x[a].key>`.
pub fn placeholder_steps(loops: BTreeMap<String, Vec<String>>) -> Value {
    Value::from_object(PlaceholderSteps(loops))
}

#[derive(Debug)]
struct PlaceholderSteps(BTreeMap<String, Vec<String>>);

impl Object for PlaceholderSteps {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let id = key.as_str()?.to_owned();
        let outputs = match self.0.get(&id) {
            Some(items) if items.is_empty() => Value::from_object(AnyItem(Some(id))),
            Some(items) => Value::from(
                items
                    .iter()
                    .map(|i| {
                        let inst = Value::from_object(PlaceholderOutputs(format!("{id}[{i}]")));
                        (i.clone(), inst)
                    })
                    .collect::<BTreeMap<_, _>>(),
            ),
            None => Value::from_object(PlaceholderOutputs(id)),
        };
        Some(Value::from(BTreeMap::from([(
            "outputs".to_owned(),
            outputs,
        )])))
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }
}

/// The outputs of a loop whose items are known only at run time (a loop over an output, an
/// empty list of items here): any key is an item. Checking (`None`), any output of it is
/// anything; in a dry-run, `steps['x'].outputs['a'].key` renders as `<x[a].key>`.
#[derive(Debug)]
struct AnyItem(Option<String>);

impl Object for AnyItem {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match &self.0 {
            None => Value::from_object(Anything),
            Some(id) => Value::from_object(PlaceholderOutputs(format!("{id}[{}]", key.as_str()?))),
        })
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }
}

#[derive(Debug)]
struct PlaceholderOutputs(String);

impl Object for PlaceholderOutputs {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from(format!("<{}.{}>", self.0, key.as_str()?)))
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }
}

#[derive(Debug)]
struct CheckSteps {
    named: Arc<Mutex<Vec<String>>>,
    /// A loop's outputs are by item: `steps['id'].outputs['item'].key`.
    loops: BTreeMap<String, Vec<String>>,
}

#[derive(Debug)]
struct Violation {
    step: String,
    this: String,
    exists: bool,
    suggestion: Option<String>,
}

impl Violation {
    fn into_error(self, src: &str) -> TemplateError {
        let range = find_step_ref(src, &self.step);
        if self.step == self.this {
            TemplateError {
                message: format!("step `{}` refers to its own outputs", self.this),
                range,
                help: Some("a step sees only the outputs of steps upstream of it".into()),
            }
        } else if self.exists {
            TemplateError {
                message: format!(
                    "step `{}` uses an output of `{}`, which is not upstream of it",
                    self.this, self.step
                ),
                range,
                help: Some(format!(
                    "add `{}` to `needs` (directly or through a step that needs it)",
                    self.step
                )),
            }
        } else {
            TemplateError {
                message: format!("no step `{}` to take outputs from", self.step),
                range,
                help: self.suggestion,
            }
        }
    }
}

impl Object for CheckSteps {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let id = key.as_str()?;
        self.named
            .lock()
            .expect("named steps lock")
            .push(id.to_owned());
        let outputs = match self.loops.get(id) {
            // A loop over an output: its items are known only at run time.
            Some(items) if items.is_empty() => Value::from_object(AnyItem(None)),
            Some(items) => Value::from(
                items
                    .iter()
                    .map(|i| (i.clone(), Value::from_object(Anything)))
                    .collect::<BTreeMap<_, _>>(),
            ),
            None => Value::from_object(Anything),
        };
        Some(Value::from(BTreeMap::from([(
            "outputs".to_owned(),
            outputs,
        )])))
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }
}

#[cfg(test)]
mod tests;
