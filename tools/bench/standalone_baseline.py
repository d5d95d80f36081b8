"""Standalone baseline for the framework-efficiency benchmark: the same predictor code over the
same samples, in batches, with N processes (multiprocessing), no Flotilla. Prints samples/s."""
import argparse
import json
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from burn_predictor import make_predict  # noqa: E402


def run_batch(args):
    batch, ms = args
    return len(make_predict(ms)(batch))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--ms", type=float, default=2.0)
    args = parser.parse_args()
    with open(args.data) as f:
        samples = [json.loads(line) for line in f if line.strip()]
    batches = [(samples[i:i + args.batch], args.ms) for i in range(0, len(samples), args.batch)]
    with multiprocessing.Pool(args.processes) as pool:
        pool.map(run_batch, batches[: args.processes])  # warm the processes up
        start = time.perf_counter()
        done = sum(pool.map(run_batch, batches, chunksize=1))
        seconds = time.perf_counter() - start
    print(json.dumps({"samples": done, "seconds": seconds, "samplesPerSecond": done / seconds}))
