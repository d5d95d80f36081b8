"""One-process baseline for the multi-model benchmark: the chain's models run one after another in
this process (json.loads per line, then each batch through every stage in turn), no Flotilla.

    python chain_script.py --data in.jsonl --ms 0.5 1.5 1.0 [--batch 16]

Prints {samples, seconds, samplesPerSecond}.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from burn_predictor import make_predict  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--ms", type=float, nargs="+", required=True, help="CPU ms per sample of each stage")
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    stages = [make_predict(ms, cpu=True) for ms in args.ms]
    with open(args.data, "rb") as f:
        lines = f.read().splitlines()
    start = time.perf_counter()
    done = 0
    for i in range(0, len(lines), args.batch):
        values = [json.loads(line) for line in lines[i:i + args.batch]]
        for predict in stages:
            values = predict(values)
        done += len(values)
    seconds = time.perf_counter() - start
    print(json.dumps({"samples": done, "seconds": round(seconds, 3), "samplesPerSecond": round(done / seconds, 1)}))
