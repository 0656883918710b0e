"""EfficientNet-Lite0 in plain TensorFlow ops, with batch norm folded in.

Written with tf.nn ops (no Keras layers) so the frozen graph holds only
Conv2D, DepthwiseConv2dNative, BiasAdd, Relu6, Add, Mean, MatMul, Softmax:
ops that tract runs. Batch norm is folded into each convolution's weights
and bias in numpy, which also saves tract a pass per layer.
"""
import numpy as np
import tensorflow as tf

EPS = 1e-3
# (kernel, stride, expand ratio, output channels, repeats): EfficientNet-B0's
# block arguments, which Lite0 shares.
STAGES = [(3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1)]


def _fold(sd, conv, bn, depthwise=False):
    w = sd[conv + ".weight"].astype(np.float64)
    gamma, beta = sd[bn + ".weight"], sd[bn + ".bias"]
    mean, var = sd[bn + ".running_mean"], sd[bn + ".running_var"]
    scale = gamma / np.sqrt(var + EPS)
    w = w * scale[:, None, None, None]
    b = beta - mean * scale
    if depthwise:  # torch (C, 1, kh, kw) -> tf (kh, kw, C, 1)
        w = w.transpose(2, 3, 0, 1)
    else:  # torch (out, in, kh, kw) -> tf (kh, kw, in, out)
        w = w.transpose(2, 3, 1, 0)
    return w.astype(np.float32), b.astype(np.float32)


def blocks():
    """Yields (kernel, stride, expand, in_ch, out_ch) for the 16 blocks."""
    in_ch = 32
    for k, s, e, out, r in STAGES:
        for i in range(r):
            yield k, (s if i == 0 else 1), e, in_ch, out
            in_ch = out


def build_params(sd):
    p = {"stem": _fold(sd, "_conv_stem", "_bn0"), "blocks": []}
    for i, (k, s, e, cin, cout) in enumerate(blocks()):
        pre = f"_blocks.{i}."
        blk = {"k": k, "s": s, "residual": s == 1 and cin == cout}
        if e != 1:
            blk["expand"] = _fold(sd, pre + "_expand_conv", pre + "_bn0")
        blk["dw"] = _fold(sd, pre + "_depthwise_conv", pre + "_bn1", depthwise=True)
        blk["project"] = _fold(sd, pre + "_project_conv", pre + "_bn2")
        p["blocks"].append(blk)
    p["head"] = _fold(sd, "_conv_head", "_bn1")
    p["fc"] = (sd["_fc.weight"].T.astype(np.float32), sd["_fc.bias"].astype(np.float32))
    return p


def _conv(x, wb, stride=1, act=True):
    w, b = wb
    y = tf.nn.bias_add(tf.nn.conv2d(x, tf.constant(w), stride, "SAME"), tf.constant(b))
    return tf.nn.relu6(y) if act else y


def _dwconv(x, wb, stride):
    w, b = wb
    y = tf.nn.depthwise_conv2d(x, tf.constant(w), [1, stride, stride, 1], "SAME")
    return tf.nn.relu6(tf.nn.bias_add(y, tf.constant(b)))


def logits(x, p):
    """x: [N, H, W, 3] already scaled to (v - 127) / 128."""
    x = _conv(x, p["stem"], stride=2)
    for blk in p["blocks"]:
        inp = x
        if "expand" in blk:
            x = _conv(x, blk["expand"])
        x = _dwconv(x, blk["dw"], blk["s"])
        x = _conv(x, blk["project"], act=False)
        if blk["residual"]:
            x = x + inp
    x = _conv(x, p["head"])
    x = tf.reduce_mean(x, axis=[1, 2])
    w, b = p["fc"]
    return tf.matmul(x, tf.constant(w)) + tf.constant(b)
