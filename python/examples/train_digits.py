"""Train the quickstart model: a scikit-learn classifier on the 8x8 digits data set.

The data set ships inside scikit-learn (sklearn.datasets.load_digits), so no network is needed.

    python train_digits.py --out MODEL.pickle --data DIR

Writes MODEL.pickle (a fitted classifier) and DIR/digits.jsonl, one line per image
({"id": "digit-00000", "pixels": [64 numbers 0..16], "label": N}, 1797 lines), and prints the
accuracy on a held-out quarter of the images.
"""
import argparse
import json
import os
import pickle
import sys

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

    os.makedirs(args.data, exist_ok=True)
    path = os.path.join(args.data, "digits.jsonl")
    with open(path + ".tmp", "w") as f:
        for i, (pixels, label) in enumerate(zip(digits.data, digits.target)):
            record = {"id": "digit-%05d" % i, "pixels": [int(p) for p in pixels], "label": int(label)}
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
    os.replace(path + ".tmp", path)

    print("trained %s on %d images; held-out accuracy %.4f on %d images"
          % (type(model).__name__, len(x_train), accuracy, len(x_test)))
    print("model: %s" % args.out)
    print("data:  %s (%d lines)" % (path, len(digits.data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
