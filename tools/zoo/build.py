#!/usr/bin/env python3
"""Build the predictd model zoo: small, randomly initialised (seeded) frozen
graphs that use the same TensorFlow op spellings as the real, full-size
published / user-frozen graphs, plus golden input/output vectors.

Run from the repository root:

    /tmp/zoo-venv/bin/python tools/zoo/build.py            # everything
    /tmp/zoo-venv/bin/python tools/zoo/build.py vgg16 ...  # a subset (manifest is merged)

Everything is written to tests/fixtures/zoo/. See tools/zoo/README.md.
"""

import json
import os
import sys
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.framework import attr_value_pb2, graph_pb2, node_def_pb2, types_pb2  # noqa: E402
from tensorflow.python.framework import tensor_util  # noqa: E402
from tensorflow.python.framework.convert_to_constants import (  # noqa: E402
    convert_variables_to_constants_v2,
)

try:
    tf.config.experimental.enable_op_determinism()
except Exception:  # pragma: no cover
    pass
tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(1)

keras = tf.keras
L = keras.layers

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT_REL = "tests/fixtures/zoo"
OUT = os.path.join(REPO, OUT_REL)
CLASSES = 10
CALIB_N = 8          # images used to calibrate batch-norm statistics
TARGET_LOGIT_STD = 1.5


def seed_of(name, salt=0):
    return (zlib.crc32(name.encode()) + 7919 * salt) % (2**31)


def make_inputs(name, shape, value_range, n, salt):
    rng = np.random.default_rng(seed_of(name, salt))
    lo, hi = value_range
    return [rng.uniform(lo, hi, size=shape).astype(np.float32) for _ in range(n)]


# ---------------------------------------------------------------------------
# Keras helpers
# ---------------------------------------------------------------------------

def randomize_keras(model, rng, calib_x):
    """Give every BatchNormalization non-trivial statistics (calibrated on
    calib_x so activations stay O(1), then perturbed), randomise biases,
    layer-norm and layer-scale parameters."""
    for layer in model.layers:
        bias = getattr(layer, "bias", None)
        if bias is not None and isinstance(bias, tf.Variable):
            bias.assign(rng.normal(0, 0.05, bias.shape).astype(np.float32))
        cls = type(layer).__name__
        if cls == "LayerNormalization":
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.7, 1.3, layer.gamma.shape).astype(np.float32))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(0, 0.1, layer.beta.shape).astype(np.float32))
        if cls == "LayerScale":
            layer.gamma.assign(rng.uniform(0.2, 0.6, layer.gamma.shape).astype(np.float32))

    bns = [l for l in model.layers if isinstance(l, L.BatchNormalization)]
    if bns:
        probe = keras.Model(model.inputs, [l.input for l in bns])
        for i, bn in enumerate(bns):
            acts = probe(calib_x, training=False)
            if not isinstance(acts, (list, tuple)):
                acts = [acts]
            a = acts[i].numpy().astype(np.float64)
            axes = tuple(range(a.ndim - 1))
            mean = a.mean(axis=axes)
            var = a.var(axis=axes) + 1e-4
            c = mean.shape[0]
            bn.moving_mean.assign((mean + 0.1 * np.sqrt(var) * rng.normal(size=c)).astype(np.float32))
            bn.moving_variance.assign((var * rng.uniform(0.7, 1.4, size=c)).astype(np.float32))
            if bn.gamma is not None:
                bn.gamma.assign(rng.uniform(0.6, 1.4, size=c).astype(np.float32))
            if bn.beta is not None:
                bn.beta.assign(rng.normal(0, 0.2, size=c).astype(np.float32))
    calibrate_head(model, calib_x)


def logit_std(probs):
    lp = np.log(np.clip(probs.astype(np.float64), 1e-30, 1.0))
    return float(np.mean(np.std(lp, axis=-1)))


def calibrate_head(model, calib_x):
    """Scale the classifier (last layer with a kernel) so logits have a
    modest spread: softmax outputs neither uniform nor saturated."""
    head = [l for l in model.layers if getattr(l, "kernel", None) is not None][-1]
    for _ in range(4):
        s = logit_std(model(calib_x, training=False).numpy())
        if s < 1e-6:
            break
        f = TARGET_LOGIT_STD / s
        if abs(f - 1) < 0.05:
            break
        head.kernel.assign(head.kernel * f)
        if head.bias is not None:
            head.bias.assign(head.bias * f)


def freeze_keras(model, h, w):
    @tf.function
    def serve(x):
        return model(x, training=False)

    cf = serve.get_concrete_function(tf.TensorSpec([None, h, w, 3], tf.float32, name="input"))
    frozen = convert_variables_to_constants_v2(cf)
    gd = frozen.graph.as_graph_def()
    in_name = frozen.inputs[0].name.split(":")[0]
    out_name = frozen.outputs[0].name.split(":")[0]
    # The function calls convert_variables_to_constants_v2 leaves are kept,
    # as users get them: predictd's loader inlines them (src/tf_import.rs).
    inlined = sum(1 for n in gd.node if n.op in ("PartitionedCall", "StatefulPartitionedCall"))
    # tf.custom_gradient (tf.nn.silu -> IdentityN) stamps a process-global
    # counter into '_gradient_op_type'; renumber so the file does not depend
    # on what else ran in this process.
    seen = {}
    for n in gd.node:
        if "_gradient_op_type" in n.attr:
            v = n.attr["_gradient_op_type"].s
            seen.setdefault(v, f"CustomGradient-{len(seen) + 1}".encode())
            n.attr["_gradient_op_type"].s = seen[v]
    return gd, in_name, out_name, inlined


def keras_family(name, builder, h, w, value_range, notes):
    def build():
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed_of(name))
        model = builder()
        rng = np.random.default_rng(seed_of(name, 1))
        calib = np.concatenate(make_inputs(name, [1, h, w, 3], value_range, CALIB_N, 99), axis=0)
        randomize_keras(model, rng, calib)
        gd, i, o, inlined = freeze_keras(model, h, w)
        extra = ""
        if inlined:
            extra = (f" convert_variables_to_constants_v2 left {inlined} PartitionedCall nodes (Keras 2.15 runs "
                     "Conv2D with groups>1 as a _noinline XLA tf.function) and their function library, kept as "
                     "users get them: each body is a grouped Conv2D, filter [7,7,1,C] on a C-channel input "
                     "(groups = C), which predictd's loader inlines and reads as a depthwise convolution.")
        softmax = [n.name for n in gd.node if n.op == "Softmax"]
        return dict(graph_def=gd, input=i, output=o, input_shape=[1, h, w, 3],
                    reference=lambda xs: [model(x, training=False).numpy() for x in xs],
                    value_range=value_range,
                    notes=notes + f" Frozen from tf.function(model) with TensorSpec([None,{h},{w},3], name='input') "
                    f"via convert_variables_to_constants_v2; output '{o}' is the Identity after Softmax node "
                    f"{softmax}." + extra,
                    inlined_calls=inlined)
    return build


# --- builders --------------------------------------------------------------

def b_mobilenet_v1():
    return keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None, classes=CLASSES)


def b_mobilenet_v2():
    return keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=CLASSES)


def b_mobilenet_v3_small():
    return keras.applications.MobileNetV3Small(input_shape=(96, 96, 3), alpha=0.35, weights=None,
                                               classes=CLASSES)


def b_resnet50_v1():
    from keras.src.applications import resnet

    def stack_fn(x):
        x = resnet.stack1(x, 8, 2, stride1=1, name="conv2")
        x = resnet.stack1(x, 16, 1, name="conv3")
        x = resnet.stack1(x, 32, 1, name="conv4")
        return resnet.stack1(x, 64, 1, name="conv5")

    return resnet.ResNet(stack_fn, False, True, "resnet50", weights=None, input_shape=(64, 64, 3),
                         classes=CLASSES)


def b_resnet50_v2():
    from keras.src.applications import resnet

    def stack_fn(x):
        # stack2 needs >= 2 blocks (its first and last block are named apart)
        x = resnet.stack2(x, 8, 2, name="conv2")
        x = resnet.stack2(x, 16, 2, name="conv3")
        x = resnet.stack2(x, 32, 2, name="conv4")
        return resnet.stack2(x, 64, 2, stride1=1, name="conv5")

    return resnet.ResNet(stack_fn, True, True, "resnet50v2", weights=None, input_shape=(64, 64, 3),
                         classes=CLASSES)


