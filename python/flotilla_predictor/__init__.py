"""Serve a Python model to Flotilla over the framed predictor protocol (standard library only).

A predictor is a program that Flotilla starts as a child process. It talks over stdin/stdout in
frames: a 4-byte big-endian length, then that many bytes of UTF-8 JSON (docs/PREDICTORS.md).

    from flotilla_predictor import serve

    def predict(inputs):          # a list of JSON values (one per sample)
        return [x * 2 for x in inputs]   # one JSON-serialisable output per input, same order

    serve(predict, name="doubler", max_batch=64)

Per-sample errors: return a ``SampleError("why")`` in place of an output, or raise. If ``predict``
raises for a batch, each sample is retried alone, so one bad sample gets an error result and its
neighbours still get outputs.

Anything the model prints goes to stderr (forwarded to the worker's log), never into the
protocol stream: ``serve`` moves the real stdout to a private descriptor before calling ``setup``.
"""

import json
import logging
import os
import struct
import sys
import traceback

__all__ = ["serve", "SampleError", "read_frame", "write_frame", "encode_frame", "MAX_FRAME_BYTES", "PROTOCOL_VERSION"]

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024 * 1024

log = logging.getLogger("flotilla_predictor")


class SampleError(Exception):
    """Return (or raise, for a one-sample batch) to give one sample an error result."""


class ProtocolError(Exception):
    """The parent sent something that is not a valid frame."""


def read_frame(stream):
    """Reads one frame from a binary stream; returns the decoded object, or None at end of stream."""
    header = _read_exactly(stream, 4)
    if header is None:
        return None
    (length,) = struct.unpack(">I", header)
    if length > MAX_FRAME_BYTES:
        raise ProtocolError("frame of %d bytes is over the %d-byte limit" % (length, MAX_FRAME_BYTES))
    payload = _read_exactly(stream, length)
    if payload is None:
        raise ProtocolError("end of stream inside a frame")
    message = json.loads(payload.decode("utf-8"))
    if not isinstance(message, dict):
        raise ProtocolError("a frame is not a JSON object")
    return message


def encode_frame(message):
    """The bytes of one frame: length prefix + compact UTF-8 JSON. Raises for unserialisable values."""
    payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    return struct.pack(">I", len(payload)) + payload


def write_frame(stream, message):
    """Writes one frame (a JSON-serialisable dict) to a binary stream and flushes it."""
    stream.write(encode_frame(message))
    stream.flush()


def _read_exactly(stream, count):
    chunks = []
    remaining = count
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            if remaining == count:
                return None
            raise ProtocolError("end of stream inside a frame")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _describe(error):
    text = str(error)
    return "%s: %s" % (type(error).__name__, text) if text else type(error).__name__


def _encode_output(output):
    """One entry of a result frame's outputs: {"output": ...} or {"error": ...}."""
    if isinstance(output, BaseException):
        return {"error": str(output) if isinstance(output, SampleError) else _describe(output)}
    return {"output": output}


def _checked(entry):
    """The entry, or an error entry when its output cannot be written as JSON."""
    if "output" in entry:
        try:
            json.dumps(entry["output"], allow_nan=False)
        except (TypeError, ValueError) as error:
            return {"error": "output is not JSON-serialisable: %s" % _describe(error)}
    return entry


def _run_batch(predict, inputs):
    """Outputs for one batch: the whole batch first, then sample by sample if that raises."""
    try:
        outputs = predict(list(inputs))
        outputs = list(outputs)
        if len(outputs) != len(inputs):
            raise ValueError("predict returned %d outputs for %d inputs" % (len(outputs), len(inputs)))
        return [_encode_output(output) for output in outputs]
    except Exception as batch_error:  # noqa: BLE001 - the model's errors are data here
        if len(inputs) == 1:
            log.warning("predict failed for a sample: %s", _describe(batch_error))
            return [{"error": str(batch_error) if isinstance(batch_error, SampleError) else _describe(batch_error)}]
        log.warning("predict failed for a batch of %d (%s); retrying each sample alone", len(inputs), _describe(batch_error))
    entries = []
    for item in inputs:
        try:
            outputs = list(predict([item]))
            if len(outputs) != 1:
                raise ValueError("predict returned %d outputs for 1 input" % len(outputs))
            entries.append(_encode_output(outputs[0]))
        except Exception as error:  # noqa: BLE001
            entries.append({"error": str(error) if isinstance(error, SampleError) else _describe(error)})
    return entries


def serve(predict, name="predictor", max_batch=None, setup=None):
    """Runs the protocol loop until the parent sends shutdown or closes stdin; then returns.

    predict: callable(list of inputs) -> list of outputs (JSON values, or SampleError instances).
    name: announced in the hello frame (shows up in the worker's logs).
    max_batch: the largest batch this model accepts; the pool sends no larger batch.
    setup: optional callable run once before the hello frame (load the model here); if it
        raises, the process exits with status 1 and the traceback on stderr, which the worker
        reports as the reason the predictor could not start.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # The protocol owns the real stdout; print() and stray writes from libraries go to stderr.
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    protocol_in = sys.stdin.buffer
    if setup is not None:
        try:
            setup()
        except Exception:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)
    hello = {"type": "hello", "v": PROTOCOL_VERSION, "name": name}
    if max_batch is not None:
        hello["maxBatch"] = int(max_batch)
    write_frame(protocol_out, hello)
    while True:
        message = read_frame(protocol_in)
        if message is None:
            return
        kind = message.get("type")
        if kind == "shutdown":
            log.info("shutdown requested")
            return
        if kind != "predict":
            log.warning("ignoring a frame of unknown type %r", kind)
            continue
        seq = message.get("seq")
        samples = message.get("samples") or []
        try:
            inputs = [sample.get("input") for sample in samples]
            entries = _run_batch(predict, inputs)
            try:
                frame = encode_frame({"type": "result", "seq": seq, "outputs": entries})
            except (TypeError, ValueError):
                # Checked one by one only now, so that one bad output fails only its own sample.
                frame = encode_frame({"type": "result", "seq": seq, "outputs": [_checked(e) for e in entries]})
            if len(frame) - 4 > MAX_FRAME_BYTES:
                raise ValueError("the result frame is %d bytes, over the %d-byte limit" % (len(frame) - 4, MAX_FRAME_BYTES))
            protocol_out.write(frame)
            protocol_out.flush()
        except (BrokenPipeError, ProtocolError):
            raise
        except Exception as error:  # noqa: BLE001 - a whole-batch failure the protocol can report
            log.error("batch failed: %s", _describe(error))
            write_frame(protocol_out, {"type": "error", "seq": seq, "message": _describe(error)})
