//! The one implementation of the graph algorithms over a plan's steps: topological order,
//! cycles, longest paths, upstream sets. A leaf: a graph here is `needs[i]`, the indices step
//! `i` waits for, and a weight per step, so compile (over the runbook), the machine (over the
//! plan, on every projection), the reports and `status` (over a journaled plan summary) and
//! the simulation all share one answer for "what comes first" and "what decides the finish".

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::time::Duration;

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// Kahn's algorithm; among ready steps the one earliest in the file goes first, so that the
/// order never depends on anything but the file. Steps on a cycle are left out.
pub fn topo_order(needs: &[Vec<usize>]) -> Vec<usize> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let n = needs.len();
    let mut indegree = vec![0usize; n];
    let mut dependents = vec![Vec::new(); n];
    for (i, ns) in needs.iter().enumerate() {
        indegree[i] = ns.len();
        for &j in ns {
            dependents[j].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    order
}

/// Every cycle, one per strongly connected component, each as the steps on it starting from
/// its lowest index and following `needs`; sorted. A cycle is named, never a bool: the
/// compiler points at the `needs` entry that closes it.
pub fn cycles(needs: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut g: DiGraph<usize, ()> = DiGraph::with_capacity(needs.len(), needs.len());
    let nodes: Vec<NodeIndex> = (0..needs.len()).map(|i| g.add_node(i)).collect();
    for (i, ns) in needs.iter().enumerate() {
        for &j in ns {
            g.add_edge(nodes[j], nodes[i], ());
        }
    }
    let mut cycles: Vec<Vec<usize>> = Vec::new();
    // Kosaraju: petgraph's Tarjan recurses once per step of a chain and overflows the stack on long ones.
    for scc in kosaraju_scc(&g) {
        let members: BTreeSet<usize> = scc.iter().map(|n| g[*n]).collect();
        let Some(&first) = members.iter().next() else {
            continue;
        };
        if members.len() == 1 && !needs[first].contains(&first) {
            continue;
        }
        cycles.push(cycle_through(first, &members, needs));
    }
    cycles.sort();
    cycles
}

/// One cycle through `start`, inside its strongly connected component, in `needs` order.
/// Depth-first along `needs` edges restricted to the component until it returns to `start`;
/// iterative, so that a cycle through 100,000 steps cannot overflow the stack.
fn cycle_through(start: usize, members: &BTreeSet<usize>, needs: &[Vec<usize>]) -> Vec<usize> {
    let next = |at: usize| -> Vec<usize> {
        let mut v: Vec<usize> = needs[at]
            .iter()
            .copied()
            .filter(|j| members.contains(j))
            .collect();
        v.sort();
        v
    };
    // The path so far: each step with the candidates it has left to try.
    let mut stack: Vec<(usize, Vec<usize>, usize)> = vec![(start, next(start), 0)];
    let mut seen = BTreeSet::from([start]);
    while let Some((_, candidates, tried)) = stack.last_mut() {
        let Some(&j) = candidates.get(*tried) else {
            stack.pop();
            continue;
        };
        *tried += 1;
        if j == start {
            return stack.iter().map(|(at, _, _)| *at).collect();
        }
        if seen.insert(j) {
            stack.push((j, next(j), 0));
        }
    }
    vec![start]
}

/// The steps that need step `i`, for each `i`, in file order.
pub fn dependents<N: AsRef<[usize]>>(needs: &[N]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); needs.len()];
    for (i, ns) in needs.iter().enumerate() {
        for &j in ns.as_ref() {
            out[j].push(i);
        }
    }
    out
}

/// Is step `j` upstream of step `i`? A breadth-first walk back along `needs` from `i`, which
/// stops as soon as it meets `j`: templates name steps close upstream, so this is cheap where
/// a full ancestor set per step would be quadratic.
pub fn is_upstream(needs: &[Vec<usize>], j: usize, i: usize) -> bool {
    let mut seen = HashSet::from([i]);
    let mut queue: VecDeque<usize> = needs[i].iter().copied().collect();
    while let Some(k) = queue.pop_front() {
        if k == j {
            return true;
        }
        if seen.insert(k) {
            queue.extend(needs[k].iter().copied());
        }
    }
    false
}

/// Step `of` and every step upstream of it (by index): with `rto_ends_at`, the steps whose
/// time counts against the RTO. The others are the observation period.
pub fn upstream_of(needs: &[&[usize]], of: usize) -> Vec<bool> {
    let mut up = vec![false; needs.len()];
    let mut stack = vec![of];
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut up[i], true) {
            stack.extend(needs[i].iter().copied());
        }
    }
    up
}

/// The longest path where each node weighs `weights[i]`, over a topological `order`.
pub fn longest_path(
    weights: &[Duration],
    needs: &[&[usize]],
    order: &[usize],
) -> (Vec<usize>, Duration) {
    longest_path_to(weights, needs, order, None)
}

/// The longest path ending at `end` (or anywhere, for `None`): with `rto_ends_at`, the path
/// that decides when service is restored. Ties go to the step earliest in the file, so the
/// critical path printed by `plan` is the one the machine projects.
pub fn longest_path_to(
    weights: &[Duration],
    needs: &[&[usize]],
    order: &[usize],
    end: Option<usize>,
) -> (Vec<usize>, Duration) {
    let n = weights.len();
    let mut finish = vec![Duration::ZERO; n];
    let mut pred: Vec<Option<usize>> = vec![None; n];
    for &i in order {
        let mut start = Duration::ZERO;
        for &j in needs[i] {
            if finish[j] > start || (finish[j] == start && pred[i].is_some_and(|p| j < p)) {
                start = finish[j];
                pred[i] = Some(j);
            }
        }
        finish[i] = start + weights[i];
    }
    let Some(end) =
        end.or_else(|| (0..n).max_by(|&a, &b| finish[a].cmp(&finish[b]).then(b.cmp(&a))))
    else {
        return (Vec::new(), Duration::ZERO);
    };
    let mut path = vec![end];
    let mut at = end;
    while let Some(p) = pred[at] {
        path.push(p);
        at = p;
    }
    path.reverse();
    (path, finish[end])
}

