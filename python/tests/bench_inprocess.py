"""Baseline for the protocol-overhead benchmark: the identity predictor called in-process in a loop.

    python bench_inprocess.py [BATCHES]

Prints batches/s and samples/s for (1) predict() alone and (2) predict() plus the JSON encoding and
decoding of the frames a child does per batch, with the same 32-sample batch as the Swift benchmark
(Tests/FlotillaPredictorTests/DigitsAndBenchmarkTests.swift).
"""
import json
import sys
import time

from flotilla_predictor import encode_frame


def predict(inputs):
    return inputs


batches = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
sample = {"id": "digit-00001", "pixels": [i % 17 for i in range(64)]}
request = encode_frame({"type": "predict", "seq": 1, "samples": [{"id": "s%d" % i, "input": sample} for i in range(32)]})

start = time.perf_counter()
for _ in range(batches):
    predict([sample] * 32)
plain = time.perf_counter() - start

start = time.perf_counter()
for seq in range(batches):
    message = json.loads(request[4:].decode("utf-8"))
    outputs = predict([s["input"] for s in message["samples"]])
    encode_frame({"type": "result", "seq": seq, "outputs": [{"output": o} for o in outputs]})
framed = time.perf_counter() - start

for label, seconds in (("in-process predict()", plain), ("in-process predict() + frame JSON", framed)):
    print("BENCH %s: %d batches in %.2f s = %.0f batches/s, %.0f samples/s"
          % (label, batches, seconds, batches / seconds, batches * 32 / seconds))