def b_densenet121():
    from keras.src.applications import densenet
    return densenet.DenseNet([2, 2, 2, 1], weights=None, input_shape=(64, 64, 3), classes=CLASSES)


def b_efficientnet_b0():
    from keras.src.applications import efficientnet
    m = efficientnet.EfficientNet(0.25, 0.25, 64, dropout_rate=0.2, model_name="efficientnetb0",
                                  weights=None, input_shape=(64, 64, 3), classes=CLASSES)
    # weights=None leaves the Normalization layer at mean 0 / variance 1;
    # give it the ImageNet statistics the real (adapted) layer carries.
    norm = [l for l in m.layers if isinstance(l, L.Normalization)][0]
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    var = np.array([0.229, 0.224, 0.225], np.float32) ** 2
    norm.set_weights([mean, var, np.array(0, np.int64)])
    return m


def b_efficientnet_v2_b0():
    from keras.src.applications import efficientnet_v2
    return efficientnet_v2.EfficientNetV2(0.25, 0.34, 64, model_name="efficientnetv2-b0", weights=None,
                                          input_shape=(64, 64, 3), classes=CLASSES,
                                          include_preprocessing=True)


def b_nasnet_mobile():
    from keras.src.applications import nasnet
    return nasnet.NASNet(input_shape=(96, 96, 3), penultimate_filters=192, num_blocks=1,
                         stem_block_filters=8, skip_reduction=False, filter_multiplier=2,
                         weights=None, classes=CLASSES, default_size=96)


def b_convnext_tiny():
    from keras.src.applications import convnext
    return convnext.ConvNeXt(depths=[1, 1, 2, 1], projection_dims=[16, 32, 64, 96], drop_path_rate=0.0,
                             layer_scale_init_value=1e-6, default_size=64, model_name="convnext_tiny",
                             include_preprocessing=True, weights=None, input_shape=(64, 64, 3),
                             classes=CLASSES)


def b_vgg16():
    """Same layer types/pattern as keras.applications.VGG16 (2-2-3-3-3 convs,
    'same' 3x3 relu, 2x2 max pool, Flatten, fc1/fc2 relu, predictions)."""
    inp = L.Input(shape=(64, 64, 3))
    x = inp
    for b, (n, f) in enumerate([(2, 8), (2, 16), (3, 24), (3, 32), (3, 32)], start=1):
        for c in range(1, n + 1):
            x = L.Conv2D(f, (3, 3), activation="relu", padding="same", name=f"block{b}_conv{c}")(x)
        x = L.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{b}_pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(64, activation="relu", name="fc1")(x)
    x = L.Dense(64, activation="relu", name="fc2")(x)
    x = L.Dense(CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inp, x, name="vgg16")


def b_vgg_block_112():
    """VGG16's first two blocks at a real size (112x112, 64 and 128
    channels): four 3x3 'same' relu convolutions around a 2x2 max pool,
    then global average pooling and the predictions. The zoo's other
    graphs are small; this one times dense convolutions where their cost
    is the model's (benches/zoo.sh)."""
    inp = L.Input(shape=(112, 112, 3))
    x = inp
    for b, f in enumerate([64, 128], start=1):
        for c in (1, 2):
            x = L.Conv2D(f, (3, 3), activation="relu", padding="same", name=f"block{b}_conv{c}")(x)
        if b == 1:
            x = L.MaxPooling2D((2, 2), strides=(2, 2), name="block1_pool")(x)
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    x = L.Dense(CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inp, x, name="vgg_block_112")


def b_xception():
    """Mini Xception: same layer types/blocks as keras.applications.Xception
    (entry/middle/exit flow, SeparableConv2D+BN, 1x1 stride-2 Conv2D residual
    + add), reduced width and middle-flow depth."""
    inp = L.Input(shape=(64, 64, 3))
    x = L.Conv2D(8, (3, 3), strides=(2, 2), use_bias=False, name="block1_conv1")(inp)
    x = L.BatchNormalization(axis=-1, name="block1_conv1_bn")(x)
    x = L.Activation("relu", name="block1_conv1_act")(x)
    x = L.Conv2D(16, (3, 3), use_bias=False, name="block1_conv2")(x)
    x = L.BatchNormalization(axis=-1, name="block1_conv2_bn")(x)
    x = L.Activation("relu", name="block1_conv2_act")(x)

    def entry(x, f, b, first_relu):
        r = L.Conv2D(f, (1, 1), strides=(2, 2), padding="same", use_bias=False)(x)
        r = L.BatchNormalization(axis=-1)(r)
        if first_relu:
            x = L.Activation("relu", name=f"block{b}_sepconv1_act")(x)
        x = L.SeparableConv2D(f, (3, 3), padding="same", use_bias=False, name=f"block{b}_sepconv1")(x)
        x = L.BatchNormalization(axis=-1, name=f"block{b}_sepconv1_bn")(x)
        x = L.Activation("relu", name=f"block{b}_sepconv2_act")(x)
        x = L.SeparableConv2D(f, (3, 3), padding="same", use_bias=False, name=f"block{b}_sepconv2")(x)
        x = L.BatchNormalization(axis=-1, name=f"block{b}_sepconv2_bn")(x)
        x = L.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=f"block{b}_pool")(x)
        return L.add([x, r])

    x = entry(x, 32, 2, False)
    x = entry(x, 48, 3, True)
    x = entry(x, 64, 4, True)
    for i in range(2):
        r = x
        p = f"block{i + 5}"
        for j in range(1, 4):
            x = L.Activation("relu", name=f"{p}_sepconv{j}_act")(x)
            x = L.SeparableConv2D(64, (3, 3), padding="same", use_bias=False, name=f"{p}_sepconv{j}")(x)
            x = L.BatchNormalization(axis=-1, name=f"{p}_sepconv{j}_bn")(x)
        x = L.add([x, r])
    r = L.Conv2D(96, (1, 1), strides=(2, 2), padding="same", use_bias=False)(x)
    r = L.BatchNormalization(axis=-1)(r)
    x = L.Activation("relu", name="block13_sepconv1_act")(x)
    x = L.SeparableConv2D(64, (3, 3), padding="same", use_bias=False, name="block13_sepconv1")(x)
    x = L.BatchNormalization(axis=-1, name="block13_sepconv1_bn")(x)
    x = L.Activation("relu", name="block13_sepconv2_act")(x)
    x = L.SeparableConv2D(96, (3, 3), padding="same", use_bias=False, name="block13_sepconv2")(x)
    x = L.BatchNormalization(axis=-1, name="block13_sepconv2_bn")(x)
    x = L.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name="block13_pool")(x)
    x = L.add([x, r])
    x = L.SeparableConv2D(128, (3, 3), padding="same", use_bias=False, name="block14_sepconv1")(x)
    x = L.BatchNormalization(axis=-1, name="block14_sepconv1_bn")(x)
    x = L.Activation("relu", name="block14_sepconv1_act")(x)
    x = L.SeparableConv2D(160, (3, 3), padding="same", use_bias=False, name="block14_sepconv2")(x)
    x = L.BatchNormalization(axis=-1, name="block14_sepconv2_bn")(x)
    x = L.Activation("relu", name="block14_sepconv2_act")(x)
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    x = L.Dense(CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inp, x, name="xception")