/// For each step, the heaviest chain of its dependents below it (itself not counted), going
/// only through steps where `counts` is true: the machine's projection adds it to a frontier
/// step's finish, so that an input costs what is in flight, not the whole plan.
pub fn longest_below(
    weights: &[Duration],
    dependents: &[Vec<usize>],
    order: &[usize],
    counts: &[bool],
) -> Vec<Duration> {
    let mut below = vec![Duration::ZERO; weights.len()];
    for &i in order.iter().rev() {
        below[i] = dependents[i]
            .iter()
            .filter(|&&d| counts[d])
            .map(|&d| weights[d] + below[d])
            .max()
            .unwrap_or_default();
    }
    below
}

/// Each step's stage: 1 for a step with no needs, else 1 + the highest stage among its needs
/// (the columns of `plan`'s table and graph). `order` must be topological.
pub fn stages<N: AsRef<[usize]>>(needs: &[N], order: &[usize]) -> Vec<usize> {
    let mut stage = vec![0usize; needs.len()];
    for &i in order {
        stage[i] = 1 + needs[i]
            .as_ref()
            .iter()
            .map(|&j| stage[j])
            .max()
            .unwrap_or(0);
    }
    stage
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Duration = Duration::from_secs(60);

    #[test]
    fn topo_order_breaks_ties_by_file_order() {
        // 0 and 2 are ready at once; 1 needs 2.
        let needs = vec![vec![], vec![2], vec![]];
        assert_eq!(topo_order(&needs), vec![0, 2, 1]);
    }

    #[test]
    fn topo_order_leaves_out_the_steps_of_a_cycle() {
        let needs = vec![vec![], vec![2], vec![1]];
        assert_eq!(topo_order(&needs), vec![0]);
    }

    #[test]
    fn longest_path_picks_the_heaviest_chain() {
        let weights = [M * 5, M * 15, M * 60, M * 15];
        let needs: Vec<&[usize]> = vec![&[], &[0], &[0], &[1, 2]];
        let (path, total) = longest_path(&weights, &needs, &[0, 1, 2, 3]);
        assert_eq!(path, vec![0, 2, 3]);
        assert_eq!(total, M * 80);
    }

    #[test]
    fn longest_path_ties_go_to_the_step_earliest_in_the_file() {
        let weights = [M, M, M];
        let needs: Vec<&[usize]> = vec![&[], &[], &[1, 0]];
        assert_eq!(longest_path(&weights, &needs, &[0, 1, 2]).0, vec![0, 2]);
    }

    #[test]
    fn longest_path_to_a_step_ignores_the_heavier_chain_after_it() {
        let weights = [M, M * 2, M * 100];
        let needs: Vec<&[usize]> = vec![&[], &[0], &[1]];
        assert_eq!(
            longest_path_to(&weights, &needs, &[0, 1, 2], Some(1)),
            (vec![0, 1], M * 3)
        );
        assert_eq!(longest_path(&[], &[], &[]), (Vec::new(), Duration::ZERO));
    }

    #[test]
    fn cycles_names_each_cycle_from_its_lowest_step() {
        // 1 → 2 → 3 → 1, and 4 needs itself; 0 is on none.
        let needs = vec![vec![], vec![3], vec![1], vec![2], vec![4]];
        assert_eq!(cycles(&needs), vec![vec![1, 3, 2], vec![4]]);
        assert!(cycles(&[vec![], vec![0]]).is_empty());
    }

    #[test]
    fn a_cycle_through_a_hundred_thousand_steps_does_not_overflow_the_stack() {
        let n = 100_000;
        let needs: Vec<Vec<usize>> = (0..n).map(|i| vec![(i + 1) % n]).collect();
        assert_eq!(cycles(&needs)[0].len(), n);
    }

    #[test]
    fn upstream_sets_and_dependents_follow_needs() {
        let needs = vec![vec![], vec![0], vec![], vec![1, 2]];
        let refs: Vec<&[usize]> = needs.iter().map(Vec::as_slice).collect();
        assert_eq!(upstream_of(&refs, 1), vec![true, true, false, false]);
        assert!(is_upstream(&needs, 0, 3));
        assert!(!is_upstream(&needs, 3, 0));
        assert_eq!(dependents(&needs), vec![vec![1], vec![3], vec![3], vec![]]);
    }

    #[test]
    fn a_step_is_one_stage_after_its_latest_need() {
        let needs = vec![vec![], vec![0], vec![], vec![1, 2]];
        assert_eq!(stages(&needs, &topo_order(&needs)), vec![1, 2, 1, 3]);
    }

    #[test]
    fn longest_below_stops_at_steps_that_do_not_count() {
        let weights = [M, M * 2, M * 100];
        let needs = vec![vec![], vec![0], vec![1]];
        let below = longest_below(
            &weights,
            &dependents(&needs),
            &[0, 1, 2],
            &[true, true, false],
        );
        assert_eq!(below, vec![M * 2, Duration::ZERO, Duration::ZERO]);
    }
}
