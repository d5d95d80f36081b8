"""A CPU-bound benchmark predictor: for each sample, busy-computes for --ms milliseconds
(a deterministic hash chain, not a sleep) and returns {"id": .., "digest": ..}.

`predict` is importable so the standalone baseline runs exactly the same code.
"""
import argparse
import hashlib
import sys
import time


def burn(value, ms):
    deadline = time.perf_counter() + ms / 1000.0
    digest = repr(value).encode()
    rounds = 0
    while time.perf_counter() < deadline:
        digest = hashlib.sha256(digest).digest()
        rounds += 1
    return digest.hex()[:16], rounds


def make_predict(ms):
    def predict(inputs):
        outputs = []
        for item in inputs:
            digest, rounds = burn(item, ms)
            outputs.append({"digest": digest, "rounds": rounds})
        return outputs
    return predict


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--ms", type=float, default=2.0)
    args = parser.parse_args()
    from flotilla_predictor import serve
    serve(make_predict(args.ms), name="burn")
