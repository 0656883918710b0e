#!/usr/bin/env python3
"""The stack predictd replaces, rebuilt for comparison: CherryPy + a TensorFlow
Session per graph + Pillow, as the 2018 design served these classifiers.

    reference_server.py SOCKET MODELS_DIR LABELS_DIR

Serves `POST /v1/predict?x=X&y=Y` with the image as the body on a Unix
socket, answering JSON shaped like predictd's (`predictions.color`,
`predictions.theme`, 5 labels each), so that `predictd bench` can load both
servers the same way. Per request: one decode (Pillow, EXIF orientation
applied), the theme window (80% of the image around the point, shifted to
stay inside) cropped and resized in one Pillow call, the 9x9 color patch
around the point (clamped at borders), then both graphs run in their own
Session. Graphs are loaded once; TensorFlow keeps its own thread pools.
Readiness: `GET /readyz` answers 200 once both sessions have run once.

`--time-theme N [THREADS]` instead prints TensorFlow's milliseconds per
inference of the theme graph alone (median of N runs at 224x224; on THREADS
threads, else TensorFlow's default pools) and exits.
"""

import io
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cherrypy  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

Image.MAX_IMAGE_PIXELS = 40_000_000


class Graph:
    """One frozen graph in its own Session."""

    def __init__(self, path, input_name, output_name):
        graph_def = tf.compat.v1.GraphDef()
        with open(path, "rb") as f:
            graph_def.ParseFromString(f.read())
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        self.session = tf.compat.v1.Session(graph=self.graph)
        self.input = self.graph.get_tensor_by_name(input_name + ":0")
        self.output = self.graph.get_tensor_by_name(output_name + ":0")

    def run(self, batch):
        return self.session.run(self.output, {self.input: batch})[0]


def read_labels(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def top(labels, probabilities, n=5):
    order = np.argsort(-probabilities)[:n]
    return [{"label": labels[i], "probability": float(probabilities[i])} for i in order]


class Predictor:
    def __init__(self, models_dir, labels_dir):
        self.theme = Graph(os.path.join(models_dir, "themeClassifier.pb"), "input", "themes")
        self.color = Graph(os.path.join(models_dir, "colorClassifier.pb"), "input", "colors")
        self.themes = read_labels(os.path.join(labels_dir, "themes.txt"))
        self.colors = read_labels(os.path.join(labels_dir, "colors.txt"))

    def predict(self, body, x, y):
        img = Image.open(io.BytesIO(body))
        img = ImageOps.exif_transpose(img).convert("RGB")
        w, h = img.size
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError("point outside the image")
        # Theme: 80% of the image around the point, shifted inside, resized
        # to 224x224 in the same Pillow call.
        cw, ch = max(1, min(w, round(w * 0.8))), max(1, min(h, round(h * 0.8)))
        left = min(max(x - cw // 2, 0), w - cw)
        top_ = min(max(y - ch // 2, 0), h - ch)
        window = img.resize((224, 224), Image.BILINEAR, box=(left, top_, left + cw, top_ + ch))
        theme_in = (np.asarray(window, dtype=np.float32) - 127.0) / 128.0
        # Color: the 9x9 pixels around the point, clamped at the borders.
        xs = np.clip(np.arange(x - 4, x + 5), 0, w - 1)
        ys = np.clip(np.arange(y - 4, y + 5), 0, h - 1)
        patch_box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        patch = np.asarray(img.crop(patch_box), dtype=np.float32)
        patch = patch[np.ix_(ys - ys.min(), xs - xs.min())]
        color_in = patch / 255.0
        colors = self.color.run(color_in[None])
        themes = self.theme.run(theme_in[None])
        return {
            "predictions": {"color": top(self.colors, colors), "theme": top(self.themes, themes)},
            "image": {"width": w, "height": h},
            "point": [x, y],
        }


class Api:
    def __init__(self, predictor):
        self.predictor = predictor

    @cherrypy.expose
    def readyz(self):
        return "ready"

    @cherrypy.expose
    @cherrypy.tools.json_out()
    def predict(self, x=None, y=None):
        body = cherrypy.request.body.read()
        try:
            return self.predictor.predict(body, int(x), int(y))
        except Exception as e:  # the old service answered every bad input 400
            cherrypy.response.status = 400
            return {"error": {"code": "bad_request", "message": str(e)}}


def time_theme(runs, threads):
    here = os.path.dirname(os.path.abspath(__file__))
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    g = Graph(os.path.join(here, "..", "models", "themeClassifier.pb"), "input", "themes")
    batch = ((np.arange(224 * 224 * 3) % 255).astype(np.float32) - 127.0) / 128.0
    batch = batch.reshape(1, 224, 224, 3)
    for _ in range(5):
        g.run(batch)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        g.run(batch)
        times.append((time.perf_counter() - t) * 1000.0)
    times.sort()
    print(f"{times[len(times) // 2]:.2f}")


def main():
    if len(sys.argv) in (3, 4) and sys.argv[1] == "--time-theme":
        time_theme(int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) == 4 else 0)
        return
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    socket_path, models_dir, labels_dir = sys.argv[1:]
    predictor = Predictor(models_dir, labels_dir)
    grey = Image.new("RGB", (64, 48), (128, 128, 128))
    buf = io.BytesIO()
    grey.save(buf, "PNG")
    predictor.predict(buf.getvalue(), 32, 24)  # warm both sessions
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    cherrypy.config.update(
        {
            "server.socket_file": socket_path,
            "server.thread_pool": 10,
            "server.socket_queue_size": 128,
            "server.max_request_body_size": 64 * 1024 * 1024,
            "engine.autoreload.on": False,
            "log.screen": False,
            "environment": "production",
        }
    )
    cherrypy.tree.mount(Api(predictor), "/v1" , {"/": {}})
    cherrypy.tree.mount(Api(predictor), "/", {"/": {}})
    cherrypy.engine.start()
    cherrypy.engine.block()


if __name__ == "__main__":
    main()
