"""Tiny frozen TF graphs to bisect tract's ChangeAxes failure on
Conv2D -> FusedBatchNormV3 ("Conv: Bias should be scalar or a vector with one
value per output channel. Output channels is 16, bias is 1,16,F32").

Run:  /tmp/zoo-venv/bin/python tools/zoo/repro/make.py   (from anywhere)
Writes <name>.pb and manifest.json next to this file. Every graph is frozen
the same way: tf.function(model).get_concrete_function(
TensorSpec([None,H,W,3], name='input')) + convert_variables_to_constants_v2.
Input placeholder 'input', output node 'Identity'.
"""
import json
import os
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers as L
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

HERE = os.path.dirname(os.path.abspath(__file__))
C = 16  # channels


def seed_of(name):
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


# ---------------------------------------------------------------- building blocks
def conv_bn(x, filters=C, k=3, s=1, padding="same", use_bias=True, scale=True, act="relu", name=None):
    x = L.Conv2D(filters, k, strides=s, padding=padding, use_bias=use_bias, name=f"{name}_conv")(x)
    x = L.BatchNormalization(axis=3, epsilon=1.001e-5, scale=scale, name=f"{name}_bn")(x)
    if act:
        x = L.Activation(act, name=f"{name}_{act}")(x)
    return x


def head(x):
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    return L.Dense(10, activation="softmax", name="predictions")(x)


def inp(h):
    return keras.Input(shape=(h, h, 3), name="input")


# ---------------------------------------------------------------- candidates
# each builder returns (model, H, description)
def m_conv_bn():
    i = inp(16)
    return keras.Model(i, conv_bn(i, name="b1")), 16, \
        "Conv2D 3x3 same use_bias=True (16 ch) -> BatchNormalization -> ReLU; 4-D output."


def m_conv_nobias_bn():
    i = inp(16)
    return keras.Model(i, conv_bn(i, use_bias=False, name="b1")), 16, \
        "Same as conv_bn but Conv2D use_bias=False (no BiasAdd before FusedBatchNormV3)."


def m_conv_bn_head():
    i = inp(16)
    return keras.Model(i, head(conv_bn(i, name="b1"))), 16, \
        "conv_bn followed by GlobalAveragePooling2D + Dense(10, softmax) (only the head differs from conv_bn)."


def m_conv_bn_relu_x2():
    i = inp(16)
    x = conv_bn(i, name="b1")
    x = conv_bn(x, name="b2")
    return keras.Model(i, x), 16, "Two conv_bn (Conv2D 3x3 bias + BN + ReLU) in sequence; 4-D output."


def residual_block_v1(x, name):
    # ResNet basic shape: main conv_bn_relu -> conv_bn ; shortcut 1x1 conv_bn ; add ; relu
    sc = conv_bn(x, k=1, act=None, name=f"{name}_0")
    y = conv_bn(x, name=f"{name}_1")
    y = conv_bn(y, act=None, name=f"{name}_2")
    y = L.Add(name=f"{name}_add")([sc, y])
    return L.Activation("relu", name=f"{name}_out")(y)


def m_residual():
    i = inp(16)
    x = residual_block_v1(i, "blk1")
    x = conv_bn(x, name="post")
    return keras.Model(i, head(x)), 16, \
        ("Residual block (main: conv_bn_relu 3x3 -> conv_bn 3x3; shortcut: 1x1 conv_bn; Add; ReLU), then a conv_bn_relu "
         "3x3 consuming the post-Add ReLU, then GAP + Dense softmax.")


def bottleneck_s2(x, filters, name):
    # ResNet50 conv3_block1: shortcut 1x1/2 conv_bn ; main 1x1/2, 3x3, 1x1 ; add ; relu
    sc = conv_bn(x, 4 * filters, k=1, s=2, act=None, name=f"{name}_0")
    y = conv_bn(x, filters, k=1, s=2, name=f"{name}_1")
    y = conv_bn(y, filters, k=3, name=f"{name}_2")
    y = conv_bn(y, 4 * filters, k=1, act=None, name=f"{name}_3")
    y = L.Add(name=f"{name}_add")([sc, y])
    return L.Activation("relu", name=f"{name}_out")(y)


def m_residual_then_3x3():
    i = inp(32)
    x = residual_block_v1(i, "blk1")
    x = bottleneck_s2(x, 4, "conv3_block1")
    return keras.Model(i, head(x)), 32, \
        ("residual's first block, then a ResNet50 conv3_block1-style bottleneck: shortcut 1x1/2 conv_bn (16 ch), "
         "main 1x1/2 conv_bn_relu (4 ch) -> 3x3 conv_bn_relu (4 ch, the 'conv3_block1_2' position) -> 1x1 conv_bn (16 ch); "
         "Add; ReLU; GAP + Dense softmax.")


def m_stride2_1x1_3x3():
    i = inp(32)
    x = conv_bn(i, name="b1")
    x = conv_bn(x, 8, k=1, s=2, name="b2_1")
    x = conv_bn(x, 8, k=3, name="b2_2")
    return keras.Model(i, head(x)), 32, \
        ("conv_bn_relu 3x3, then conv3_block1's main path without the shortcut/Add: 1x1 stride-2 conv_bn_relu -> "
         "3x3 conv_bn_relu (8 ch); GAP + Dense softmax.")


