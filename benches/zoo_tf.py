"""TensorFlow's time per inference on each graph of a zoo manifest, for
benches/zoo.sh: a tf.compat.v1 Session per frozen graph (as the service
predictd replaces ran its graphs), fed the graph's first golden input,
the median of RUNS runs after five warm-up runs, on THREADS intra- and
inter-op threads. One line a graph: `NAME MEDIAN_MS` (ONNX graphs:
`NAME n/a`).

    benches/.venv/bin/python benches/zoo_tf.py MANIFEST [RUNS] [THREADS]
"""
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf


def main():
    manifest = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    for e in json.load(open(manifest)):
        if e["format"] != "tensorflow":
            print(f"{e['name']} n/a", flush=True)
            continue
        path = os.path.join(root, e["graph"])
        graph_def = tf.compat.v1.GraphDef()
        with open(path, "rb") as f:
            graph_def.ParseFromString(f.read())
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        session = tf.compat.v1.Session(graph=graph)
        feed = graph.get_tensor_by_name(e["input"] + ":0")
        fetch = graph.get_tensor_by_name(e["output"] + ":0")
        case = os.path.join(os.path.dirname(path), e["cases"][0] + ".input.f32")
        batch = np.fromfile(case, dtype="<f4").reshape(e["input_shape"])
        for _ in range(5):
            session.run(fetch, {feed: batch})
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            session.run(fetch, {feed: batch})
            times.append((time.perf_counter() - t) * 1000.0)
        times.sort()
        print(f"{e['name']} {times[len(times) // 2]:.3f}", flush=True)
        session.close()


if __name__ == "__main__":
    main()