def b_inception_v3_keras():
    """Mini InceptionV3 with keras.applications.inception_v3's conv2d_bn
    (Conv2D no bias + BatchNormalization(scale=False) + relu) and the
    mixed0 / mixed3 / mixed4 / mixed8 / mixed9 block patterns."""

    def conv2d_bn(x, f, r, c, padding="same", strides=(1, 1)):
        x = L.Conv2D(f, (r, c), strides=strides, padding=padding, use_bias=False)(x)
        x = L.BatchNormalization(axis=3, scale=False)(x)
        return L.Activation("relu")(x)

    inp = L.Input(shape=(96, 96, 3))
    x = conv2d_bn(inp, 8, 3, 3, strides=(2, 2), padding="valid")
    x = conv2d_bn(x, 8, 3, 3, padding="valid")
    x = conv2d_bn(x, 16, 3, 3)
    x = L.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = conv2d_bn(x, 20, 1, 1, padding="valid")
    x = conv2d_bn(x, 32, 3, 3, padding="valid")
    x = L.MaxPooling2D((3, 3), strides=(2, 2))(x)
    # mixed 0 (35x35-type block)
    b1 = conv2d_bn(x, 16, 1, 1)
    b5 = conv2d_bn(x, 12, 1, 1)
    b5 = conv2d_bn(b5, 16, 5, 5)
    bd = conv2d_bn(x, 16, 1, 1)
    bd = conv2d_bn(bd, 24, 3, 3)
    bd = conv2d_bn(bd, 24, 3, 3)
    bp = L.AveragePooling2D((3, 3), strides=(1, 1), padding="same")(x)
    bp = conv2d_bn(bp, 8, 1, 1)
    x = L.concatenate([b1, b5, bd, bp], axis=3, name="mixed0")
    # mixed 3 (reduction)
    b3 = conv2d_bn(x, 48, 3, 3, strides=(2, 2), padding="valid")
    bd = conv2d_bn(x, 16, 1, 1)
    bd = conv2d_bn(bd, 24, 3, 3)
    bd = conv2d_bn(bd, 24, 3, 3, strides=(2, 2), padding="valid")
    bp = L.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = L.concatenate([b3, bd, bp], axis=3, name="mixed3")
    # mixed 4 (17x17-type, factorised 7x7)
    b1 = conv2d_bn(x, 24, 1, 1)
    b7 = conv2d_bn(x, 16, 1, 1)
    b7 = conv2d_bn(b7, 16, 1, 7)
    b7 = conv2d_bn(b7, 24, 7, 1)
    bd = conv2d_bn(x, 16, 1, 1)
    bd = conv2d_bn(bd, 16, 7, 1)
    bd = conv2d_bn(bd, 16, 1, 7)
    bd = conv2d_bn(bd, 16, 7, 1)
    bd = conv2d_bn(bd, 24, 1, 7)
    bp = L.AveragePooling2D((3, 3), strides=(1, 1), padding="same")(x)
    bp = conv2d_bn(bp, 24, 1, 1)
    x = L.concatenate([b1, b7, bd, bp], axis=3, name="mixed4")
    # mixed 8 (reduction)
    b3 = conv2d_bn(x, 24, 1, 1)
    b3 = conv2d_bn(b3, 32, 3, 3, strides=(2, 2), padding="valid")
    b7 = conv2d_bn(x, 24, 1, 1)
    b7 = conv2d_bn(b7, 24, 1, 7)
    b7 = conv2d_bn(b7, 24, 7, 1)
    b7 = conv2d_bn(b7, 24, 3, 3, strides=(2, 2), padding="valid")
    bp = L.MaxPooling2D((3, 3), strides=(2, 2))(x)
    x = L.concatenate([b3, b7, bp], axis=3, name="mixed8")
    # mixed 9 (8x8-type with nested concatenations)
    b1 = conv2d_bn(x, 32, 1, 1)
    b3 = conv2d_bn(x, 32, 1, 1)
    b3a = conv2d_bn(b3, 32, 1, 3)
    b3b = conv2d_bn(b3, 32, 3, 1)
    b3 = L.concatenate([b3a, b3b], axis=3, name="mixed9_0")
    bd = conv2d_bn(x, 32, 1, 1)
    bd = conv2d_bn(bd, 32, 3, 3)
    bda = conv2d_bn(bd, 32, 1, 3)
    bdb = conv2d_bn(bd, 32, 3, 1)
    bd = L.concatenate([bda, bdb], axis=3)
    bp = L.AveragePooling2D((3, 3), strides=(1, 1), padding="same")(x)
    bp = conv2d_bn(bp, 16, 1, 1)
    x = L.concatenate([b1, b3, bd, bp], axis=3, name="mixed9")
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    x = L.Dense(CLASSES, activation="softmax", name="predictions")(x)
    return keras.Model(inp, x, name="inception_v3")


# ---------------------------------------------------------------------------
# TF1 slim-style MobileNet v1 (graph mode, no Keras)
# ---------------------------------------------------------------------------

SLIM_H = 96
SLIM_DEPTH = 0.25
SLIM_LAYERS = [  # (kind, stride, depth) as in slim's MOBILENETV1_CONV_DEFS
    ("conv", 2, 32), ("sep", 1, 64), ("sep", 2, 128), ("sep", 1, 128), ("sep", 2, 256), ("sep", 1, 256),
    ("sep", 2, 512), ("sep", 1, 512), ("sep", 1, 512), ("sep", 2, 1024), ("sep", 1, 1024),
]


class SlimParams:
    """Parameters created on first (eager, calibrating) pass; in graph mode
    the same arrays become VariableV2 variables (frozen later)."""

    def __init__(self, rng):
        self.rng = rng
        self.vals = {}
        self.graph_mode = False



def slim_mobilenet(x, P, classes=CLASSES):
    rng = P.rng

    def he(shape, fan_in):
        return lambda s: rng.normal(0, np.sqrt(2.0 / fan_in), size=s)

    def batch_norm(net, scope):
        c = int(net.shape[-1])
        with tf.compat.v1.variable_scope("BatchNorm"):
            gamma = tf.constant(np.ones([c], np.float32), name="Const")  # slim: scale=False
            key_b = f"{scope}/BatchNorm/beta"
            if key_b not in P.vals:
                P.vals[key_b] = rng.normal(0, 0.2, [c]).astype(np.float32)
            beta = (tf.compat.v1.get_variable("beta", initializer=tf.constant(P.vals[key_b]), use_resource=False)
                    if P.graph_mode else tf.constant(P.vals[key_b]))

            def stats():
                a = net.numpy().astype(np.float64)
                return a.mean(axis=(0, 1, 2)), a.var(axis=(0, 1, 2)) + 1e-4
            key_m, key_v = f"{scope}/BatchNorm/moving_mean", f"{scope}/BatchNorm/moving_variance"
            if key_m not in P.vals:
                m, v = stats()
                P.vals[key_m] = (m + 0.1 * np.sqrt(v) * rng.normal(size=c)).astype(np.float32)
                P.vals[key_v] = (v * rng.uniform(0.7, 1.4, size=c)).astype(np.float32)
            if P.graph_mode:
                mean = tf.compat.v1.get_variable("moving_mean", initializer=tf.constant(P.vals[key_m]),
                                                 use_resource=False)
                var = tf.compat.v1.get_variable("moving_variance", initializer=tf.constant(P.vals[key_v]),
                                                use_resource=False)
            else:
                mean, var = tf.constant(P.vals[key_m]), tf.constant(P.vals[key_v])
            y, _, _, _, _ = tf.raw_ops.FusedBatchNorm(x=net, scale=gamma, offset=beta, mean=mean, variance=var,
                                                      epsilon=0.001, data_format="NHWC", is_training=False,
                                                      name="FusedBatchNorm")
        return y

    def wvar(scope, wname, shape, fan_in):
        key = f"{scope}/{wname}"
        if key not in P.vals:
            P.vals[key] = he(shape, fan_in)(shape).astype(np.float32)
        if P.graph_mode:
            return tf.compat.v1.get_variable(wname, initializer=tf.constant(P.vals[key]), use_resource=False)
        return tf.constant(P.vals[key])

    net = x
    with tf.compat.v1.variable_scope("MobilenetV1"):
        for i, (kind, stride, d) in enumerate(SLIM_LAYERS):
            depth = max(int(d * SLIM_DEPTH), 8)
            cin = int(net.shape[-1])
            if kind == "conv":
                scope = f"MobilenetV1/Conv2d_{i}"
                with tf.compat.v1.variable_scope(f"Conv2d_{i}"):
                    w = wvar(scope, "weights", [3, 3, cin, depth], 9 * cin)
                    net = tf.nn.conv2d(net, w, strides=[1, stride, stride, 1], padding="SAME", name="Conv2D")
                    net = batch_norm(net, scope)
                    net = tf.nn.relu6(net, name="Relu6")
            else:
                scope = f"MobilenetV1/Conv2d_{i}_depthwise"
                with tf.compat.v1.variable_scope(f"Conv2d_{i}_depthwise"):
                    w = wvar(scope, "depthwise_weights", [3, 3, cin, 1], 9)
                    net = tf.compat.v1.nn.depthwise_conv2d_native(net, w, strides=[1, stride, stride, 1],
                                                                  padding="SAME", name="depthwise")
                    net = batch_norm(net, scope)
                    net = tf.nn.relu6(net, name="Relu6")
                scope = f"MobilenetV1/Conv2d_{i}_pointwise"
                with tf.compat.v1.variable_scope(f"Conv2d_{i}_pointwise"):
                    w = wvar(scope, "weights", [1, 1, cin, depth], cin)
                    net = tf.nn.conv2d(net, w, strides=[1, 1, 1, 1], padding="SAME", name="Conv2D")
                    net = batch_norm(net, scope)
                    net = tf.nn.relu6(net, name="Relu6")
        with tf.compat.v1.variable_scope("Logits"):
            k = int(net.shape[1])
            with tf.compat.v1.variable_scope("AvgPool_1a"):
                net = tf.nn.avg_pool2d(net, ksize=[1, k, k, 1], strides=[1, 2, 2, 1], padding="VALID",
                                       name="AvgPool")
            # Dropout_1b is the identity at inference; slim's frozen graphs have none.
            cin = int(net.shape[-1])
            scope = "MobilenetV1/Logits/Conv2d_1c_1x1"
            with tf.compat.v1.variable_scope("Conv2d_1c_1x1"):
                w = wvar(scope, "weights", [1, 1, cin, classes], cin)
                key = scope + "/biases"
                if key not in P.vals:
                    P.vals[key] = rng.normal(0, 0.05, [classes]).astype(np.float32)
                b = (tf.compat.v1.get_variable("biases", initializer=tf.constant(P.vals[key]), use_resource=False)
                     if P.graph_mode else tf.constant(P.vals[key]))
                net = tf.nn.conv2d(net, w, strides=[1, 1, 1, 1], padding="SAME", name="Conv2D")
                net = tf.nn.bias_add(net, b, name="BiasAdd")
            logits = tf.squeeze(net, [1, 2], name="SpatialSqueeze")
        with tf.compat.v1.variable_scope("Predictions"):
            # slim.softmax: reshape to 2-D, softmax, reshape back to shape(logits)
            l2 = tf.reshape(logits, [-1, classes], name="Reshape")
            p = tf.nn.softmax(l2, name="Softmax")
            out = tf.reshape(p, tf.shape(logits, name="Shape"), name="Reshape_1")
    return out, logits