def m_stride2_bn():
    i = inp(32)
    x = conv_bn(i, name="b1")
    x = conv_bn(x, k=3, s=2, name="b2")
    return keras.Model(i, x), 32, \
        "conv_bn_relu 3x3, then Conv2D 3x3 stride 2 same (bias) -> BN -> ReLU; 4-D output."


def m_stride2_bn_head():
    i = inp(32)
    x = conv_bn(i, name="b1")
    x = conv_bn(x, k=3, s=2, name="b2")
    return keras.Model(i, head(x)), 32, "stride2_bn plus GAP + Dense softmax head."


def m_bn_scale_false():
    i = inp(32)
    kw = dict(use_bias=False, scale=False)
    x = conv_bn(i, 8, s=2, padding="valid", name="stem1", **kw)     # InceptionV3 conv2d_bn, valid, stride 2
    x = conv_bn(x, 8, padding="valid", name="stem2", **kw)
    a = conv_bn(x, 8, k=1, name="br1x1", **kw)
    b = conv_bn(x, 8, k=1, name="br3x3_1", **kw)
    b = conv_bn(b, 8, k=3, name="br3x3_2", **kw)
    x = L.Concatenate(axis=3, name="mixed0")([a, b])
    x = conv_bn(x, 16, k=3, name="post", **kw)
    return keras.Model(i, head(x)), 32, \
        ("InceptionV3 shape: conv2d_bn = Conv2D(use_bias=False) + BatchNormalization(scale=False) + ReLU; stem 3x3/2 valid, "
         "3x3 valid; two branches (1x1 | 1x1 -> 3x3) concatenated on channels; 3x3 conv2d_bn on the concat; GAP + Dense softmax.")


def m_pad_conv_bn():
    i = inp(32)
    x = L.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pad")(i)
    x = conv_bn(x, k=3, s=2, padding="valid", name="b1")
    return keras.Model(i, x), 32, \
        "ZeroPadding2D(1) (Pad op) -> Conv2D 3x3 stride 2 valid (bias) -> BN -> ReLU; 4-D output."


def m_pad_conv_bn_after_conv():
    i = inp(32)
    x = conv_bn(i, name="b0")
    x = L.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pad")(x)
    x = conv_bn(x, k=3, s=2, padding="valid", name="b1")
    return keras.Model(i, head(x)), 32, \
        ("conv_bn_relu, then ZeroPadding2D -> Conv2D 3x3/2 valid -> BN -> ReLU (MobileNet/EfficientNet stride-2 "
         "spelling, but after a previous BN); GAP + Dense softmax.")


def m_just_bn_after_add():
    i = inp(16)
    a = L.Conv2D(C, 3, padding="same", name="a_conv")(i)
    b = L.Conv2D(C, 1, padding="same", name="b_conv")(i)
    x = L.Add(name="add")([a, b])
    x = L.BatchNormalization(axis=3, epsilon=1.001e-5, name="preact_bn")(x)
    x = L.Activation("relu", name="preact_relu")(x)
    x = L.Conv2D(C, 3, padding="same", name="c_conv")(x)
    return keras.Model(i, head(x)), 16, \
        ("ResNet v2 pre-activation: Add of a 3x3 and a 1x1 Conv2D (bias, no BN), then BN -> ReLU -> Conv2D 3x3 "
         "(bias, no BN); GAP + Dense softmax.")


def m_add_then_conv_bn():
    i = inp(16)
    a = conv_bn(i, act=None, name="a")
    b = conv_bn(i, k=1, act=None, name="b")
    x = L.Add(name="add")([a, b])
    x = conv_bn(x, name="c")
    return keras.Model(i, head(x)), 16, \
        ("Add of two conv_bn (no ReLU) fed straight into a conv_bn_relu (conv input is an Add, no ReLU in between); "
         "GAP + Dense softmax.")


def m_conv_bn_two_consumers():
    i = inp(16)
    x = conv_bn(i, name="b1")
    a = conv_bn(x, k=1, name="ba")
    b = conv_bn(x, k=3, name="bb")
    x = L.Add(name="add")([a, b])
    return keras.Model(i, head(x)), 16, \
        ("conv_bn_relu whose ReLU feeds two conv_bn_relu branches (1x1 and 3x3), added; GAP + Dense softmax.")


def m_fused_mbconv_s2():
    i = inp(32)
    x = conv_bn(i, k=3, s=2, use_bias=False, act="swish", name="stem")
    y = conv_bn(x, k=3, use_bias=False, act="swish", name="block1a_project")
    x = L.Add(name="block1a_add")([x, y])
    x = conv_bn(x, 32, k=3, s=2, use_bias=False, act="swish", name="block2a_expand")
    x = conv_bn(x, C, k=1, use_bias=False, act=None, name="block2a_project")
    x = conv_bn(x, 32, k=3, s=2, use_bias=False, act="swish", name="block3a_expand")
    x = conv_bn(x, C, k=1, use_bias=False, act=None, name="block3a_project")
    return keras.Model(i, head(x)), 32, \
        ("EfficientNetV2-B0 shape: stem 3x3/2 conv(no bias)+BN+swish, fused-MBConv 3x3 + BN + swish with residual Add, "
         "then two fused-MBConv reductions (3x3/2 expand conv+BN+swish to 32 ch, 1x1 project conv+BN to 16 ch); "
         "GAP + Dense softmax.")


