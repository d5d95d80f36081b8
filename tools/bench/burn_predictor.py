"""A CPU-bound benchmark predictor: for each sample, busy-computes for --ms milliseconds
(a deterministic hash chain, not a sleep) and returns {"digest": .., "rounds": ..}. With --cpu the
milliseconds are this process's CPU time, not wall time, so a process sharing a core with others
still does --ms of work per sample (tools/bench/multi-model runs more processes than cores).

`predict` is importable so the standalone baseline runs exactly the same code.
"""
import argparse
import hashlib
import sys
import time


def burn(value, ms, clock=time.perf_counter):
    deadline = clock() + ms / 1000.0
    digest = repr(value).encode()
    rounds = 0
    while clock() < deadline:
        digest = hashlib.sha256(digest).digest()
        rounds += 1
    return digest.hex()[:16], rounds


def make_predict(ms, cpu=False):
    clock = time.process_time if cpu else time.perf_counter

    def predict(inputs):
        outputs = []
        for item in inputs:
            digest, rounds = burn(item, ms, clock)
            outputs.append({"digest": digest, "rounds": rounds})
        return outputs
    return predict


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ms", type=float, default=2.0)
    parser.add_argument("--cpu", action="store_true", help="count --ms in CPU time of this process")
    args = parser.parse_args()
    from flotilla_predictor import serve
    serve(make_predict(args.ms, args.cpu), name="burn")
