"""One small graph per op spelling the loader translates and the zoo's
families do not all exercise (LRN, MirrorPad, PadV2 with int64 paddings,
StridedSlice with new axes, Exp/Log/Pow/Maximum/Minimum, IdentityN with two
outputs, PlaceholderWithDefault, Concat v1, FusedBatchNormV2...), written
in TF1 graph mode with TensorFlow 2.15 and run by TensorFlow for golden
outputs. Each takes a [1, 8, 8, 3] float input named "input" and ends in a
Softmax named "out" over 6 values.

    /tmp/zoo-venv/bin/python tools/zoo/ops.py    # writes tests/fixtures/zoo/ops/
"""
import json
import os

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
tf1.disable_eager_execution()
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_REL = "tests/fixtures/zoo/ops"
OUT = os.path.join(REPO, OUT_REL)
H = W = 8


def head(x, rng):
    """Global mean, a dense layer to 6, softmax named out."""
    x = tf.reduce_mean(x, axis=[1, 2])
    c = x.shape[-1]
    w = tf.constant(rng.normal(0, 0.5, (c, 6)).astype(np.float32))
    return tf.nn.softmax(tf.matmul(x, w), name="out")


def conv(x, rng, out=6):
    k = tf.constant(rng.normal(0, 0.4, (3, 3, x.shape[-1], out)).astype(np.float32))
    return tf.nn.conv2d(x, k, strides=1, padding="SAME")


def lrn(x, rng):
    y = tf.nn.relu(conv(x, rng, 8))
    y = tf.nn.local_response_normalization(y, depth_radius=2, bias=1.0, alpha=0.1, beta=0.75)
    return head(y, rng)


def mirror_pad(x, rng):
    y = tf.pad(x, tf.constant([[0, 0], [2, 1], [1, 2], [0, 0]], tf.int32), mode="REFLECT")
    return head(conv(y, rng), rng)


def pad_v2_int64(x, rng):
    y = tf.raw_ops.PadV2(input=x, paddings=tf.constant([[0, 0], [1, 1], [2, 0], [0, 0]], tf.int64),
                         constant_values=tf.constant(0.5))
    return head(conv(y, rng), rng)


def elementwise(x, rng):
    a = tf.exp(tf.minimum(x, 1.0))
    b = tf.math.log(tf.maximum(x, 0.1) + 1.0)
    c = tf.pow(tf.abs(x) + 0.5, 1.5)
    d = tf.sqrt(tf.square(x) + 1.0) * tf.math.rsqrt(tf.abs(x) + 1.0)
    e = tf.math.erf(x) + tf.math.squared_difference(x, 0.25)
    return head(tf.concat([a, b, c, d, e], axis=3), rng)


def new_axis(x, rng):
    # x[:, tf.newaxis, 1:7, :, 0] -> [1, 1, 6, 8], then back to NHWC.
    y = x[:, tf.newaxis, 1:7, :, 0]
    y = tf.transpose(y, [0, 2, 3, 1])
    return head(conv(y, rng), rng)


def identity_n(x, rng):
    a, b = tf.identity_n([tf.nn.relu(x), tf.nn.sigmoid(x)])
    return head(conv(tf.concat([a, b], axis=3), rng), rng)


def with_default(x, rng):
    y = tf1.placeholder_with_default(tf.nn.relu6(conv(x, rng)), [1, H, W, 6], name="bottleneck")
    y = tf.stop_gradient(y)
    return head(y, rng)


def concat_v1_bn_v2(x, rng):
    a = conv(x, rng)
    b = conv(x, rng)
    y = tf.raw_ops.Concat(concat_dim=tf.constant(3), values=[a, b])
    c = y.shape[-1]
    y = tf.raw_ops.FusedBatchNormV2(
        x=y, scale=tf.constant(rng.uniform(0.5, 1.5, c).astype(np.float32)),
        offset=tf.constant(rng.normal(0, 0.2, c).astype(np.float32)),
        mean=tf.constant(rng.normal(0, 0.2, c).astype(np.float32)),
        variance=tf.constant(rng.uniform(0.5, 2, c).astype(np.float32)),
        epsilon=0.001, is_training=False)[0]
    y = tf.squeeze(tf.nn.avg_pool2d(y, 8, 8, "VALID"), axis=[1, 2])
    w = tf.constant(rng.normal(0, 0.5, (c, 6)).astype(np.float32))
    return tf.nn.softmax(tf.matmul(y, w), name="out")


def pack_unknown_batch(x, rng):
    # Reshape through a shape built with Shape/StridedSlice/Pack, as Keras does.
    y = conv(x, rng)
    n = tf.shape(y)[0]
    y = tf.reshape(y, tf.stack([n, H * W * 6]))
    w = tf.constant(rng.normal(0, 0.1, (H * W * 6, 6)).astype(np.float32))
    return tf.nn.softmax(tf.matmul(y, w), name="out")


GRAPHS = [lrn, mirror_pad, pad_v2_int64, elementwise, new_axis, identity_n, with_default,
          concat_v1_bn_v2, pack_unknown_batch]


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = []
    for build in GRAPHS:
        name = build.__name__
        seed = sum(map(ord, name))
        rng = np.random.default_rng(seed)
        g = tf.Graph()
        with g.as_default():
            batch = None if name == "pack_unknown_batch" else 1
            x = tf1.placeholder(tf.float32, [batch, H, W, 3], name="input")
            build(x, rng)
            gd = g.as_graph_def()
        path = os.path.join(OUT, f"{name}.pb")
        with open(path, "wb") as f:
            f.write(gd.SerializeToString(deterministic=True))
        cases = []
        with tf1.Session(graph=g) as sess:
            for i in range(2):
                xin = np.random.default_rng(seed + 10 + i).uniform(-1, 1, (1, H, W, 3)).astype(np.float32)
                y = sess.run("out:0", {"input:0": xin}).astype(np.float32)
                assert y.shape == (1, 6) and abs(y.sum() - 1) < 1e-4, (name, y)
                case = f"{name}-{i}"
                xin.astype("<f4").tofile(os.path.join(OUT, case + ".input.f32"))
                y.astype("<f4").tofile(os.path.join(OUT, case + ".output.f32"))
                cases.append(case)
        ops = sorted({n.op for n in gd.node})
        manifest.append({"name": name, "graph": f"{OUT_REL}/{name}.pb", "format": "tensorflow",
                         "input": "input", "output": "out", "layout": "nhwc",
                         "input_shape": [1, H, W, 3], "output_shape": [1, 6], "cases": cases,
                         "ops": ops, "tensorflow": tf.__version__})
        print(f"{name:20s} {os.path.getsize(path):7d} bytes  {' '.join(ops)}")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
