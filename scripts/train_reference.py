"""TensorFlow CPU reference for `genretag bench-train`: the same 99k-parameter CNN
(4 blocks of 3x3 conv 16-32-64-128 + batch norm + ReLU + 2x2 max-pool, global average
pool, dense 10), batch 32 of 1x128x130 (NHWC here), Adam, sparse cross-entropy.
Writes median seconds per training step and milliseconds per single-clip inference.

Usage: python scripts/train_reference.py OUT.json [STEPS]
"""
import json
import sys
import time

import numpy as np
import tensorflow as tf


def model():
    inp = tf.keras.Input((128, 130, 1))
    x = inp
    for f in (16, 32, 64, 128):
        x = tf.keras.layers.Conv2D(f, 3, padding="same")(x)
        x = tf.keras.layers.BatchNormalization()(x)
        x = tf.keras.layers.ReLU()(x)
        x = tf.keras.layers.MaxPooling2D(2)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(10)(x)
    return tf.keras.Model(inp, out)


def main():
    out = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    m = model()
    m.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 128, 130, 1), dtype=np.float32)
    y = np.arange(32) % 10
    times = []
    for s in range(steps + 2):
        t = time.perf_counter()
        m.train_on_batch(x, y)
        if s >= 2:
            times.append(time.perf_counter() - t)
    one = x[:1]
    infer = []
    for s in range(22):
        t = time.perf_counter()
        m(one, training=False).numpy()
        if s >= 2:
            infer.append((time.perf_counter() - t) * 1e3)
    res = {
        "framework": f"tensorflow-{tf.__version__}",
        "parameters": int(m.count_params()),
        "step_s": float(np.median(times)),
        "infer_ms": float(np.median(infer)),
    }
    with open(out, "w") as f:
        json.dump(res, f, indent=2)
    print(res)


if __name__ == "__main__":
    main()
