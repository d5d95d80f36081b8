"""Plain-script baseline for the fast-model benchmark: the same model over the same JSON-lines file
with no Flotilla. The file is split into N byte ranges on line boundaries, one per process
(multiprocessing); each process parses its lines (json.loads per line), predicts in batches and
writes one result line per sample to its own file. Prints {samples, seconds, samplesPerSecond}.

    python fast_model_script.py --data in.jsonl --out DIR [--processes 2] [--batch 256]
"""
import argparse
import json
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fast_model import predict  # noqa: E402


def ranges(path, parts):
    """`parts` (start, end) byte ranges of the file, each starting at a line start."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as f:
        for k in range(1, parts):
            f.seek(max(cuts[-1], size * k // parts))
            f.readline()
            cuts.append(min(f.tell(), size))
    cuts.append(size)
    return list(zip(cuts, cuts[1:]))


def run_part(job):
    """Predicts one byte range; returns the number of samples written."""
    path, start, end, batch, out = job
    done = 0
    with open(path, "rb") as f, open(out, "w") as results:
        f.seek(start)
        lines = f.read(end - start).splitlines()
        for i in range(0, len(lines), batch):
            samples = [json.loads(line) for line in lines[i:i + batch]]
            for sample, output in zip(samples, predict(samples)):
                results.write(json.dumps({"id": sample["id"], "output": output}) + "\n")
            done += len(samples)
    return done


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    jobs = [(args.data, start, end, args.batch, os.path.join(args.out, "part-%d.jsonl" % k))
            for k, (start, end) in enumerate(ranges(args.data, args.processes))]
    with multiprocessing.Pool(args.processes) as pool:
        pool.map(abs, range(args.processes))  # the processes up before the clock starts
        start = time.perf_counter()
        done = sum(pool.map(run_part, jobs, chunksize=1))
        seconds = time.perf_counter() - start
    print(json.dumps({"samples": done, "seconds": round(seconds, 3), "samplesPerSecond": round(done / seconds, 1)}))
