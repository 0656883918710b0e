"""Accuracy of the served models on the labelled photos, through predictd.

Runs `predictd predict --json` (the daemon's own decode, crop and
inference path) on every photo of tests/fixtures/photos/labels.csv at its
labelled point, and prints theme and color top-1/top-5 with the misses.
Needs only the Python standard library and a built predictd:

    python3 tools/models/evaluate.py [--predictd target/release/predictd] [--theme-graph G --theme-size N]
"""
import argparse
import csv
import json
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "tests" / "fixtures" / "photos"


def config_for(predictd, graph, size):
    """The default config with the theme model's graph and size replaced."""
    text = subprocess.run([predictd, "config"], check=True, capture_output=True, text=True, cwd=ROOT).stdout
    if graph:
        text = text.replace(str(ROOT / "models" / "themeClassifier.pb"), str(Path(graph).resolve()))
        text = text.replace("input-width = 224", f"input-width = {size}").replace("input-height = 224", f"input-height = {size}")
    f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    f.write(text)
    f.close()
    return f.name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--predictd", default=str(ROOT / "target" / "debug" / "predictd"))
    ap.add_argument("--theme-graph")
    ap.add_argument("--theme-size", type=int, default=224)
    args = ap.parse_args()
    config = config_for(args.predictd, args.theme_graph, args.theme_size)
    rows = list(csv.DictReader(open(PHOTOS / "labels.csv")))
    hits = {"theme": [0, 0, 0], "color": [0, 0, 0]}  # top1, top5, count
    misses = {"theme": [], "color": []}
    confusion = Counter()
    for row in rows:
        out = subprocess.run(
            [args.predictd, "predict", "--config", config, "--json", "--x", row["x"], "--y", row["y"], str(PHOTOS / row["file"])],
            check=True, capture_output=True, text=True).stdout
        answer = json.loads(out)
        for model in ("theme", "color"):
            truth = row[model]
            if not truth:
                continue
            labels = [p["label"] for p in answer["predictions"][model]]
            h = hits[model]
            h[2] += 1
            h[0] += labels[0] == truth
            h[1] += truth in labels[:5]
            if labels[0] != truth:
                misses[model].append(f"{row['file']}: {truth} -> {labels[0]} ({'in top 5' if truth in labels else 'not in top 5'})")
                confusion[(model, truth, labels[0])] += 1
    for model in ("theme", "color"):
        t1, t5, n = hits[model]
        print(f"{model}: top-1 {t1}/{n} = {t1 / n:.0%}, top-5 {t5}/{n} = {t5 / n:.0%}")
        for m in misses[model]:
            print(f"  miss {m}")


if __name__ == "__main__":
    main()
