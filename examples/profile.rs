//! Where one model's time goes, operation by operation:
//!
//!     cargo run --release --example profile -- GRAPH [SIZE] [RUNS] [THREADS] [TOP]
//!
//! Loads GRAPH with predictd's own loader (the shipped theme model's settings
//! at SIZE x SIZE, default 224; so the same rewrites and kernels as the
//! daemon), runs the optimized plan RUNS times (default 30) after a warm-up,
//! timing every node with tract's `run_plan_with_eval`, and prints one row
//! per kind of tract operation: nodes, mean milliseconds per inference, share.
//! THREADS (default 1) runs it on a pool of that many threads, as the
//! `threads` key of a `[[model]]` does. A second table lists the TOP
//! slowest nodes (default 10). For another graph, pass INPUT and OUTPUT node names in the
//! environment (`PROFILE_INPUT`, `PROFILE_OUTPUT`).

use predictd::config::Config;
use predictd::inference::{executor_for, optimized_plan, run_on};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;
use tract_tensorflow::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 {
        eprintln!("usage: profile GRAPH [SIZE] [RUNS] [THREADS] [TOP]");
        std::process::exit(64);
    }
    let number = |i: usize, default: usize| -> usize {
        args.get(i)
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(default)
    };
    let (size, runs, threads) = (number(2, 224), number(3, 30).max(1), number(4, 1).max(1));
    let top = number(5, 10);
    let mut spec = Config::default().model("theme").unwrap().clone();
    spec.graph = PathBuf::from(&args[1]);
    spec.input_width = size as u32;
    spec.input_height = size as u32;
    if let Ok(v) = std::env::var("PROFILE_INPUT") {
        spec.input = v;
    }
    if let Ok(v) = std::env::var("PROFILE_OUTPUT") {
        spec.output = v;
    }
    let plan = optimized_plan(&spec).unwrap_or_else(|e| {
        eprintln!("profile: {e}");
        std::process::exit(65);
    });
    let data: Vec<f32> = (0..size * size * 3)
        .map(|i| ((i % 255) as f32 - 127.0) / 128.0)
        .collect();
    let input = Tensor::from_shape(&[1, size, size, 3], &data).unwrap();
    spec.threads = threads;
    let executor = executor_for(&spec);

    let model = plan.model();
    let mut per_node = vec![0f64; model.nodes.len()];
    let mut state = plan.spawn().expect("a state");
    let mut total = 0f64;
    run_on(&executor, || {
        for run in 0..=runs {
            let started = Instant::now();
            let mut times = vec![0f64; model.nodes.len()];
            state
                .run_plan_with_eval(
                    tvec!(input.clone().into_tvalue()),
                    |ctx, op_state, node, inputs| {
                        let t = Instant::now();
                        let out =
                            tract_tensorflow::tract_core::plan::eval(ctx, op_state, node, inputs);
                        times[node.id] += t.elapsed().as_secs_f64() * 1000.0;
                        out
                    },
                )
                .expect("the plan runs");
            if run > 0 {
                // the first run warms caches and allocations
                total += started.elapsed().as_secs_f64() * 1000.0;
                per_node.iter_mut().zip(&times).for_each(|(a, t)| *a += t);
            }
        }
    });
    let runs_f = runs as f64;
    let mut kinds: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for node in &model.nodes {
        let entry = kinds.entry(kind(node)).or_default();
        entry.0 += 1;
        entry.1 += per_node[node.id] / runs_f;
    }
    let mut rows: Vec<_> = kinds.into_iter().filter(|(_, (_, ms))| *ms > 0.0).collect();
    rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    let mean = total / runs_f;
    let kernel = predictd::inference::depthwise_kernel();
    println!(
        "{} at {size}x{size}, {threads} thread(s), mean of {runs} runs: {mean:.2} ms per inference \
         (depthwise kernel: {kernel})",
        args[1]
    );
    println!();
    println!("| tract op | nodes | ms | share |");
    println!("|---|---|---|---|");
    for (name, (count, ms)) in &rows {
        println!("| {name} | {count} | {ms:.2} | {:.0}% |", 100.0 * ms / mean);
    }
    println!();
    let mut slowest: Vec<usize> = (0..model.nodes.len()).collect();
    slowest.sort_by(|&a, &b| per_node[b].total_cmp(&per_node[a]));
    println!("| slowest nodes | op | output | ms |");
    println!("|---|---|---|---|");
    for &id in slowest.iter().take(top) {
        let node = &model.nodes[id];
        let shape = node
            .outputs
            .first()
            .map(|o| format!("{:?}", o.fact.shape))
            .unwrap_or_default();
        println!(
            "| {} | {} | {shape} | {:.2} |",
            node.name,
            kind(node),
            per_node[id] / runs_f
        );
    }
}

/// The row a node is counted in: its op's name, with what a fused chain of
/// element-wise ops holds.
fn kind(node: &TypedNode) -> String {
    let name = node.op().name().to_string();
    if name.starts_with("OptBinChain") || name == "ElementWiseOp" || name == "TypedBinOp" {
        if let Ok(info) = node.op().info() {
            if let Some(first) = info.first() {
                return format!("{name}({first})");
            }
        }
    }
    name
}