def build_slim_mobilenet_v1():
    name = "slim_mobilenet_v1"
    h = SLIM_H
    rng = np.random.default_rng(seed_of(name, 1))
    P = SlimParams(rng)
    calib = np.concatenate(make_inputs(name, [1, h, h, 3], (-1, 1), CALIB_N, 99), axis=0)
    # eager calibration pass creates every parameter
    _, logits = slim_mobilenet(tf.constant(calib), P)
    lg = logits.numpy().astype(np.float64)
    f = TARGET_LOGIT_STD / float(np.mean(np.std(lg, axis=-1)))
    for k in ("MobilenetV1/Logits/Conv2d_1c_1x1/weights", "MobilenetV1/Logits/Conv2d_1c_1x1/biases"):
        P.vals[k] = (P.vals[k] * f).astype(np.float32)
    P.graph_mode = True
    g = tf.Graph()
    with g.as_default():
        inp = tf.compat.v1.placeholder(tf.float32, [1, h, h, 3], name="input")
        out, _ = slim_mobilenet(inp, P)
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            gd = tf.compat.v1.graph_util.convert_variables_to_constants(
                sess, g.as_graph_def(), [out.op.name])
    P.graph_mode = False

    def reference(xs):
        return [slim_mobilenet(tf.constant(x), P)[0].numpy() for x in xs]

    return dict(graph_def=gd, input="input", output=out.op.name, input_shape=[1, h, h, 3], value_range=(-1, 1),
                reference=reference,
                notes="TF1 graph-mode (tf.compat.v1, no Keras) MobileNet v1 with slim's op spellings and node "
                      "names (depth_multiplier 0.25, 96x96): FusedBatchNorm (v1, is_training=False, scale=False "
                      "so gamma is a ones Const), Relu6, DepthwiseConv2dNative, AvgPool, Squeeze "
                      "(squeeze_dims [1,2]), Reshape/Softmax/Shape/Reshape_1 as slim.softmax writes it. Frozen with "
                      "tf.compat.v1.graph_util.convert_variables_to_constants (VariableV2 -> Const, '/read' "
                      "Identity nodes remain). Placeholder 'input' has a fixed batch of 1 like the published "
                      "mobilenet_v1_*_frozen.pb graphs.")


# ---------------------------------------------------------------------------
# TF1 retrain.py-shaped small graph
# ---------------------------------------------------------------------------

def build_retrain_small():
    name = "retrain_small"
    h = 64
    rng = np.random.default_rng(seed_of(name, 1))
    calib = np.concatenate(make_inputs(name, [1, h, h, 3], (-1, 1), CALIB_N, 99), axis=0)
    convs = [(3, 16), (3, 24), (3, 32), (3, 48)]
    weights = []
    cin = 3
    for k, c in convs:
        weights.append((rng.normal(0, np.sqrt(2.0 / (k * k * cin)), [k, k, cin, c]).astype(np.float32),
                        rng.normal(0, 0.05, [c]).astype(np.float32)))
        cin = c
    feat_dim = cin * 4 * 4
    fw = rng.normal(0, 0.001 * 10, [feat_dim, CLASSES]).astype(np.float32)
    fb = rng.normal(0, 0.05, [CLASSES]).astype(np.float32)

    def build(g, fw, fb):
        with g.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [None, h, h, 3], name="input")
            net = tf.identity(x, name="input_identity")
            for i, (w, b) in enumerate(weights):
                with tf.compat.v1.variable_scope(f"conv{i}"):
                    wv = tf.compat.v1.get_variable("weights", initializer=tf.constant(w), use_resource=False)
                    bv = tf.compat.v1.get_variable("biases", initializer=tf.constant(b), use_resource=False)
                    net = tf.nn.conv2d(net, wv, strides=[1, 1, 1, 1], padding="SAME", name="Conv2D")
                    net = tf.nn.bias_add(net, bv, name="BiasAdd")
                    net = tf.nn.relu(net, name="Relu")
                    net = tf.nn.max_pool2d(net, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME",
                                           name="MaxPool")
            net = tf.reshape(net, [-1, feat_dim], name="pool_3/_reshape")
            bottleneck = tf.identity(net, name="bottleneck")
            with tf.compat.v1.name_scope("input"):
                bin_ = tf.compat.v1.placeholder_with_default(bottleneck, shape=[None, feat_dim],
                                                             name="BottleneckInputPlaceholder")
            with tf.compat.v1.name_scope("final_training_ops"):
                with tf.compat.v1.name_scope("weights"):
                    wv = tf.compat.v1.Variable(fw, name="final_weights")
                with tf.compat.v1.name_scope("biases"):
                    bv = tf.compat.v1.Variable(fb, name="final_biases")
                with tf.compat.v1.name_scope("Wx_plus_b"):
                    logits = tf.matmul(bin_, wv) + bv
            out = tf.nn.softmax(logits, name="final_result")
            return x, bottleneck, logits, out

    g = tf.Graph()
    x, _, logits, _ = build(g, fw, fb)
    with tf.compat.v1.Session(graph=g) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        lg = sess.run(logits, {x: calib}).astype(np.float64)
    f = TARGET_LOGIT_STD / float(np.mean(np.std(lg, axis=-1)))
    g = tf.Graph()
    x, _, _, out = build(g, (fw * f).astype(np.float32), (fb * f).astype(np.float32))
    with tf.compat.v1.Session(graph=g) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        gd = tf.compat.v1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), ["final_result"])
    fw2, fb2 = (fw * f).astype(np.float32), (fb * f).astype(np.float32)

    def reference(xs):
        res = []
        for x in xs:
            net = tf.constant(x)
            for w, b in weights:
                net = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(net, w, 1, "SAME") + b), 2, 2, "SAME")
            res.append(tf.nn.softmax(tf.matmul(tf.reshape(net, [-1, feat_dim]), fw2) + fb2).numpy())
        return res

    return dict(graph_def=gd, input="input", output="final_result", input_shape=[1, h, h, 3],
                value_range=(-1, 1), reference=reference,
                notes="TF1 graph-mode graph shaped like retrain.py output: Placeholder 'input' [None,64,64,3], "
                      "Identity, 4x (Conv2D, BiasAdd, Relu, MaxPool), Reshape 'pool_3/_reshape' [-1,768], "
                      "Identity 'bottleneck', PlaceholderWithDefault 'input/BottleneckInputPlaceholder', "
                      "final_training_ops/{weights/final_weights,biases/final_biases} (Const + '/read' Identity), "
                      "Wx_plus_b/MatMul + Wx_plus_b/add (AddV2, as TF>=2 python writes '+'), Softmax "
                      "'final_result'. Frozen with tf.compat.v1.graph_util.convert_variables_to_constants.")


