"""A fast numpy model for the fast-model benchmark: an MLP 64 -> 512 -> 512 -> 10 (ReLU, float32,
fixed random weights from a seed). Input {"id": .., "x": [64 numbers]}, output {"label": int}.

    python fast_model.py            # serve it as a Flotilla predictor (batch=True: one array per batch)
    python fast_model.py --bench    # print the model's own cost in µs per sample at batch 256

`predict(inputs)` is importable, so the plain-script baseline runs exactly the same model. Run with
OPENBLAS_NUM_THREADS=1 (set below unless given) so that one process uses one core.
"""
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

SIZES = (64, 512, 512, 10)
BATCH = 256


def _layers(seed=7):
    rng = np.random.default_rng(seed)
    return [((rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32),
             (rng.standard_normal(n_out) * 0.01).astype(np.float32)) for n_in, n_out in zip(SIZES, SIZES[1:])]


LAYERS = _layers()


def forward(x):
    """Labels (int64 array, one per row) for a float32 array of shape (n, 64)."""
    for i, (weights, bias) in enumerate(LAYERS):
        x = x @ weights
        x += bias
        if i < len(LAYERS) - 1:
            np.maximum(x, 0, out=x)
    return x.argmax(axis=1)


def _outputs(labels):
    return [{"label": label} for label in labels.tolist()]


def predict(inputs):
    """[{"x": [64 numbers], ...}, ...] -> [{"label": int}, ...], one per input, same order."""
    return _outputs(forward(np.asarray([item["x"] for item in inputs], dtype=np.float32)))


def predict_batch(batch):
    """predict for serve(..., batch=True): the same model on batch.array("x")."""
    return _outputs(forward(batch.array("x", dtype=np.float32)))


def bench(batches=200):
    """µs per sample of predict() on batches of BATCH inputs (numpy conversion included)."""
    rng = np.random.default_rng(1)
    inputs = [{"id": i, "x": row} for i, row in enumerate(rng.standard_normal((BATCH, SIZES[0])).round(4).tolist())]
    for _ in range(10):
        predict(inputs)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(batches):
            predict(inputs)
        best = min(best, time.perf_counter() - start)
    return best / (batches * BATCH) * 1e6


if __name__ == "__main__":
    if "--bench" in sys.argv[1:]:
        print("%.1f" % bench())
    else:
        from flotilla_predictor import serve

        serve(predict_batch, name="fast-model", max_batch=BATCH, batch=True)
