//! Loads a frozen graph with tract-tensorflow alone (none of predictd's
//! rewrites; only FusedBatchNormV3 named as FusedBatchNorm) and optimizes it, as an upstream report would: the minimal
//! reproduction of a tract failure (docs/configuration.md, "Graphs users bring").
//!
//!     cargo run --example tract_repro -- GRAPH.pb INPUT OUTPUT H W
use tract_tensorflow::prelude::*;

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, graph, input, output, h, w] = &args[..] else {
        eprintln!("usage: tract_repro GRAPH.pb INPUT OUTPUT H W");
        std::process::exit(64);
    };
    let mut tf = tract_tensorflow::tensorflow();
    // The one addition: TF 2.x's FusedBatchNormV3 is tract's FusedBatchNorm
    // (the same output 0 at inference).
    let bn = tf.op_register.0["FusedBatchNorm"];
    tf.op_register.insert("FusedBatchNormV3", bn);
    let mut model = tf.model_for_path(graph)?;
    model.set_input_names([input.as_str()])?;
    model.set_input_fact(0, f32::fact([1, h.parse()?, w.parse()?, 3]).into())?;
    model.select_outputs_by_name([output.as_str()])?;
    let typed = model.into_typed()?;
    println!("typed: {} nodes", typed.nodes().len());
    let decluttered = typed.into_decluttered()?;
    println!("decluttered: {} nodes", decluttered.nodes().len());
    decluttered.into_optimized()?.into_runnable()?;
    println!("optimized: ok");
    Ok(())
}