# ---------------------------------------------------------------------------
# 2015 Inception v3 (classify_image_graph_def / retrain.py base) spelling,
# written NodeDef by NodeDef with producer version 8.
# ---------------------------------------------------------------------------

INC15_H = 96
INC15_PRODUCER = 8


class RawGraph:
    """Emits NodeDefs by hand and computes the same ops eagerly on a
    calibration batch, so batch-norm statistics can be set from data."""

    def __init__(self, rng):
        self.gd = graph_pb2.GraphDef()
        self.gd.versions.producer = INC15_PRODUCER
        self.rng = rng
        self.val = {}    # eager values on the calibration batch
        self.prog = []   # (name, fn(env)) to replay eagerly on other inputs

    def emit(self, name, fn):
        self.prog.append((name, fn))
        self.val[name] = fn(self.val)

    def replay(self, feeds):
        env = dict(feeds)
        for name, fn in self.prog:
            if name not in feeds:
                env[name] = fn(env)
        return env

    def node(self, op, name, inputs=(), **attrs):
        n = self.gd.node.add()
        n.op = op
        n.name = name
        n.input.extend(inputs)
        for k, v in attrs.items():
            n.attr[k].CopyFrom(v)
        return name

    @staticmethod
    def a_type(t):
        return attr_value_pb2.AttrValue(type=t)

    @staticmethod
    def a_ints(v):
        return attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(i=list(v)))

    def const(self, name, arr):
        arr = np.asarray(arr)
        dt = types_pb2.DT_FLOAT if arr.dtype == np.float32 else types_pb2.DT_INT32
        self.node("Const", name, dtype=self.a_type(dt),
                  value=attr_value_pb2.AttrValue(tensor=tensor_util.make_tensor_proto(arr)))
        t = tf.constant(arr)
        self.emit(name, lambda env: t)
        return name

    F = types_pb2.DT_FLOAT

    def conv_bn_relu(self, x, name, cout, k, stride=1, padding="SAME"):
        kh, kw = k if isinstance(k, tuple) else (k, k)
        cin = int(self.val[x].shape[-1])
        w = self.rng.normal(0, np.sqrt(2.0 / (kh * kw * cin)), [kh, kw, cin, cout]).astype(np.float32)
        wn = self.const(f"{name}/conv2d_params", w)
        c = self.node("Conv2D", f"{name}/Conv2D", [x, wn], T=self.a_type(self.F),
                      strides=self.a_ints([1, stride, stride, 1]),
                      padding=attr_value_pb2.AttrValue(s=padding.encode()),
                      use_cudnn_on_gpu=attr_value_pb2.AttrValue(b=True))
        self.emit(c, lambda env: tf.nn.conv2d(env[x], env[wn], [1, stride, stride, 1], padding))
        a = self.val[c].numpy().astype(np.float64)
        m, v = a.mean(axis=(0, 1, 2)), a.var(axis=(0, 1, 2)) + 1e-4
        mean = (m + 0.1 * np.sqrt(v) * self.rng.normal(size=cout)).astype(np.float32)
        var = (v * self.rng.uniform(0.7, 1.4, size=cout)).astype(np.float32)
        beta = self.rng.normal(0, 0.2, cout).astype(np.float32)
        gamma = self.rng.uniform(0.6, 1.4, cout).astype(np.float32)  # ignored: scale_after_normalization=False
        bn = f"{name}/batchnorm"
        ins = [c, self.const(bn + "/moving_mean", mean), self.const(bn + "/moving_variance", var),
               self.const(bn + "/beta", beta), self.const(bn + "/gamma", gamma)]
        self.node("BatchNormWithGlobalNormalization", bn, ins, T=self.a_type(self.F),
                  variance_epsilon=attr_value_pb2.AttrValue(f=0.001),
                  scale_after_normalization=attr_value_pb2.AttrValue(b=False))
        self.emit(bn, lambda env: (env[c] - mean) * tf.math.rsqrt(var + 0.001) + beta)
        self.node("Relu", name, [bn], T=self.a_type(self.F))
        self.emit(name, lambda env: tf.nn.relu(env[bn]))
        return name

    def pool(self, op, name, x, k, stride, padding):
        self.node(op, name, [x], T=self.a_type(self.F), ksize=self.a_ints([1, k, k, 1]),
                  strides=self.a_ints([1, stride, stride, 1]),
                  padding=attr_value_pb2.AttrValue(s=padding.encode()))
        fn = tf.nn.max_pool2d if op == "MaxPool" else tf.nn.avg_pool2d
        self.emit(name, lambda env: fn(env[x], [1, k, k, 1], [1, stride, stride, 1], padding))
        return name

    def concat(self, name, xs):
        d = self.const(f"{name}/concat_dim", np.array(3, np.int32))
        self.node("Concat", name, [d] + list(xs), N=attr_value_pb2.AttrValue(i=len(xs)), T=self.a_type(self.F))
        self.emit(name, lambda env: tf.concat([env[x] for x in xs], 3))
        return name


