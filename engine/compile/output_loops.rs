//! Loops over an upstream step's output (`for_each: "{{ steps['discover'].outputs.regions }}"`):
//! their items are known only when that step has finished. What `check` can say of one before
//! any run is said here, at the `for_each:`'s line: the step it names exists and is upstream
//! (among the loop's needs, transitively). The run does not expand such a loop yet, so a
//! well-formed one is refused too, with what to write instead.

use std::sync::LazyLock;

use regex::Regex;

use super::Compiler;
use super::graph::Graph;
use crate::diag::suggestion;
use crate::format::ForEachDoc;

/// `{{ steps['<id>'].outputs.<key> }}` (or `steps["<id>"]`, `outputs['<key>']`): the one form
/// a loop over an output takes.
static OUTPUT_LOOP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"^\s*\{\{-?\s*steps\[\s*(?:'([^']+)'|"([^"]+)")\s*\]\s*\.\s*outputs\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_-]*)|\[\s*(?:'([^']+)'|"([^"]+)")\s*\])\s*-?\}\}\s*$"#,
    )
    .expect("a valid pattern")
});

/// The step and output a `for_each:` template names, if it is a loop over an output.
pub(super) fn output_loop(text: &str) -> Option<(String, String)> {
    let c = OUTPUT_LOOP.captures(text)?;
    let step = c.get(1).or_else(|| c.get(2))?.as_str().to_owned();
    let key = c
        .get(3)
        .or_else(|| c.get(4))
        .or_else(|| c.get(5))?
        .as_str()
        .to_owned();
    Some((step, key))
}

impl Compiler<'_> {
    /// Every `for_each:` over an upstream output, checked at its line: the step it names exists
    /// and is upstream of the loop. (Its other forms are checked by `loop_items`.)
    pub(super) fn output_loops(&mut self, graph: &Graph) {
        for (i, s) in self.steps.clone().into_iter().enumerate() {
            let Some(for_each) = &s.for_each else {
                continue;
            };
            let ForEachDoc::Template(text) = &for_each.value else {
                continue;
            };
            let Some((from, key)) = output_loop(text) else {
                continue;
            };
            let id = &s.id.value;
            let Some(&j) = graph.index.get(&from) else {
                let help = suggestion(&from, self.steps.iter().map(|s| s.id.value.as_str()))
                    .unwrap_or_else(|| {
                        "name the step that writes the list, and list it under `needs`".into()
                    });
                self.err(
                    for_each.pos,
                    format!(
                        "`for_each` of step `{id}` reads an output of `{from}`, which is no step"
                    ),
                )
                .label("unknown step")
                .help(help);
                continue;
            };
            if graph.acyclic && !graph.is_upstream(j, i) {
                self.err(
                    for_each.pos,
                    format!(
                        "`for_each` of step `{id}` reads an output of `{from}`, which is not upstream of it"
                    ),
                )
                .label("not among its needs")
                .help(format!(
                    "the items are known once `{from}` has finished: add `needs: [{from}]` to step `{id}`"
                ));
                continue;
            }
            self.err(
                for_each.pos,
                format!(
                    "`for_each` of step `{id}` loops over output `{key}` of `{from}`, which a run cannot expand yet"
                ),
            )
            .label("items known only at run time")
            .help("list the items (`for_each: [eu-1, eu-2]`), or name a list variable set with `--var`");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::output_loop;

    #[test]
    fn an_output_loop_is_read_in_each_quoting() {
        let want = Some(("discover".to_owned(), "regions".to_owned()));
        assert_eq!(output_loop("{{ steps['discover'].outputs.regions }}"), want);
        assert_eq!(
            output_loop("{{steps[\"discover\"].outputs['regions']}}"),
            want
        );
        assert_eq!(output_loop("{{ regions }}"), None);
        assert_eq!(
            output_loop("{{ steps['discover'].outputs.regions | reverse }}"),
            None
        );
    }
}
