"""Flotilla predictor for the quickstart digits model.

    python digits_predictor.py --model MODEL.npz|MODEL.pickle [--max-batch N]

MODEL.npz (weights written by train_digits.py) is served with numpy alone and starts in a fraction
of a second; MODEL.pickle loads the scikit-learn classifier itself (~1.5 s to import scikit-learn).

Input:  {"pixels": [64 numbers in 0..16]}  (an 8x8 image, row by row)
Output: {"label": int, "confidence": float}  (the predicted digit and its probability)
A malformed input gets a per-sample error; the rest of its batch is still predicted.
"""
import argparse
import math
import pickle

from flotilla_predictor import SampleError, serve

parser = argparse.ArgumentParser(description="serve the quickstart digits classifier")
parser.add_argument("--model", required=True, help="MODEL.npz or MODEL.pickle written by train_digits.py")
parser.add_argument("--max-batch", type=int, default=None)
args = parser.parse_args()

model = None


class NumpyLogisticRegression:
    """The classifier from its weights: softmax(x W^T + b), as scikit-learn's predict_proba."""

    def __init__(self, path):
        import numpy as np

        self.np = np
        with np.load(path) as weights:
            self.coef, self.intercept, self.classes_ = weights["coef"], weights["intercept"], weights["classes"]

    def predict_proba(self, rows):
        logits = self.np.asarray(rows) @ self.coef.T + self.intercept
        exp = self.np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


def setup():
    global model
    if args.model.endswith(".npz"):
        model = NumpyLogisticRegression(args.model)
        return
    with open(args.model, "rb") as f:
        model = pickle.load(f)


def check(sample):
    """The 64 pixel values of a sample, or a SampleError saying what is wrong with it."""
    if not isinstance(sample, dict) or "pixels" not in sample:
        return SampleError('input must be an object with a "pixels" field')
    pixels = sample["pixels"]
    if not isinstance(pixels, list) or len(pixels) != 64:
        return SampleError('"pixels" must be a list of 64 numbers, got %s' % (
            "%d items" % len(pixels) if isinstance(pixels, list) else type(pixels).__name__))
    for value in pixels:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return SampleError('"pixels" must hold only numbers, found %r' % (value,))
        if not 0 <= value <= 16:
            return SampleError('"pixels" values must be within 0..16, found %r' % (value,))
    return [float(v) for v in pixels]


def predict(inputs):
    checked = [check(sample) for sample in inputs]
    rows = [c for c in checked if not isinstance(c, SampleError)]
    outputs = []
    if rows:
        probabilities = model.predict_proba(rows)
        classes = model.classes_
    k = 0
    for c in checked:
        if isinstance(c, SampleError):
            outputs.append(c)
            continue
        p = probabilities[k]
        k += 1
        best = int(p.argmax())
        outputs.append({"label": int(classes[best]), "confidence": round(float(p[best]), 6)})
    return outputs


serve(predict, name="digits", max_batch=args.max_batch, setup=setup)