def build_inception_v3_2015():
    name = "inception_v3_2015"
    h = INC15_H
    rng = np.random.default_rng(seed_of(name, 1))
    calib = np.concatenate(make_inputs(name, [1, h, h, 3], (-1, 1), CALIB_N, 99), axis=0)

    def graph(final_scale):
        R = RawGraph(np.random.default_rng(seed_of(name, 1)))
        F = R.F
        R.node("Placeholder", "DecodeJpeg/contents", dtype=R.a_type(types_pb2.DT_STRING),
               shape=attr_value_pb2.AttrValue(shape=tf.TensorShape([]).as_proto()))
        R.node("DecodeJpeg", "DecodeJpeg", ["DecodeJpeg/contents"],
               channels=attr_value_pb2.AttrValue(i=3), ratio=attr_value_pb2.AttrValue(i=1),
               fancy_upscaling=attr_value_pb2.AttrValue(b=True),
               try_recover_truncated=attr_value_pb2.AttrValue(b=False),
               acceptable_fraction=attr_value_pb2.AttrValue(f=1.0))
        R.node("Cast", "Cast", ["DecodeJpeg"], SrcT=R.a_type(types_pb2.DT_UINT8), DstT=R.a_type(F))
        R.const("ExpandDims/dim", np.array(0, np.int32))
        R.node("ExpandDims", "ExpandDims", ["Cast", "ExpandDims/dim"], T=R.a_type(F),
               Tdim=R.a_type(types_pb2.DT_INT32))
        R.const("ResizeBilinear/size", np.array([h, h], np.int32))
        R.node("ResizeBilinear", "ResizeBilinear", ["ExpandDims", "ResizeBilinear/size"], T=R.a_type(F),
               align_corners=attr_value_pb2.AttrValue(b=False))
        R.const("Sub/y", np.array(128.0, np.float32))
        R.node("Sub", "Sub", ["ResizeBilinear", "Sub/y"], T=R.a_type(F))
        R.const("Mul/y", np.array(1.0 / 128.0, np.float32))
        R.node("Mul", "Mul", ["Sub", "Mul/y"], T=R.a_type(F))
        cal = tf.constant(calib)
        R.emit("Mul", lambda env: cal)
        x = R.conv_bn_relu("Mul", "conv", 8, 3, 2, "VALID")     # 47
        x = R.conv_bn_relu(x, "conv_1", 8, 3, 1, "VALID")       # 45
        x = R.conv_bn_relu(x, "conv_2", 16, 3, 1, "SAME")       # 45
        x = R.pool("MaxPool", "pool", x, 3, 2, "VALID")         # 22
        x = R.conv_bn_relu(x, "conv_3", 20, 1, 1, "VALID")
        x = R.conv_bn_relu(x, "conv_4", 32, 3, 1, "VALID")      # 20
        x = R.pool("MaxPool", "pool_1", x, 3, 2, "VALID")       # 9
        # mixed (35x35-type)
        m = "mixed"
        b1 = R.conv_bn_relu(x, f"{m}/conv", 16, 1)
        b5 = R.conv_bn_relu(x, f"{m}/tower/conv", 12, 1)
        b5 = R.conv_bn_relu(b5, f"{m}/tower/conv_1", 16, 5)
        bd = R.conv_bn_relu(x, f"{m}/tower_1/conv", 16, 1)
        bd = R.conv_bn_relu(bd, f"{m}/tower_1/conv_1", 24, 3)
        bd = R.conv_bn_relu(bd, f"{m}/tower_1/conv_2", 24, 3)
        bp = R.pool("AvgPool", f"{m}/tower_2/pool", x, 3, 1, "SAME")
        bp = R.conv_bn_relu(bp, f"{m}/tower_2/conv", 8, 1)
        x = R.concat(f"{m}/join", [b1, b5, bd, bp])
        # mixed_1 (reduction, like the original mixed_3)
        m = "mixed_1"
        b3 = R.conv_bn_relu(x, f"{m}/conv", 48, 3, 2, "VALID")  # 4
        bd = R.conv_bn_relu(x, f"{m}/tower/conv", 16, 1)
        bd = R.conv_bn_relu(bd, f"{m}/tower/conv_1", 24, 3)
        bd = R.conv_bn_relu(bd, f"{m}/tower/conv_2", 24, 3, 2, "VALID")
        bp = R.pool("MaxPool", f"{m}/pool", x, 3, 2, "VALID")
        x = R.concat(f"{m}/join", [b3, bd, bp])
        # mixed_2 (17x17-type, factorised 7x7 -> here 1x5/5x1)
        m = "mixed_2"
        b1 = R.conv_bn_relu(x, f"{m}/conv", 24, 1)
        b7 = R.conv_bn_relu(x, f"{m}/tower/conv", 16, 1)
        b7 = R.conv_bn_relu(b7, f"{m}/tower/conv_1", 16, (1, 7))
        b7 = R.conv_bn_relu(b7, f"{m}/tower/conv_2", 24, (7, 1))
        bp = R.pool("AvgPool", f"{m}/tower_1/pool", x, 3, 1, "SAME")
        bp = R.conv_bn_relu(bp, f"{m}/tower_1/conv", 24, 1)
        x = R.concat(f"{m}/join", [b1, b7, bp])
        k = int(R.val[x].shape[1])
        x = R.pool("AvgPool", "pool_3", x, k, 1, "VALID")
        feat = int(R.val[x].shape[-1])
        R.const("pool_3/_reshape/shape", np.array([1, feat], np.int32))
        R.node("Reshape", "pool_3/_reshape", ["pool_3", "pool_3/_reshape/shape"], T=R.a_type(F),
               Tshape=R.a_type(types_pb2.DT_INT32))
        R.emit("pool_3/_reshape", lambda env: tf.reshape(env["pool_3"], [-1, feat]))
        # retrain.py head
        R.node("PlaceholderWithDefault", "input/BottleneckInputPlaceholder", ["pool_3/_reshape"],
               dtype=R.a_type(F), shape=attr_value_pb2.AttrValue(shape=tf.TensorShape([None, feat]).as_proto()))
        fw = (R.rng.normal(0, 0.001 * 30, [feat, CLASSES]) * final_scale).astype(np.float32)
        fb = (R.rng.normal(0, 0.05, [CLASSES]) * final_scale).astype(np.float32)
        R.const("final_training_ops/weights/final_weights", fw)
        R.node("Identity", "final_training_ops/weights/final_weights/read",
               ["final_training_ops/weights/final_weights"], T=R.a_type(F))
        R.const("final_training_ops/biases/final_biases", fb)
        R.node("Identity", "final_training_ops/biases/final_biases/read",
               ["final_training_ops/biases/final_biases"], T=R.a_type(F))
        R.node("MatMul", "final_training_ops/Wx_plus_b/MatMul",
               ["input/BottleneckInputPlaceholder", "final_training_ops/weights/final_weights/read"],
               T=R.a_type(F), transpose_a=attr_value_pb2.AttrValue(b=False),
               transpose_b=attr_value_pb2.AttrValue(b=False))
        R.node("Add", "final_training_ops/Wx_plus_b/add",
               ["final_training_ops/Wx_plus_b/MatMul", "final_training_ops/biases/final_biases/read"],
               T=R.a_type(F))
        R.node("Softmax", "final_result", ["final_training_ops/Wx_plus_b/add"], T=R.a_type(F))
        R.emit("final_result", lambda env: tf.nn.softmax(tf.matmul(env["pool_3/_reshape"], fw) + fb))
        logits = tf.matmul(R.val["pool_3/_reshape"], fw) + fb
        return R, logits.numpy()

    _, lg = graph(1.0)
    f = TARGET_LOGIT_STD / float(np.mean(np.std(lg.astype(np.float64), axis=-1)))
    R, _ = graph(f)
    gd = R.gd

    def reference(xs):
        return [R.replay({"Mul": tf.constant(x)})["final_result"].numpy() for x in xs]

    return dict(graph_def=gd, input="Mul", output="final_result", input_shape=[1, h, h, 3], value_range=(-1, 1),
                reference=reference,
                notes=f"Hand-written GraphDef (versions.producer={INC15_PRODUCER}, since "
                      "BatchNormWithGlobalNormalization is deprecated at version 9) in the spelling of the 2015 "
                      "Inception v3 graph retrain.py used: string Placeholder 'DecodeJpeg/contents' -> DecodeJpeg "
                      "-> Cast -> ExpandDims -> ResizeBilinear (size Const [96,96]) -> Sub (128) -> 'Mul' "
                      "(1/128). Feed the float image at 'Mul:0' [1,96,96,3] (values in [-1,1]); the DecodeJpeg "
                      "branch is then dead. Tower: Conv2D (attrs T/strides/padding/use_cudnn_on_gpu only, no "
                      "data_format) + BatchNormWithGlobalNormalization(scale_after_normalization=False, "
                      "variance_epsilon=0.001; inputs t,mean,variance,beta,gamma) + Relu, MaxPool, AvgPool, "
                      "Concat v1 (concat_dim first input) in 'mixed*/join', AvgPool 'pool_3', Reshape "
                      "'pool_3/_reshape' (shape Const [1,C]), retrain.py head: PlaceholderWithDefault "
                      "'input/BottleneckInputPlaceholder', final_training_ops/.../final_weights(+/read Identity), "
                      "Wx_plus_b/MatMul, Wx_plus_b/add (op Add), Softmax 'final_result'.")


# ---------------------------------------------------------------------------
# ONNX: small CNN, Keras -> tf2onnx (inputs_as_nchw), golden from ONNX Runtime
# ---------------------------------------------------------------------------

ONNX_H = 32
ONNX_OPSET = 13


def build_small_cnn_onnx():
    import tf2onnx

    name = "small_cnn"
    h = ONNX_H
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed_of(name))
    inp = L.Input(shape=(h, h, 3), name="input")
    x = L.Conv2D(8, 3, padding="same", name="conv1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU(name="relu1")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(16, 3, padding="same", name="conv2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU(name="relu2")(x)
    x = L.AveragePooling2D(2, name="pool2")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(32, activation="relu", name="fc1")(x)
    x = L.Dense(CLASSES, name="logits")(x)
    x = L.Softmax(name="probabilities")(x)
    model = keras.Model(inp, x, name="small_cnn")
    rng = np.random.default_rng(seed_of(name, 1))
    calib = np.concatenate(make_inputs(name, [1, h, h, 3], (-1, 1), CALIB_N, 99), axis=0)
    randomize_keras(model, rng, calib)
    spec = (tf.TensorSpec([None, h, h, 3], tf.float32, name="input"),)
    # Keep BatchNormalization as its own ONNX op: switch off (only) the
    # Conv+BatchNormalization fusion of tf2onnx's back-to-back optimizer.
    from tf2onnx.optimizer import back_to_back_optimizer as b2b
    key = ("Conv", "BatchNormalization")
    fuse = b2b._func_map.pop(key)
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=ONNX_OPSET,
                                              inputs_as_nchw=["input"], output_path=None)
    finally:
        b2b._func_map[key] = fuse
    proto.producer_version = tf2onnx.__version__
    return dict(onnx=proto, input=proto.graph.input[0].name, output=proto.graph.output[0].name,
                input_shape=[1, 3, h, h], layout="nchw", value_range=(-1, 1),
                reference=lambda xs: [model(np.transpose(x, (0, 2, 3, 1)), training=False).numpy() for x in xs],
                notes=f"Keras small CNN (Conv2D+BatchNormalization+ReLU+MaxPool, Conv2D+BN+ReLU+AvgPool, Flatten, "
                      f"Dense relu, Dense, Softmax) exported with tf2onnx {tf2onnx.__version__} opset {ONNX_OPSET} "
                      f"and inputs_as_nchw, so the ONNX input is NCHW [N,3,{h},{h}] (dynamic batch). Golden "
                      f"outputs from ONNX Runtime.")