def m_spatial_1x1():
    i = inp(16)
    x = conv_bn(i, k=3, s=2, name="b1")   # 8
    x = conv_bn(x, k=3, s=2, name="b2")   # 4
    x = conv_bn(x, k=3, s=2, name="b3")   # 2
    x = conv_bn(x, k=3, s=2, name="b4")   # 1
    x = conv_bn(x, k=1, name="b5")        # conv_bn at 1x1 spatial
    return keras.Model(i, head(x)), 16, \
        ("Four 3x3/2 conv_bn_relu down to 1x1 spatial, then a 1x1 conv_bn_relu at 1x1 spatial (size-1 H/W axes); "
         "GAP + Dense softmax.")


BUILDERS = [
    ("conv_bn", m_conv_bn),
    ("conv_nobias_bn", m_conv_nobias_bn),
    ("conv_bn_head", m_conv_bn_head),
    ("conv_bn_relu_x2", m_conv_bn_relu_x2),
    ("residual", m_residual),
    ("residual_then_3x3", m_residual_then_3x3),
    ("stride2_1x1_3x3", m_stride2_1x1_3x3),
    ("stride2_bn", m_stride2_bn),
    ("stride2_bn_head", m_stride2_bn_head),
    ("bn_scale_false", m_bn_scale_false),
    ("pad_conv_bn", m_pad_conv_bn),
    ("pad_conv_bn_after_conv", m_pad_conv_bn_after_conv),
    ("just_bn_after_add", m_just_bn_after_add),
    ("add_then_conv_bn", m_add_then_conv_bn),
    ("conv_bn_two_consumers", m_conv_bn_two_consumers),
    ("fused_mbconv_s2", m_fused_mbconv_s2),
    ("spatial_1x1", m_spatial_1x1),
]


# ---------------------------------------------------------------- weights / freezing
def randomize(model, rng):
    for layer in model.layers:
        if isinstance(layer, (L.Conv2D, L.Dense)):
            k = layer.kernel
            fan_in = int(np.prod(k.shape[:-1]))
            k.assign(rng.normal(0, 1.0 / np.sqrt(fan_in), k.shape).astype(np.float32))
            if layer.bias is not None:
                layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype(np.float32))
        if isinstance(layer, L.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.2, c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.6, 1.4, c).astype(np.float32))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(0, 0.2, c).astype(np.float32))


def freeze(model, h):
    @tf.function
    def serve(x):
        return model(x, training=False)

    cf = serve.get_concrete_function(tf.TensorSpec([None, h, h, 3], tf.float32, name="input"))
    frozen = convert_variables_to_constants_v2(cf)
    gd = frozen.graph.as_graph_def()
    assert not gd.library.function, "function library left in graph"
    return gd, frozen.inputs[0].name.split(":")[0], frozen.outputs[0].name.split(":")[0]


def run_pb(path, inp_name, out_name, x):
    gd = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        gd.ParseFromString(f.read())
    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    with tf.compat.v1.Session(graph=g) as s:
        return s.run(f"{out_name}:0", {f"{inp_name}:0": x})


def main():
    manifest, report = [], []
    for name, builder in BUILDERS:
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed_of(name))
        model, h, desc = builder()
        randomize(model, np.random.default_rng(seed_of(name)))
        gd, i, o = freeze(model, h)
        path = os.path.join(HERE, f"{name}.pb")
        with open(path, "wb") as f:
            f.write(gd.SerializeToString(deterministic=True))
        x = np.random.default_rng(seed_of(name) + 1).uniform(-1, 1, (1, h, h, 3)).astype(np.float32)
        y = run_pb(path, i, o, x)
        ref = model(x, training=False).numpy()
        err = float(np.max(np.abs(y - ref)))
        assert np.all(np.isfinite(y)) and err < 1e-4, (name, err)
        ops = {}
        for n in gd.node:
            ops[n.op] = ops.get(n.op, 0) + 1
        size = os.path.getsize(path)
        assert size < 200_000, (name, size)
        manifest.append(dict(name=name, graph=os.path.relpath(path, os.path.dirname(os.path.dirname(os.path.dirname(HERE)))), input=i, output=o, shape=[1, h, h, 3],
                             output_shape=list(y.shape), description=desc))
        report.append((name, size, len(gd.node), list(y.shape), err, ops))
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    for name, size, nn, shp, err, ops in report:
        print(f"{name:24s} {size:7d}B {nn:4d} nodes out={shp} err={err:.1e} "
              + " ".join(f"{k}:{v}" for k, v in sorted(ops.items())))


if __name__ == "__main__":
    main()
