//! What a solve will run: vertices deduplicated by id, validated, pruned to what the
//! targets reach, with input counts and dependents for scheduling.

use std::collections::HashMap;

use crate::{SolveError, Vertex};

pub(crate) struct Plan {
    /// For each list position, the position of the first vertex with the same id.
    pub canon: Vec<usize>,
    /// For each canonical vertex, its inputs as canonical positions.
    pub inputs: Vec<Vec<usize>>,
    /// Canonical vertices the targets reach.
    pub reachable: Vec<bool>,
    /// For each canonical vertex, inputs not yet done (one per input edge).
    pub pending: Vec<usize>,
    /// For each canonical vertex, the reachable vertices that take it as input (one
    /// entry per input edge).
    pub dependents: Vec<Vec<usize>>,
}

impl Plan {
    pub fn new<T>(vertices: &[Vertex<T>], targets: &[usize]) -> Result<Plan, SolveError> {
        let n = vertices.len();
        let mut first = HashMap::new();
        let mut canon = Vec::with_capacity(n);
        for (i, v) in vertices.iter().enumerate() {
            if let Some(&input) = v.inputs.iter().find(|&&input| input >= i) {
                return Err(SolveError::InvalidInput {
                    index: i,
                    vertex: v.name.clone(),
                    input,
                });
            }
            canon.push(*first.entry(v.id).or_insert(i));
        }
        if let Some(&target) = targets.iter().find(|&&t| t >= n) {
            return Err(SolveError::InvalidTarget { target, len: n });
        }
        let inputs: Vec<Vec<usize>> = vertices
            .iter()
            .map(|v| v.inputs.iter().map(|&i| canon[i]).collect())
            .collect();

        let mut reachable = vec![false; n];
        let mut stack: Vec<usize> = targets.iter().map(|&t| canon[t]).collect();
        while let Some(v) = stack.pop() {
            if !std::mem::replace(&mut reachable[v], true) {
                stack.extend(&inputs[v]);
            }
        }

        let mut pending = vec![0; n];
        let mut dependents = vec![Vec::new(); n];
        for v in (0..n).filter(|&v| reachable[v]) {
            pending[v] = inputs[v].len();
            for &input in &inputs[v] {
                dependents[input].push(v);
            }
        }
        Ok(Plan {
            canon,
            inputs,
            reachable,
            pending,
            dependents,
        })
    }

    /// Reachable vertices with no inputs.
    pub fn roots(&self) -> Vec<usize> {
        (0..self.canon.len())
            .filter(|&v| self.reachable[v] && self.pending[v] == 0)
            .collect()
    }
}