# ---------------------------------------------------------------------------
# Families, expectations
# ---------------------------------------------------------------------------


FAMILIES = {
    "mobilenet_v1": (keras_family("mobilenet_v1", b_mobilenet_v1, 96, 96, (-1, 1),
                                  "keras.applications.MobileNet(alpha=0.25, 96x96)."),
                     ["FusedBatchNormV3", "DepthwiseConv2dNative", "Relu6", "Pad", "Mean", "Reshape", "Softmax"]),
    "mobilenet_v2": (keras_family("mobilenet_v2", b_mobilenet_v2, 96, 96, (-1, 1),
                                  "keras.applications.MobileNetV2(alpha=0.35, 96x96)."),
                     ["FusedBatchNormV3", "DepthwiseConv2dNative", "Relu6", "Pad", "AddV2", "Mean", "MatMul",
                      "Softmax"]),
    "mobilenet_v3_small": (keras_family("mobilenet_v3_small", b_mobilenet_v3_small, 96, 96, (0, 255),
                                        "keras.applications.MobileNetV3Small(alpha=0.35, 96x96) with its in-graph "
                                        "Rescaling(1/127.5, offset -1): input range [0,255]. hard_swish/"
                                        "hard_sigmoid spelled Relu6/Mul/AddV2, squeeze-excite Mean keepdims."),
                       ["FusedBatchNormV3", "DepthwiseConv2dNative", "Relu6", "Pad", "Mean", "Mul", "AddV2",
                        "Softmax"]),
    "resnet50_v1": (keras_family("resnet50_v1", b_resnet50_v1, 64, 64, (-1, 1),
                                 "keras.src.applications.resnet.ResNet(stack1 x [2,1,1,1] with filters "
                                 "[8,16,32,64], preact=False, use_bias=True), 64x64 (real: [3,4,6,3], "
                                 "[64..512])."),
                    ["FusedBatchNormV3", "Pad", "MaxPool", "AddV2", "Mean", "Conv2D", "BiasAdd", "Softmax"]),
    "resnet50_v2": (keras_family("resnet50_v2", b_resnet50_v2, 64, 64, (-1, 1),
                                 "keras.src.applications.resnet.ResNet(stack2 x [2,2,2,2] with filters "
                                 "[8,16,32,64], preact=True, use_bias=True), 64x64."),
                    ["FusedBatchNormV3", "Pad", "MaxPool", "AddV2", "Mean", "Softmax"]),
    "densenet121": (keras_family("densenet121", b_densenet121, 64, 64, (-1, 1),
                                 "keras.src.applications.densenet.DenseNet(blocks=[2,2,2,1]), 64x64 (real: "
                                 "[6,12,24,16])."),
                    ["FusedBatchNormV3", "Pad", "ConcatV2", "AvgPool", "MaxPool", "Mean", "Softmax"]),
    "efficientnet_b0": (keras_family("efficientnet_b0", b_efficientnet_b0, 64, 64, (0, 255),
                                     "keras.src.applications.efficientnet.EfficientNet(width 0.25, depth 0.25, "
                                     "64x64, model_name efficientnetb0) with in-graph Rescaling(1/255) + "
                                     "Normalization (ImageNet mean/var set): input range [0,255]. (The real "
                                     "imagenet-weights model has one more Rescaling(1/sqrt(std)); it is only "
                                     "added when weights='imagenet'.) swish is Sigmoid*Mul wrapped in IdentityN "
                                     "(tf.nn.silu custom gradient)."),
                        ["FusedBatchNormV3", "Sqrt", "Sigmoid", "DepthwiseConv2dNative", "Pad", "Mean", "Mul",
                         "Softmax"]),
    "efficientnet_v2_b0": (keras_family("efficientnet_v2_b0", b_efficientnet_v2_b0, 64, 64, (0, 255),
                                        "keras.src.applications.efficientnet_v2.EfficientNetV2(width 0.25, depth "
                                        "0.34, 64x64, model_name efficientnetv2-b0, include_preprocessing) with "
                                        "in-graph Rescaling(1/255) + Normalization(ImageNet mean/var): input "
                                        "range [0,255]."),
                           ["FusedBatchNormV3", "Sqrt", "Sigmoid", "DepthwiseConv2dNative", "Mean", "Softmax"]),
    "nasnet_mobile": (keras_family("nasnet_mobile", b_nasnet_mobile, 96, 96, (-1, 1),
                                   "keras.src.applications.nasnet.NASNet(penultimate_filters=192, num_blocks=1, "
                                   "stem_block_filters=8, skip_reduction=False, 96x96) (real mobile: 1056, 4, "
                                   "32, 224x224). ZeroPadding2D+Cropping2D give Pad+StridedSlice."),
                      ["FusedBatchNormV3", "Pad", "StridedSlice", "ConcatV2", "AvgPool", "MaxPool",
                       "DepthwiseConv2dNative", "Softmax"]),
    "inception_v3_keras": (keras_family("inception_v3_keras", b_inception_v3_keras, 96, 96, (-1, 1),
                                        "Mini InceptionV3 written with keras.applications.inception_v3's layer "
                                        "types (conv2d_bn = Conv2D no bias + BatchNormalization(scale=False) + "
                                        "relu; mixed0/3/4/8/9 patterns with Concatenate, AveragePooling2D 3x3 "
                                        "stride 1 'same', MaxPooling2D), 96x96."),
                           ["FusedBatchNormV3", "ConcatV2", "AvgPool", "MaxPool", "Mean", "Softmax"]),
    "xception": (keras_family("xception", b_xception, 64, 64, (-1, 1),
                              "Mini Xception written with keras.applications.xception's layer types "
                              "(SeparableConv2D + BN, residual Conv2D 1x1 stride 2 + BN + add), 64x64."),
                 ["FusedBatchNormV3", "DepthwiseConv2dNative", "AddV2", "MaxPool", "Mean", "Softmax"]),
    "vgg16": (keras_family("vgg16", b_vgg16, 64, 64, (-1, 1),
                           "Mini VGG16 (2-2-3-3-3 Conv2D relu 'same' + MaxPooling2D, Flatten, fc1, fc2, "
                           "predictions), 64x64, widths 8..32, fc 64."),
              ["Conv2D", "BiasAdd", "Relu", "MaxPool", "Reshape", "MatMul", "Softmax"]),
    "vgg_block_112": (keras_family("vgg_block_112", b_vgg_block_112, 112, 112, (-1, 1),
                                   "VGG16's first two blocks at 112x112 (block1 64 channels, 2x2 max pool, "
                                   "block2 128 channels: 3x3 Conv2D relu 'same'), GlobalAveragePooling2D, "
                                   "predictions: dense convolutions at a real size."),
                      ["Conv2D", "BiasAdd", "Relu", "MaxPool", "Mean", "Softmax"]),
    "convnext_tiny": (keras_family("convnext_tiny", b_convnext_tiny, 64, 64, (0, 255),
                                   "keras.src.applications.convnext.ConvNeXt(depths=[1,1,2,1], "
                                   "projection_dims=[16,32,64,96], model_name convnext_tiny, "
                                   "include_preprocessing) with in-graph Normalization (ImageNet mean/var x255): "
                                   "input range [0,255]. gelu is exact (Erf); LayerNormalization eps 1e-6 is the "
                                   "unfused Mean/SquaredDifference/Rsqrt path; LayerScale gammas randomised to "
                                   "[0.2,0.6] (init 1e-6 would zero the residual branches)."),
                      ["Erf", "Mean", "SquaredDifference", "Rsqrt", "Conv2D", "Sqrt", "Softmax"]),
    "slim_mobilenet_v1": (build_slim_mobilenet_v1,
                          ["FusedBatchNorm", "Relu6", "DepthwiseConv2dNative", "AvgPool", "Squeeze", "Reshape",
                           "Softmax", "Identity"]),
    "inception_v3_2015": (build_inception_v3_2015,
                          ["DecodeJpeg", "Cast", "ExpandDims", "ResizeBilinear", "Sub", "Mul",
                           "BatchNormWithGlobalNormalization", "Concat", "MaxPool", "AvgPool", "Reshape", "MatMul",
                           "Add", "Softmax", "PlaceholderWithDefault"]),
    "retrain_small": (build_retrain_small,
                      ["Placeholder", "Conv2D", "BiasAdd", "Relu", "MaxPool", "Identity", "Reshape",
                       "PlaceholderWithDefault", "MatMul", "AddV2", "Softmax"]),
    "small_cnn": (build_small_cnn_onnx, ["Conv", "BatchNormalization", "Relu", "MaxPool", "AveragePool",
                                          "MatMul", "Softmax"]),
}

