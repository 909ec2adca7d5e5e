"""TensorFlow CPU reference for `genretag bench-train`: the same CNN (blocks of 3x3 conv
+ batch norm + ReLU + 2x2 max-pool, global average pool, dense 10; by default the issue's
99k-parameter 16-32-64-128 network, or the results table's 5-block 32-64-128-256-512 one),
batch 32 of 1x128x130 (NHWC here), Adam, sparse cross-entropy.
Writes median seconds per training step and milliseconds per single-clip inference.

Usage: python scripts/train_reference.py OUT.json [STEPS] [WIDTHS, e.g. 32,64,128,256,512]
"""
import json
import sys
import time

import numpy as np
import tensorflow as tf


def model(widths):
    inp = tf.keras.Input((128, 130, 1))
    x = inp
    for f in widths:
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
    widths = [int(w) for w in sys.argv[3].split(",")] if len(sys.argv) > 3 else [16, 32, 64, 128]
    m = model(widths)
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
        "widths": widths,
    }
    with open(out, "w") as f:
        json.dump(res, f, indent=2)
    print(res)


if __name__ == "__main__":
    main()
