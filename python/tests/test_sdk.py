"""Tests of the Python predictor SDK (flotilla_predictor): predictor scripts run as real child
processes over pipes, as a worker runs them, plus unit-level calls of the frame helpers.

    python -m unittest discover -s python/tests -p 'test_*.py'
"""
import io
import json
import logging
import math
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
FIXTURES = os.path.join(HERE, "fixtures")
sys.path.insert(0, PYTHON_DIR)

import flotilla_predictor as sdk  # noqa: E402
from flotilla_predictor import Batch, SampleError, encode_frame, read_frame, write_frame  # noqa: E402

try:
    import numpy
except ImportError:  # the SDK does not need numpy; only the numpy tests do
    numpy = None


class Child:
    """A predictor process on pipes: frames to its stdin, frames from its stdout."""

    def __init__(self, argv):
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
        self.process = subprocess.Popen([sys.executable] + argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.stderr, env=env)
        self.hello = self.receive()
        self.seq = 0

    def receive(self):
        message = read_frame(self.process.stdout)
        if message is None:
            self.stderr.seek(0)
            raise AssertionError("the child closed stdout; stderr: %s" % self.stderr.read().decode(errors="replace"))
        return message

    def predict(self, inputs, columns=True):
        """Sends one batch (columnar or the older samples form) and returns the answer frame."""
        self.seq += 1
        ids = ["s%d" % i for i in range(len(inputs))]
        if columns:
            message = {"type": "predict", "seq": self.seq, "ids": ids, "inputs": inputs}
        else:
            message = {"type": "predict", "seq": self.seq, "samples": [{"id": i, "input": x} for i, x in zip(ids, inputs)]}
        write_frame(self.process.stdin, message)
        answer = self.receive()
        assert answer["seq"] == self.seq, answer
        return answer

    def close(self, shutdown=True):
        """Shutdown frame (or just EOF), then the exit status."""
        if shutdown:
            write_frame(self.process.stdin, {"type": "shutdown"})
        self.process.stdin.close()
        status = self.process.wait(timeout=10)
        self.process.stdout.close()
        self.stderr.close()
        return status


class ChildTestCase(unittest.TestCase):
    def start(self, *argv):
        child = Child(list(argv))
        self.addCleanup(lambda: child.process.poll() is None and child.process.kill())
        return child

    def script(self, source):
        """The path of a predictor script written from `source` for this test."""
        folder = tempfile.mkdtemp()
        self.addCleanup(lambda: (os.remove(path), os.rmdir(folder)))
        path = os.path.join(folder, "predictor.py")
        with open(path, "w") as f:
            f.write(textwrap.dedent(source))
        return path