FORBIDDEN_TF = {"PartitionedCall", "StatefulPartitionedCall", "VarHandleOp", "ReadVariableOp", "VariableV2",
                "Variable", "Assign", "AssignVariableOp"}

KERAS_NAMES = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "resnet50_v1", "resnet50_v2", "densenet121",
               "efficientnet_b0", "efficientnet_v2_b0", "nasnet_mobile", "inception_v3_keras", "xception", "vgg16",
               "convnext_tiny"]


def histogram(ops):
    h = {}
    for o in ops:
        h[o] = h.get(o, 0) + 1
    return dict(sorted(h.items()))


def run_tf_pb(path, in_name, out_name, xs):
    gd = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        gd.ParseFromString(f.read())
    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(gd, name="")
    # Grappler's remapper would fuse Conv2D+BiasAdd into _FusedConv2D, which
    # rejects grouped convolutions (convnext_tiny); run the plain kernels.
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    cfg = config_pb2.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    cfg.graph_options.rewrite_options.remapping = rewriter_config_pb2.RewriterConfig.OFF
    with tf.compat.v1.Session(graph=g, config=cfg) as sess:
        return [sess.run(f"{out_name}:0", {f"{in_name}:0": x}) for x in xs]


def run_onnx(path, in_name, out_name, xs):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return [s.run([out_name], {in_name: x})[0] for x in xs]


def check(cond, msg, problems):
    if not cond:
        problems.append(msg)


def build_one(name):
    builder, expected_ops = FAMILIES[name]
    spec = builder()
    problems = []
    is_onnx = "onnx" in spec
    if is_onnx:
        path_rel = f"{OUT_REL}/{name}.onnx"
        data = spec["onnx"].SerializeToString(deterministic=True)
        ops = [n.op_type for n in spec["onnx"].graph.node]
        opset = [o.version for o in spec["onnx"].opset_import if o.domain in ("", "ai.onnx")]
    else:
        path_rel = f"{OUT_REL}/{name}.pb"
        gd = spec["graph_def"]
        data = gd.SerializeToString(deterministic=True)
        ops = [n.op for n in gd.node]
        calls = spec.get("inlined_calls", 0)
        check(calls > 0 or len(gd.library.function) == 0,
              f"graph has {len(gd.library.function)} library functions", problems)
        left = sorted(set(ops) & (FORBIDDEN_TF - ({"PartitionedCall", "StatefulPartitionedCall"} if calls else set())))
        check(not left, f"non-frozen/partitioned ops remain: {left}", problems)
    path = os.path.join(REPO, path_rel)
    with open(path, "wb") as f:
        f.write(data)
    hist = histogram(ops)
    for o in expected_ops:
        check(o in hist, f"expected op {o} missing", problems)
    if name in KERAS_NAMES and name not in ("vgg16", "convnext_tiny"):
        check("FusedBatchNormV3" in hist, "FusedBatchNormV3 missing", problems)
    if name == "slim_mobilenet_v1":
        check("FusedBatchNormV3" not in hist, "slim graph must use FusedBatchNorm v1 only", problems)
        sq = [n for n in gd.node if n.op == "Squeeze"][0]
        check(list(sq.attr["squeeze_dims"].list.i) == [1, 2], "Squeeze squeeze_dims != [1,2]", problems)
    if name in ("mobilenet_v2", "resnet50_v1", "resnet50_v2"):
        pads = [n for n in gd.node if n.op == "Pad"]
        check(all(n.attr["Tpaddings"].type == types_pb2.DT_INT32 for n in pads), "Pad paddings not int32",
              problems)
    if name == "inception_v3_2015":
        check(gd.versions.producer < 9, "producer must be < 9", problems)
        check(any(n.name == "Mul" and n.op == "Mul" for n in gd.node), "node 'Mul' missing", problems)
        cc = [n for n in gd.node if n.op == "Concat"][0]
        check(cc.input[0].endswith("concat_dim"), "Concat concat_dim not first", problems)

    layout = spec.get("layout", "nhwc")
    shape = spec["input_shape"]
    xs = make_inputs(name, shape, spec["value_range"], 2, 0)
    if is_onnx:
        ys = run_onnx(path, spec["input"], spec["output"], xs)
    else:
        ys = run_tf_pb(path, spec["input"], spec["output"], xs)
    cases = []
    maxp = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        y = np.asarray(y, np.float32)
        check(y.shape == (1, CLASSES), f"output shape {y.shape}", problems)
        check(np.all(np.isfinite(y)), "non-finite output", problems)
        check(abs(float(y.sum()) - 1.0) < 1e-4, f"case {i}: softmax sums to {y.sum()}", problems)
        check(float(y.max() - y.min()) > 1e-3, f"case {i}: output nearly uniform", problems)
        maxp.append(float(y.max()))
        case = f"{name}-{i}"
        x.astype("<f4").tofile(os.path.join(OUT, case + ".input.f32"))
        y.astype("<f4").tofile(os.path.join(OUT, case + ".output.f32"))
        cases.append(case)
    check(min(maxp) < 0.99, f"softmax saturated in all cases: {maxp}", problems)
    check(float(np.abs(ys[0] - ys[1]).max()) > 1e-4, "both cases give the same output", problems)

    # Independent reference: the model computed another way (the Keras model
    # object, or eager TF ops with the same parameters) -- checks the freeze,
    # not used for the goldens.
    ref = spec["reference"](xs)
    sanity = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(ys, ref))
    check(sanity < 1e-4, f"golden differs from the reference computation by {sanity}", problems)
    entry = {
        "name": name,
        "graph": path_rel,
        "format": "onnx" if is_onnx else "tensorflow",
        "input": spec["input"],
        "output": spec["output"],
        "layout": layout,
        "input_shape": shape,
        "output_shape": [1, CLASSES],
        "input_range": list(map(float, spec["value_range"])),
        "cases": cases,
        "ops": hist,
        "tensorflow": tf.__version__,
        "notes": spec["notes"],
    }
    if is_onnx:
        import onnx
        import onnxruntime
        entry["onnx_opset"] = opset[0] if opset else None
        entry["onnx"] = onnx.__version__
        entry["onnxruntime"] = onnxruntime.__version__
    else:
        entry["graphdef_producer"] = gd.versions.producer
    if spec.get("inlined_calls"):
        entry["partitioned_calls"] = spec["inlined_calls"]
    return entry, problems, len(data), sanity, maxp


def main(argv):
    os.makedirs(OUT, exist_ok=True)
    names = argv[1:] or list(FAMILIES)
    for n in names:
        if n not in FAMILIES:
            sys.exit(f"unknown family {n}; known: {', '.join(FAMILIES)}")
    manifest_path = os.path.join(OUT, "manifest.json")
    existing = {}
    if argv[1:] and os.path.exists(manifest_path):
        existing = {e["name"]: e for e in json.load(open(manifest_path))}
    rows = []
    all_problems = {}
    for n in names:
        print(f"== building {n}", flush=True)
        entry, problems, size, sanity, maxp = build_one(n)
        existing[n] = entry
        rows.append((n, size, entry["ops"], sanity, maxp))
        if problems:
            all_problems[n] = problems
    order = [n for n in FAMILIES if n in existing]
    with open(manifest_path, "w") as f:
        json.dump([existing[n] for n in order], f, indent=2, sort_keys=False)
        f.write("\n")

    print()
    print(f"{'name':20s} {'bytes':>9s} {'nodes':>6s} {'maxprob':>15s} {'ref|d|':>9s}  op types")
    for n, size, hist, sanity, maxp in rows:
        mp = "/".join(f"{p:.3f}" for p in maxp)
        print(f"{n:20s} {size:9d} {sum(hist.values()):6d} {mp:>15s} {sanity:9.2e}  {' '.join(sorted(hist))}")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"total size of {OUT_REL}: {total} bytes ({total / 2**20:.2f} MiB)")
    if total > 20 * 2**20:
        all_problems["total"] = [f"fixtures exceed 20 MiB: {total}"]
    if all_problems:
        print("\nSANITY CHECK FAILURES:")
        for n, ps in all_problems.items():
            for p in ps:
                print(f"  {n}: {p}")
        sys.exit(1)
    print("all sanity checks passed")


if __name__ == "__main__":
    main(sys.argv)
