"""The color classifier: a GRU over the 9 rows of a 9x9 RGB patch.

Trained on generated patches (see `generate`), then written out as a
hand-unrolled cell (MatMul/Add/Sigmoid/Tanh/Mul over 9 steps), because
tract runs neither Keras' While/TensorList loops nor `unroll=True`'s Unpack.
"""
import colorsys

import numpy as np
import tensorflow as tf

COLORS = ["black", "white", "grey", "silver", "gold", "rose gold", "red", "pink", "orange", "yellow",
          "green", "blue", "turquoise", "purple", "brown", "beige", "multi-colored", "black & white"]
HIDDEN = 64
STEPS, FEATURES = 9, 27

# Flat colors as (hue range in degrees, saturation range, value range).
# Hue ranges may wrap (350, 370) = 350..10.
FLAT = {
    "black": [((0, 360), (0.0, 0.6), (0.0, 0.13))],
    "white": [((0, 360), (0.0, 0.07), (0.88, 1.0))],
    "grey": [((0, 360), (0.0, 0.09), (0.22, 0.78))],
    "red": [((352, 368), (0.65, 1.0), (0.45, 1.0))],
    "pink": [((335, 365), (0.2, 0.5), (0.82, 1.0)), ((300, 340), (0.45, 0.9), (0.75, 1.0))],
    "orange": [((18, 34), (0.7, 1.0), (0.75, 1.0))],
    "yellow": [((48, 62), (0.55, 1.0), (0.8, 1.0))],
    "green": [((75, 155), (0.35, 1.0), (0.25, 0.9))],
    "blue": [((205, 248), (0.4, 1.0), (0.3, 1.0))],
    "turquoise": [((165, 192), (0.4, 1.0), (0.5, 1.0))],
    "purple": [((262, 295), (0.35, 1.0), (0.25, 0.9))],
    "brown": [((12, 38), (0.45, 0.85), (0.18, 0.5))],
    "beige": [((30, 50), (0.12, 0.32), (0.76, 0.95))],
}
# Metals: base color plus bright highlights and darker falloff.
METAL = {
    "silver": ((0, 360), (0.0, 0.07), (0.55, 0.85)),
    "gold": ((40, 50), (0.5, 0.8), (0.6, 0.85)),
    "rose gold": ((8, 22), (0.25, 0.45), (0.7, 0.88)),
}


def _hsv(rng, h, s, v):
    hue = rng.uniform(*h) % 360 / 360
    return np.array(colorsys.hsv_to_rgb(hue, rng.uniform(*s), rng.uniform(*v)))


def _shade(rng, patch):
    """A lighting gradient across the patch, sometimes a soft shadow."""
    yy, xx = np.mgrid[0:9, 0:9] / 8.0
    a, b = rng.uniform(-0.3, 0.3, 2)
    light = 1 + a * (xx - 0.5) + b * (yy - 0.5)
    if rng.random() < 0.3:
        cy, cx = rng.uniform(0, 1, 2)
        light = light * (1 - rng.uniform(0.15, 0.4) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.1))
    return patch * light[..., None]


def _border(rng, patch, label):
    """Real points often sit near an edge: up to 30% of the patch may show
    the background or a neighbouring object, the rest stays the color."""
    yy, xx = np.mgrid[0:9, 0:9]
    a = rng.uniform(0, 2 * np.pi)
    d = (xx - 4) * np.cos(a) + (yy - 4) * np.sin(a)
    mask = d > rng.uniform(2.2, 4.5)  # a corner or side strip, at most ~30%
    other = sample_flat(rng, rng.choice([i for i in range(len(COLORS)) if COLORS[i] in FLAT and i != label]))
    return np.where(mask[..., None], other, patch)


def sample_flat(rng, label):
    spec = FLAT[COLORS[label]][rng.integers(len(FLAT[COLORS[label]]))]
    return _texture(rng, _shade(rng, np.broadcast_to(_hsv(rng, *spec), (9, 9, 3))))


def _texture(rng, patch):
    kind = rng.integers(4)
    if kind == 1:  # fine noise texture (fabric, wood grain)
        patch = patch * (1 + rng.normal(0, 0.06, (9, 9, 1)))
    elif kind == 2:  # stripes of slightly different shade
        stripes = (np.arange(9) % rng.integers(2, 4) == 0) * rng.uniform(-0.08, 0.08)
        patch = patch * (1 + (stripes[None, :, None] if rng.random() < 0.5 else stripes[:, None, None]))
    return patch


def _metal(rng, spec):
    base = _hsv(rng, *spec)
    yy, xx = np.mgrid[0:9, 0:9].astype(float)
    angle = rng.uniform(0, np.pi)
    d = (xx - 4) * np.cos(angle) + (yy - 4) * np.sin(angle) - rng.uniform(-3, 3)
    highlight = np.exp(-(d ** 2) / rng.uniform(0.5, 3))
    falloff = 1 - rng.uniform(0.1, 0.4) * np.clip(np.abs(d) / 6, 0, 1)
    # Polished metal also mirrors dark surroundings as streaks.
    d2 = (xx - 4) * np.cos(angle + 0.3) + (yy - 4) * np.sin(angle + 0.3) - rng.uniform(-4, 4)
    falloff = falloff * (1 - rng.uniform(0, 0.5) * np.exp(-(d2 ** 2) / rng.uniform(0.5, 2)))
    white = np.ones(3)
    patch = base * falloff[..., None]
    mix = (highlight * rng.uniform(0.4, 0.9))[..., None]
    return patch * (1 - mix) + (white * 0.5 + base * 0.5 + 0.3) * mix