class ProcessTests(ChildTestCase):
    def test_hello_announces_columns(self):
        child = self.start(os.path.join(FIXTURES, "identity.py"), "8")
        self.assertEqual(child.hello, {"type": "hello", "v": 1, "name": "identity", "maxBatch": 8, "columns": True})
        self.assertEqual(child.close(), 0)

    def test_columnar_request_gets_values(self):
        child = self.start(os.path.join(FIXTURES, "identity.py"))
        inputs = [{"x": [1.5, 2]}, "é", 3, None]
        self.assertEqual(child.predict(inputs), {"type": "result", "seq": 1, "values": inputs})
        self.assertEqual(child.predict([7]), {"type": "result", "seq": 2, "values": [7]})
        self.assertEqual(child.close(shutdown=False), 0)  # EOF on stdin ends it too

    def test_samples_request_gets_outputs(self):
        # A parent that does not honour columns sends samples and gets the outputs form back.
        child = self.start(os.path.join(FIXTURES, "identity.py"))
        answer = child.predict([{"a": 1}, 2], columns=False)
        self.assertEqual(answer, {"type": "result", "seq": 1, "outputs": [{"output": {"a": 1}}, {"output": 2}]})
        self.assertEqual(child.predict([3]), {"type": "result", "seq": 2, "values": [3]})
        self.assertEqual(child.close(), 0)

    def test_sample_error_in_outputs(self):
        child = self.start(os.path.join(FIXTURES, "faults.py"), "--reject-poison")
        answer = child.predict([1, {"poison": True}, 3])
        self.assertEqual(answer["values"][1], None)
        self.assertEqual([v["echo"] for v in (answer["values"][0], answer["values"][2])], [1, 3])
        self.assertEqual(answer["errors"], {"1": "poison sample rejected"})
        old = child.predict([{"poison": True}, 2], columns=False)["outputs"]
        self.assertEqual(old[0], {"error": "poison sample rejected"})
        self.assertEqual(old[1]["output"]["echo"], 2)
        self.assertEqual(child.close(), 0)

    def test_raising_predict_retries_each_sample(self):
        child = self.start(os.path.join(FIXTURES, "faults.py"), "--raise-poison")
        answer = child.predict([1, 2, {"poison": True}, 4])
        self.assertEqual(answer["errors"], {"2": "ValueError: poison in batch"})
        self.assertEqual([v and v["echo"] for v in answer["values"]], [1, 2, None, 4])
        self.assertEqual(child.close(), 0)

    def test_nan_output_fails_only_its_sample(self):
        path = self.script("""
            from flotilla_predictor import serve
            serve(lambda inputs: [float(x) if x in ("nan", "inf") else x for x in inputs])
        """)
        child = self.start(path)
        answer = child.predict([1, "nan", "ok", "inf"])
        self.assertEqual(answer["values"], [1, None, "ok", None])
        self.assertEqual(sorted(answer["errors"]), ["1", "3"])
        self.assertTrue(answer["errors"]["1"].startswith("output is not JSON-serialisable: ValueError"), answer)
        self.assertEqual(child.close(), 0)

    def test_batch_level_error_frame(self):
        child = self.start(os.path.join(FIXTURES, "faults.py"), "--batch-error")
        self.assertEqual(child.predict([1, 2]), {"type": "error", "seq": 1, "message": "model is not ready"})
        self.assertEqual(child.close(), 0)

    def test_junk_fixture_old_form(self):
        # junk.py is a hand-written loop on read_frame/encode_frame speaking the samples/outputs form.
        child = self.start(os.path.join(FIXTURES, "junk.py"))
        answer = child.predict(["a", 2], columns=False)
        self.assertEqual(answer["outputs"], [{"output": {"echo": "a"}}, {"output": {"echo": 2}}])
        self.assertEqual(child.close(), 0)

    @unittest.skipIf(numpy is None, "numpy is not installed")
    def test_numpy_array_outputs(self):
        path = self.script("""
            import numpy
            from flotilla_predictor import serve
            serve(lambda inputs: numpy.asarray(inputs, dtype=numpy.float32) * 2)
        """)
        child = self.start(path)
        self.assertEqual(child.predict([[1, 2], [3, 4]])["values"], [[2.0, 4.0], [6.0, 8.0]])
        self.assertEqual(child.predict([[1, 2]], columns=False)["outputs"], [{"output": [2.0, 4.0]}])
        self.assertEqual(child.close(), 0)

    @unittest.skipIf(numpy is None, "numpy is not installed")
    def test_batch_signature(self):
        path = self.script("""
            from flotilla_predictor import serve
            def predict(batch):
                sums = batch.array("x", dtype="float64").sum(axis=1)
                return [{"id": i, "sum": s} for i, s in zip(batch.ids, sums.tolist())]
            serve(predict, name="sums", batch=True)
        """)
        child = self.start(path)
        inputs = [{"x": [1, 2]}, {"x": [3, 4.5]}]
        self.assertEqual(child.predict(inputs)["values"], [{"id": "s0", "sum": 3.0}, {"id": "s1", "sum": 7.5}])
        old = child.predict(inputs, columns=False)["outputs"]
        self.assertEqual(old, [{"output": {"id": "s0", "sum": 3.0}}, {"output": {"id": "s1", "sum": 7.5}}])
        # A ragged input makes array() raise: each sample is retried alone, only the bad one fails.
        answer = child.predict([{"x": [1, 2]}, {"x": [1]}, {"y": 1}, {"x": [0, 1]}])
        self.assertEqual(answer["values"], [{"id": "s0", "sum": 3.0}, {"id": "s1", "sum": 1.0}, None,
                                            {"id": "s3", "sum": 1.0}])
        self.assertEqual(answer["errors"], {"2": "KeyError: 'x'"})
        self.assertEqual(child.close(), 0)


def answer(predict, message, batch=False):
    """The decoded frame the SDK answers `message` with."""
    return read_frame(io.BytesIO(sdk._answer(predict, message, batch)))


def columnar(inputs, seq=1):
    return {"type": "predict", "seq": seq, "ids": ["s%d" % i for i in range(len(inputs))], "inputs": inputs}


