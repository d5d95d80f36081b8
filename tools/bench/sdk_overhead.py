"""SDK overhead micro-benchmark (called by tools/bench/fast-model): the per-sample CPU cost of the
Python SDK's request decode + result encode around a trivial predict (one small output per input),
over columnar predict frames of real fast-model inputs, against a bare json.loads-per-line loop
over the same lines (what any Python consumer of the file pays at least). Target: <= 1.3x.

    python sdk_overhead.py --data in.jsonl [--batch 256] [--samples 25600]

Prints {"sdkMicrosPerSample", "bareMicrosPerSample", "ratio"}. Both sides run in this process,
best of 5 rounds each; the SDK side runs its real frame loop on in-memory streams.
"""
import argparse
import io
import itertools
import json
import time

import flotilla_predictor
from flotilla_predictor import encode_frame

OUTPUT = {"label": 0}


def trivial(inputs):
    return [OUTPUT] * len(inputs)


def best(run, rounds=5):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--samples", type=int, default=25600)
    args = parser.parse_args()
    with open(args.data, "rb") as f:
        lines = list(itertools.islice(f, args.samples))
    # The frames a parent sends: columnar, compact JSON, the line's object as the input.
    inputs = [json.loads(line) for line in lines]
    stream = b"".join(
        encode_frame({"type": "predict", "seq": seq, "ids": [x["id"] for x in chunk], "inputs": chunk})
        for seq, chunk in enumerate((inputs[i:i + args.batch] for i in range(0, len(inputs), args.batch)), 1))

    def sdk():
        flotilla_predictor._loop(trivial, io.BytesIO(stream), io.BytesIO())

    def bare():
        for line in lines:
            json.loads(line)

    sdk_us = best(sdk) / len(lines) * 1e6
    bare_us = best(bare) / len(lines) * 1e6
    print(json.dumps({"sdkMicrosPerSample": round(sdk_us, 2), "bareMicrosPerSample": round(bare_us, 2),
                      "ratio": round(sdk_us / bare_us, 2)}))
