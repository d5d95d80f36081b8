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

With ``serve(predict, batch=True)``, ``predict`` gets the request as a ``Batch`` (``.ids``,
``.inputs``, ``.array(field, dtype)`` for one numpy array per batch) instead of a list.

Anything the model prints goes to stderr (forwarded to the worker's log), never into the
protocol stream: ``serve`` moves the real stdout to a private descriptor before calling ``setup``.
"""

import json
import logging
import os
import struct
import sys
import traceback

__all__ = ["serve", "Batch", "SampleError", "read_frame", "write_frame", "encode_frame", "MAX_FRAME_BYTES",
           "PROTOCOL_VERSION"]

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024 * 1024

log = logging.getLogger("flotilla_predictor")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class SampleError(Exception):
    """Return (or raise, for a one-sample batch) to give one sample an error result."""


class ProtocolError(Exception):
    """The parent sent something that is not a valid frame."""


class Batch:
    """One request as received, for ``serve(..., batch=True)``: parallel lists ``ids`` and ``inputs``."""

    __slots__ = ("ids", "inputs")

    def __init__(self, ids, inputs):
        self.ids = ids
        self.inputs = inputs

    def __len__(self):
        return len(self.inputs)

    def array(self, field=None, dtype=None):
        """The inputs (or each input's ``field``) as one numpy array; numpy is imported only here."""
        import numpy

        values = self.inputs if field is None else [item[field] for item in self.inputs]
        return numpy.asarray(values, dtype=dtype)


def read_frame(stream):
    """Reads one frame from a binary stream; returns the decoded object, or None at end of stream."""
    header = _read(stream, 4)
    if header is None:
        return None
    (length,) = struct.unpack(">I", header)
    if length > MAX_FRAME_BYTES:
        raise ProtocolError("frame of %d bytes is over the %d-byte limit" % (length, MAX_FRAME_BYTES))
    payload = _read(stream, length)
    if payload is None:
        raise ProtocolError("end of stream inside a frame")
    message = json.loads(payload.decode("utf-8"))
    if not isinstance(message, dict):
        raise ProtocolError("a frame is not a JSON object")
    return message


def encode_frame(message):
    """The bytes of one frame: length prefix + compact UTF-8 JSON. Raises for unserialisable values."""
    payload = _dumps(message).encode("utf-8")
    return struct.pack(">I", len(payload)) + payload


def write_frame(stream, message):
    """Writes one frame (a JSON-serialisable dict) to a binary stream and flushes it."""
    stream.write(encode_frame(message))
    stream.flush()


def _read(stream, count):
    """Exactly `count` bytes, or None at a clean end of stream. One read() for a buffered stream."""
    data = stream.read(count)
    if len(data) == count:
        return data
    if not data:
        return None if count else data
    chunks = [data]
    remaining = count - len(data)
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            raise ProtocolError("end of stream inside a frame")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _describe(error):
    text = str(error)
    return "%s: %s" % (type(error).__name__, text) if text else type(error).__name__


def _message(error):
    """A per-sample error message: a SampleError's own text, else the exception's type and text."""
    return str(error) if isinstance(error, SampleError) else _describe(error)


def _outputs(result, count):
    """predict's return value as a list of `count` outputs (numpy arrays via one tolist())."""
    if hasattr(result, "tolist"):
        result = result.tolist()
    elif not isinstance(result, list):
        result = list(result)
    if len(result) != count:
        raise ValueError("predict returned %d outputs for %d inputs" % (len(result), count))
    return result


def _run_batch(predict, ids, inputs, batch):
    """Outputs (values or exception instances) for one request: the whole batch first, then each
    sample alone if that raises."""
    def call(ids, inputs):
        return _outputs(predict(Batch(ids, inputs) if batch else inputs), len(inputs))

    try:
        return call(ids, inputs)
    except Exception as batch_error:  # noqa: BLE001 - the model's errors are data here
        if len(inputs) == 1:
            log.warning("predict failed for a sample: %s", _describe(batch_error))
            return [batch_error]
        log.warning("predict failed for a batch of %d (%s); retrying each sample alone", len(inputs), _describe(batch_error))
    outputs = []
    for i, item in enumerate(inputs):
        try:
            outputs.extend(call(ids[i:i + 1] if ids is not None else None, [item]))
        except Exception as error:  # noqa: BLE001
            outputs.append(error)
    return outputs


def _checked(output):
    """(value, None) for an output that can be written as JSON, else (None, error message)."""
    if isinstance(output, BaseException):
        return None, _message(output)
    try:
        _dumps(output).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as error:
        return None, "output is not JSON-serialisable: %s" % _describe(error)
    return output, None


def _result_payload(seq, outputs, columns):
    """The result frame's JSON bytes: ``values`` (+ ``errors``) for a columnar request, else ``outputs``.

    One json encoding of the whole batch; only if that fails is each output checked on its own, so a
    bad output (an exception instance, NaN, an unserialisable object) fails only its own sample.
    """
    try:
        if columns:
            return _dumps({"type": "result", "seq": seq, "values": outputs}).encode("utf-8")
        return _dumps({"type": "result", "seq": seq, "outputs": [{"output": o} for o in outputs]}).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        pass
    checked = [_checked(output) for output in outputs]
    if columns:
        frame = {"type": "result", "seq": seq, "values": [value for value, _ in checked]}
        errors = {str(i): error for i, (_, error) in enumerate(checked) if error is not None}
        if errors:
            frame["errors"] = errors
    else:
        entries = [{"output": value} if error is None else {"error": error} for value, error in checked]
        frame = {"type": "result", "seq": seq, "outputs": entries}
    return _dumps(frame).encode("utf-8")


def _answer(predict, message, batch=False):
    """The frame (bytes) answering one predict message: a result, or a batch-level error."""
    seq = message.get("seq")
    try:
        inputs = message.get("inputs")
        columns = inputs is not None
        if columns:
            ids = message.get("ids") if batch else None
        else:
            # A parent that predates columns (or ignored them) sends samples; it gets outputs back.
            samples = message.get("samples") or []
            inputs = [sample.get("input") for sample in samples]
            ids = [sample.get("id") for sample in samples] if batch else None
        outputs = _run_batch(predict, ids, inputs, batch)
        payload = _result_payload(seq, outputs, columns)
        if len(payload) > MAX_FRAME_BYTES:
            raise ValueError("the result frame is %d bytes, over the %d-byte limit" % (len(payload), MAX_FRAME_BYTES))
    except Exception as error:  # noqa: BLE001 - a whole-batch failure the protocol can report
        log.error("batch failed: %s", _describe(error))
        return encode_frame({"type": "error", "seq": seq, "message": _describe(error)})
    return struct.pack(">I", len(payload)) + payload


def _loop(predict, protocol_in, protocol_out, batch=False):
    """Answers predict frames from `protocol_in` on `protocol_out` until shutdown or end of stream."""
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
        protocol_out.write(_answer(predict, message, batch))
        protocol_out.flush()


def serve(predict, name="predictor", max_batch=None, setup=None, batch=False):
    """Runs the protocol loop until the parent sends shutdown or closes stdin; then returns.

    predict: callable(list of inputs) -> list of outputs (JSON values, or SampleError instances),
        or a numpy array (one row per input; converted with tolist()).
    name: announced in the hello frame (shows up in the worker's logs).
    max_batch: the largest batch this model accepts; the pool sends no larger batch.
    setup: optional callable run once before the hello frame (load the model here); if it
        raises, the process exits with status 1 and the traceback on stderr, which the worker
        reports as the reason the predictor could not start.
    batch: if true, predict is called with a Batch (ids, inputs, array()) instead of the list.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # The protocol owns the real stdout; print() and stray writes from libraries go to stderr.
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if setup is not None:
        try:
            setup()
        except Exception:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            sys.exit(1)
    hello = {"type": "hello", "v": PROTOCOL_VERSION, "name": name, "columns": True}
    if max_batch is not None:
        hello["maxBatch"] = int(max_batch)
    write_frame(protocol_out, hello)
    _loop(predict, sys.stdin.buffer, protocol_out, batch)
