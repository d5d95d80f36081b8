# Shared by the benchmark scripts: a release build, an external embedded broker, and figures
# measured from the acks topic (so start-up costs, the same in every mode, are left out).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# FLOTILLA=/path/to/another/build compares builds in one sitting (the build step is then skipped).
FLOTILLA_GIVEN="${FLOTILLA:-}"
FLOTILLA="${FLOTILLA:-$ROOT/.build/release/flotilla}"
PY="$ROOT/.tools/venv/bin/python"
WORK="$(mktemp -d /tmp/flotilla-bench.XXXXXX)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

say() { printf 'bench: %s\n' "$*" >&2; }

build_release() {
  if [ -n "$FLOTILLA_GIVEN" ]; then say "using $FLOTILLA"; [ -x "$FLOTILLA" ] || { echo "bench: $FLOTILLA is not executable" >&2; exit 1; }; return; fi
  say "building flotilla (release; a first build takes several minutes)"
  (cd "$ROOT" && swift build -c release --product flotilla --static-swift-stdlib 2>&1 | grep -E "error|warning: unre|Compiling flotilla" >&2 || true)
  [ -x "$FLOTILLA" ] || { echo "bench: release build failed" >&2; exit 1; }
}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_broker() {
  BROKER_PORT="$(free_port)"
  BROKERS="127.0.0.1:$BROKER_PORT"
  "$FLOTILLA" broker --port "$BROKER_PORT" > "$WORK/broker.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q listening "$WORK/broker.log" 2>/dev/null && return; sleep 0.1; done
  echo "bench: the broker did not start" >&2; exit 1
}

# job_acks JOB...: the jobs' ack records, one JSON line each; the acks topic's other records
# (`settle`, docs/PROTOCOL.md) are left out by their flotilla-type header.
job_acks() {
  for job in "$@"; do kcat -C -b "$BROKERS" -t "flotilla.$job.acks" -e -q -f '%h\t%s\n' 2>/dev/null; done |
    awk -F'\t' '$1 ~ /(^|,)flotilla-type=ack(,|$)/ { print $2 }'
}

# ack_span JOB...: samples and seconds from the first shard start to the last done ack over the jobs.
ack_span() {
  job_acks "$@" | "$PY" -c '
import json, sys
acks = [json.loads(line) for line in sys.stdin if line.strip()]
first = {}
for a in acks:
    if a["status"] == "done" and a["shard"] + a.get("job", "") not in first:
        first[a["shard"] + a.get("job", "")] = a
done = list(first.values())
runs = len([a for a in acks if a["status"] == "done"])
start = min(a["startedAt"] for a in done); end = max(a["finishedAt"] for a in done)
samples = sum(a["samples"] for a in done)
busy = sum(a["finishedAt"] - a["startedAt"] for a in done) / 1000.0
print(json.dumps({"samples": samples, "seconds": (end - start) / 1000.0, "shards": len(done), "runs": runs,
                  "meanShardSeconds": round(busy / max(1, len(done)), 3)}))'
}

field() { "$PY" -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
ratio() { "$PY" -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }

# sample_role ROLE PID...: records each process's CPU seconds and peak RSS (VmHWM, MiB) in
# $WORK/cpu.ROLE.PID, so a process that exits before the end still counts with its last reading.
sample_role() {
  local tick role="$1"; shift; tick="$(getconf CLK_TCK)"
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    { awk -v t="$tick" '{printf "%s ", ($14 + $15) / t}' "/proc/$pid/stat"
      awk '/VmHWM/ {print $2 / 1024}' "/proc/$pid/status"; } > "$WORK/cpu.$role.$pid.tmp" 2>/dev/null || true
    # A process that exited between the two reads leaves half a line: keep the previous reading.
    if [ "$(wc -w < "$WORK/cpu.$role.$pid.tmp")" = 2 ]; then mv "$WORK/cpu.$role.$pid.tmp" "$WORK/cpu.$role.$pid"; fi
  done
}
# totals ROLE: summed CPU seconds and the largest peak RSS over the processes sampled as ROLE.
totals() { cat "$WORK"/cpu."$1".* 2>/dev/null | awk '{cpu += $1; if ($2 > rss) rss = $2} END {printf "%.2f %.0f\n", cpu, rss}'; }
# sample_while PID FUNCTION: calls FUNCTION (which calls sample_role) every 0.25 s while PID runs.
sample_while() { while kill -0 "$1" 2>/dev/null; do "$2"; sleep 0.25; done; }

# fast_model_input FILE COUNT: COUNT JSON lines {"id": "f0000000", "x": [64 floats]} (fixed seed).
fast_model_input() {
  "$PY" -c "
import numpy as np, sys
line = '{\"id\":\"f%07d\",\"x\":[' + ','.join(['%.4f'] * 64) + ']}\n'
rows = np.random.default_rng(3).standard_normal((int(sys.argv[2]), 64)).tolist()
with open(sys.argv[1], 'w') as f:
    f.writelines(line % (i, *row) for i, row in enumerate(rows))" "$1" "$2"
}

# fast_model_job JOB INPUT PER_SHARD BATCH PROCS: writes $WORK/JOB.yaml, one worker running the
# fast model (tools/bench/fast_model.py) on INPUT with PROCS processes, one core each.
fast_model_job() {
  cat > "$WORK/$1.yaml" <<YAML
job: $1
inputs: [{file: $2}]
shard: { samples: $3 }
stages:
  - name: mlp
    predictor: [$PY, $ROOT/tools/bench/fast_model.py]
    batch: $4
    processes: { min: $5, max: $5 }
    env: { PYTHONPATH: $ROOT/python, OPENBLAS_NUM_THREADS: 1, OMP_NUM_THREADS: 1 }
workers: { min: 1, max: 1 }
YAML
}