class UnitTests(unittest.TestCase):
    def setUp(self):
        logging.getLogger("flotilla_predictor").setLevel(logging.CRITICAL)
        self.addCleanup(logging.getLogger("flotilla_predictor").setLevel, logging.NOTSET)

    def test_fast_path_is_one_compact_frame(self):
        frame = sdk._answer(lambda inputs: [{"label": 1, "t": "é"} for _ in inputs], columnar([0, 0]))
        payload = '{"type":"result","seq":1,"values":[{"label":1,"t":"é"},{"label":1,"t":"é"}]}'.encode("utf-8")
        self.assertEqual(frame, struct.pack(">I", len(payload)) + payload)

    def test_inputs_passed_untouched(self):
        seen = []
        inputs = [{"x": [1, 2]}, "two"]
        answer(lambda got: seen.append(got) or got, columnar(inputs))
        self.assertEqual(seen, [inputs])
        batches = []
        answer(lambda batch: batches.append(batch) or batch.inputs, columnar(inputs), batch=True)
        self.assertEqual((batches[0].ids, batches[0].inputs, len(batches[0])), (["s0", "s1"], inputs, 2))

    def test_per_sample_errors(self):
        outputs = [1, SampleError("bad one"), float("nan"), object(), KeyError("k")]
        got = answer(lambda inputs: outputs, columnar([0] * 5))
        self.assertEqual(got["values"], [1, None, None, None, None])
        self.assertEqual(got["errors"]["1"], "bad one")
        self.assertEqual(got["errors"]["4"], "KeyError: 'k'")
        self.assertTrue(got["errors"]["3"].startswith("output is not JSON-serialisable: TypeError"))
        old = answer(lambda inputs: outputs, {"type": "predict", "seq": 2, "samples": [{"id": "a", "input": 0}] * 5})
        self.assertEqual(old["outputs"][:2], [{"output": 1}, {"error": "bad one"}])
        self.assertTrue(all("error" in entry for entry in old["outputs"][2:]))

    def test_wrong_count_retries_each_sample(self):
        calls = []
        got = answer(lambda inputs: calls.append(len(inputs)) or inputs[:1], columnar([1, 2, 3]))
        self.assertEqual((got["values"], calls), ([1, 2, 3], [3, 1, 1, 1]))

    def test_raising_single_sample(self):
        def predict(inputs):
            raise SampleError("no")
        self.assertEqual(answer(predict, columnar(["x"])), {"type": "result", "seq": 1, "values": [None], "errors": {"0": "no"}})

    def test_oversized_result_is_a_batch_error(self):
        limit = sdk.MAX_FRAME_BYTES
        sdk.MAX_FRAME_BYTES = 100
        self.addCleanup(setattr, sdk, "MAX_FRAME_BYTES", limit)
        got = json.loads(sdk._answer(lambda inputs: ["y" * 200 for _ in inputs], columnar([1]))[4:])
        self.assertEqual(got["type"], "error")
        self.assertIn("over the 100-byte limit", got["message"])

    @unittest.skipIf(numpy is None, "numpy is not installed")
    def test_batch_array(self):
        batch = Batch(["a", "b"], [{"x": [1, 2]}, {"x": [3, 4]}])
        array = batch.array("x", dtype=numpy.float32)
        self.assertEqual((array.shape, array.dtype, array.tolist()), ((2, 2), numpy.float32, [[1, 2], [3, 4]]))
        self.assertEqual(Batch(["a"], [[5, 6]]).array().tolist(), [[5, 6]])
        got = answer(lambda inputs: numpy.arange(len(inputs)), columnar([9, 9, 9]))
        self.assertEqual(got["values"], [0, 1, 2])

    def test_loop_stops_at_shutdown_and_ignores_unknown_frames(self):
        stream = io.BytesIO(encode_frame({"type": "later"}) + encode_frame(columnar([1])) +
                            encode_frame({"type": "shutdown"}) + encode_frame(columnar([2], seq=2)))
        out = io.BytesIO()
        sdk._loop(lambda inputs: inputs, stream, out)
        out.seek(0)
        self.assertEqual(read_frame(out), {"type": "result", "seq": 1, "values": [1]})
        self.assertIsNone(read_frame(out))


class Trickle(io.RawIOBase):
    """A raw stream that hands out at most one byte per read, like a slow pipe."""

    def __init__(self, data):
        self.data = io.BytesIO(data)

    def readable(self):
        return True

    def read(self, count=-1):
        return self.data.read(min(count, 1) if count >= 0 else -1)


class FrameHelperTests(unittest.TestCase):
    def test_round_trip(self):
        stream = io.BytesIO()
        write_frame(stream, {"type": "result", "seq": 3, "outputs": [{"output": [1, "é"]}, {"error": "m"}]})
        write_frame(stream, {"type": "shutdown"})
        stream.seek(0)
        self.assertEqual(read_frame(stream), {"type": "result", "seq": 3, "outputs": [{"output": [1, "é"]}, {"error": "m"}]})
        self.assertEqual(read_frame(stream), {"type": "shutdown"})
        self.assertIsNone(read_frame(stream))

    def test_encode_frame(self):
        self.assertEqual(encode_frame({"a": [1, 2]}), b'\x00\x00\x00\x0b{"a":[1,2]}')
        with self.assertRaises(ValueError):
            encode_frame({"a": math.nan})
        with self.assertRaises(TypeError):
            encode_frame({"a": object()})

    def test_partial_reads(self):
        self.assertEqual(read_frame(Trickle(encode_frame({"type": "x", "n": list(range(50))}))),
                         {"type": "x", "n": list(range(50))})

    def test_bad_streams(self):
        frame = encode_frame({"type": "x"})
        with self.assertRaises(sdk.ProtocolError):
            read_frame(io.BytesIO(frame[:-1]))
        with self.assertRaises(sdk.ProtocolError):
            read_frame(Trickle(frame[:2]))
        with self.assertRaises(sdk.ProtocolError):
            read_frame(io.BytesIO(struct.pack(">I", sdk.MAX_FRAME_BYTES + 1)))
        with self.assertRaises(sdk.ProtocolError):
            read_frame(io.BytesIO(struct.pack(">I", 2) + b"[]"))


if __name__ == "__main__":
    unittest.main()
