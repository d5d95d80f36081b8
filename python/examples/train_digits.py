"""Train the quickstart model: a scikit-learn classifier on the 8x8 digits data set.

The data set ships inside scikit-learn (sklearn.datasets.load_digits), so no network is needed.

    python train_digits.py --out MODEL.pickle --data DIR

Writes MODEL.pickle (a fitted classifier), MODEL.npz next to it (the same model's weights, so a
predictor can serve it with numpy alone: importing scikit-learn costs ~1.5 s per process start),
and DIR/digits.jsonl, one line per image
({"id": "digit-00000", "pixels": [64 numbers 0..16], "label": N}, 1797 lines), and prints the
accuracy on a held-out quarter of the images.
"""
import argparse
import json
import os
import pickle
import sys

import numpy as np

from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the pickled model")
    parser.add_argument("--data", required=True, help="folder for digits.jsonl")
    args = parser.parse_args(argv)

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    model = LogisticRegression(max_iter=5000)
    model.fit(x_train, y_train)
    accuracy = model.score(x_test, y_test)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(model, f)
    os.replace(tmp, args.out)  # a half-written model never looks finished
    weights = os.path.splitext(args.out)[0] + ".npz"
    with open(weights + ".tmp", "wb") as f:
        np.savez(f, coef=model.coef_, intercept=model.intercept_, classes=model.classes_)
    os.replace(weights + ".tmp", weights)
    # The numpy form must predict what the classifier predicts.
    logits = digits.data @ model.coef_.T + model.intercept_
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    assert np.allclose(probabilities, model.predict_proba(digits.data), atol=1e-6), "npz weights disagree with the model"

    os.makedirs(args.data, exist_ok=True)
    path = os.path.join(args.data, "digits.jsonl")
    with open(path + ".tmp", "w") as f:
        for i, (pixels, label) in enumerate(zip(digits.data, digits.target)):
            record = {"id": "digit-%05d" % i, "pixels": [int(p) for p in pixels], "label": int(label)}
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
    os.replace(path + ".tmp", path)

    print("trained %s on %d images; held-out accuracy %.4f on %d images"
          % (type(model).__name__, len(x_train), accuracy, len(x_test)))
    print("model: %s (weights for numpy: %s)" % (args.out, weights))
    print("data:  %s (%d lines)" % (path, len(digits.data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
