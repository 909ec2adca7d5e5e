#!/usr/bin/env python3
"""Reference timings: TensorFlow 2 CPU musicnn (MSD) on the same clips as `genretag bench`.

Run through scripts/bench.sh, which builds the virtualenv. Writes JSON:
  {"clips", "preprocess_s_per_clip", "network_s_per_clip", "network_s_per_patch", "tensorflow"}
Preprocessing is exactly SPEC.md's: librosa load at 16 kHz (soxr_hq), 512/256 STFT,
96 Slaney mels, float16 rounding, log10(10000 x + 1) in float32 (avoids musicnn
0.1.0's float16 overflow under numpy 2). Patches are fed to the graph directly
(musicnn 0.1.0's extractor() reuses the first patch's features).
"""
import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import librosa  # noqa: E402
import tensorflow as tf  # noqa: E402
import musicnn  # noqa: E402
from musicnn import models  # noqa: E402


def logmel(path):
    audio, _ = librosa.load(path, sr=16000)
    mel = librosa.feature.melspectrogram(y=audio, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    mel = mel.astype(np.float16).astype(np.float32)
    return np.log10(10000.0 * mel + 1.0).astype(np.float32)


def main():
    data, n_clips, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    files = sorted(
        os.path.join(root, f)
        for root, _, names in os.walk(data)
        for f in names
        if f.lower().endswith((".flac", ".wav", ".mp3", ".au", ".ogg"))
    )
    step = max(1, len(files) // max(1, n_clips))
    sample = files[::step][:n_clips]

    tf.compat.v1.disable_eager_execution()
    x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
    is_training = tf.compat.v1.placeholder(tf.bool)
    outs = models.define_model(x, is_training, "MSD_musicnn", 50)
    penultimate, tags = outs[-1], tf.nn.sigmoid(outs[0])
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver().restore(sess, os.path.join(os.path.dirname(musicnn.__file__), "MSD_musicnn") + "/")

    def run(p):
        return sess.run([penultimate, tags], feed_dict={x: p, is_training: False})

    warm = logmel(sample[0])
    run(warm[: 187 * 10].reshape(-1, 187, 96)[:10])
    pre, net = [], []
    for f in sample:
        t = time.perf_counter()
        m = logmel(f)
        pre.append(time.perf_counter() - t)
        n = m.shape[0] // 187
        patches = m[: n * 187].reshape(n, 187, 96)
        t = time.perf_counter()
        run(patches)
        net.append(time.perf_counter() - t)
    single = warm[:187].reshape(1, 187, 96)
    per_patch = []
    for _ in range(10):
        t = time.perf_counter()
        run(single)
        per_patch.append(time.perf_counter() - t)
    result = {
        "clips": len(sample),
        "preprocess_s_per_clip": float(np.median(pre)),
        "network_s_per_clip": float(np.median(net)),
        "network_s_per_patch": float(np.median(per_patch)),
        "tensorflow": tf.__version__,
    }
    with open(out, "w") as fh:
        json.dump(result, fh, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