def _multi(rng):
    # Three or more hues: two are what any edge between objects shows.
    n = rng.integers(3, 6)
    hues = rng.permutation(12)[:n] * 30 + rng.uniform(0, 20)
    cols = [np.array(colorsys.hsv_to_rgb(h / 360 % 1, rng.uniform(0.55, 1), rng.uniform(0.55, 1))) for h in hues]
    kind = rng.integers(3)
    yy, xx = np.mgrid[0:9, 0:9]
    if kind == 0:
        idx = (xx * n // 9) if rng.random() < 0.5 else (yy * n // 9)
    elif kind == 1:
        idx = ((xx // rng.integers(2, 5)) + (yy // rng.integers(2, 5))) % n
    else:
        centers = rng.uniform(0, 9, (n, 2))
        dist = ((xx[..., None] - centers[:, 0]) ** 2 + (yy[..., None] - centers[:, 1]) ** 2)
        idx = dist.argmin(-1)
        idx[0, 0] = 0
    return np.stack(cols)[idx % n]


def _black_white(rng):
    black = np.full(3, rng.uniform(0.0, 0.12))
    white = np.full(3, rng.uniform(0.85, 1.0))
    yy, xx = np.mgrid[0:9, 0:9]
    kind = rng.integers(4)
    p = rng.integers(1, 4)
    if kind == 0:
        mask = (xx // p) % 2 == 0
    elif kind == 1:
        mask = (yy // p) % 2 == 0
    elif kind == 2:
        mask = ((xx // p) + (yy // p)) % 2 == 0
    else:  # a stroke, like text or a line drawing
        a = rng.uniform(0, np.pi)
        d = np.abs((xx - 4) * np.cos(a) + (yy - 4) * np.sin(a) - rng.uniform(-2, 2))
        mask = d < rng.uniform(0.8, 2.2)
    if rng.random() < 0.5:
        mask = ~mask
    return np.where(mask[..., None], black, white)


def sample(rng, label):
    name = COLORS[label]
    if name in FLAT:
        patch = sample_flat(rng, label)
        if rng.random() < 0.3:
            patch = _border(rng, patch, label)
    elif name in METAL:
        patch = _metal(rng, METAL[name])
    elif name == "multi-colored":
        patch = _multi(rng)
    else:
        patch = _black_white(rng)
    if rng.random() < 0.5:  # camera blur
        padded = np.pad(patch, ((1, 1), (1, 1), (0, 0)), mode="edge")
        patch = sum(padded[i:i + 9, j:j + 9] for i in range(3) for j in range(3)) / 9 * 0.5 + patch * 0.5
    patch = patch + rng.normal(0, rng.uniform(0.005, 0.04), patch.shape)  # sensor noise
    return np.clip(np.round(patch * 255) / 255, 0, 1).astype(np.float32)


def generate(n_per_class, seed):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label in range(len(COLORS)):
        for _ in range(n_per_class):
            xs.append(sample(rng, label))
            ys.append(label)
    order = rng.permutation(len(xs))
    return np.stack(xs)[order], np.array(ys)[order]


class GRU(tf.Module):
    def __init__(self, seed=7):
        init = tf.keras.initializers.GlorotUniform(seed=seed)
        self.W = tf.Variable(init((FEATURES, 3 * HIDDEN)))
        self.U = tf.Variable(tf.keras.initializers.Orthogonal(seed=seed)((HIDDEN, 3 * HIDDEN)))
        self.b = tf.Variable(tf.random.uniform((3 * HIDDEN,), -0.01, 0.01, seed=seed))
        self.Wo = tf.Variable(init((HIDDEN, len(COLORS))))
        self.bo = tf.Variable(tf.random.uniform((len(COLORS),), -0.01, 0.01, seed=seed))

    def logits(self, x):
        return logits_of(x, self.W, self.U, self.b, self.Wo, self.bo)


def logits_of(x, W, U, b, Wo, bo):
    """x: [N, 9, 9, 3] in 0..1. The cell is written out step by step; the
    first step has no recurrent term (h0 = 0), so no zero tensor is needed."""
    rows = tf.reshape(x, [-1, STEPS, FEATURES])
    H = HIDDEN
    h = None
    for t in range(STEPS):
        xt = tf.matmul(rows[:, t, :], W) + b
        xz, xr, xn = xt[:, :H], xt[:, H:2 * H], xt[:, 2 * H:]
        if h is None:
            z = tf.sigmoid(xz)
            n = tf.tanh(xn)
            h = (1 - z) * n
        else:
            hu = tf.matmul(h, U)
            z = tf.sigmoid(xz + hu[:, :H])
            r = tf.sigmoid(xr + hu[:, H:2 * H])
            n = tf.tanh(xn + r * hu[:, 2 * H:])
            h = (1 - z) * n + z * h
    return tf.matmul(h, Wo) + bo


def train(epochs=12, n_per_class=3000, seed=1):
    tf.random.set_seed(seed)
    x, y = generate(n_per_class, seed)
    model = GRU()
    opt = tf.keras.optimizers.Adam(3e-3)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(256)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, model.logits(xb)))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for epoch in range(epochs):
        if epoch == epochs * 2 // 3:
            opt.learning_rate.assign(1e-3)
        losses = [float(step(xb, yb)) for xb, yb in ds]
        print(f"  color epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f}", flush=True)
    return model
