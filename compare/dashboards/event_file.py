"""A TensorBoard event file, written in batches so that logging every step stays cheap.

An event file is a sequence of records (TFRecord framing), each one serialized ``Event`` proto:

    uint64 length | uint32 masked_crc32c(length) | bytes data | uint32 masked_crc32c(data)

masked_crc32c(x) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2^32), with c the CRC-32C of x.

Why not torch's SummaryWriter: it writes one event per ``add_scalar`` call and checksums each
record in pure Python, about a millisecond a step for a handful of scalars here: the OR gate's
5000 steps would log for longer than they train. This writer puts every scalar of a step into one
event, checksums with google-crc32c's C implementation (about 2 µs a record, framing included) and
writes a whole batch of records at once: events wait in memory and are written at most
``flush_secs`` apart, and always on ``flush()`` and ``close()``.

Scalars are written twice where exactness matters: as TensorBoard scalars (float32; TensorBoard's
default loader reads scalars as float32 and drops float64 ones) and as float64 tensors, which a
program reads back bit for bit (EventAccumulator.Tensors).
"""
import errno
import math
import os
import socket
import struct
import time

import google_crc32c
from tensorboard.compat.proto.event_pb2 import Event, TaggedRunMetadata
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.types_pb2 import DT_DOUBLE

from backprop_oracle.compare.errors import UsageError

_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data):
    """TFRecord's masked CRC-32C of ``data`` (bytes), with google-crc32c's C implementation."""
    c = google_crc32c.value(data)
    return (((c >> 15) | (c << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_records(payloads):
    """The TFRecord bytes of serialized events ``payloads``, framed together and written at once."""
    parts = []
    for p in payloads:
        header = struct.pack("<Q", len(p))
        parts += [header, struct.pack("<I", masked_crc32c(header)), p, struct.pack("<I", masked_crc32c(p))]
    return b"".join(parts)


def _varint(n):
    """Protobuf's base-128 varint of a non-negative int."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def scalar_value(tag, value):
    """A TensorBoard scalar (``simple_value``, a float32): what the Scalars dashboard plots.

    Not a float64 tensor: TensorBoard's default (fast) loader drops float64 scalars."""
    return Summary.Value(tag=tag, simple_value=float(value))


def float64_value(tag, value):
    """``value`` exactly, as a rank-0 float64 tensor with no plugin: for programs, not dashboards."""
    return Summary.Value(tag=tag, tensor=TensorProto(dtype=DT_DOUBLE, double_val=[float(value)]))


def _head(make, tail):
    """The encoded Summary field of a value made by ``make(1.0)``, less its last ``tail`` bytes:
    protobuf writes fields in number order, so the number is last and only it changes."""
    encoded = make(1.0).SerializeToString()
    if not encoded.endswith(struct.pack("<d" if tail == 8 else "<f", 1.0)):
        raise RuntimeError("this protobuf does not write a summary value's number last; "
                           "compare.dashboards.event_file.EventFile.add_scalars needs updating")
    return b"\x0a" + _varint(len(encoded)) + encoded[:-tail]   # Summary field 1 (value), length-delimited


class EventFile:
    """``events.out.tfevents.<time>.<host>.<pid>.<n>`` in ``directory`` (created if missing)."""

    _count = 0

    def __init__(self, directory, flush_secs=1.0):
        os.makedirs(directory, exist_ok=True)
        EventFile._count += 1
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{EventFile._count}"
        self.path = os.path.join(directory, name)
        self.flush_secs = flush_secs
        self._file = open(self.path, "wb")
        self._pending = []        # serialized events not yet on disk
        self._heads = {}          # tag -> its encoded Summary value field, up to the number's bytes
        self._last_flush = time.monotonic()
        self.add_event(Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def add_event(self, event):
        self._pending.append(event.SerializeToString())
        if time.monotonic() - self._last_flush >= self.flush_secs:
            self.flush()

    def add_summary(self, summary, step, wall_time=None):
        self.add_event(Event(wall_time=wall_time or time.time(), step=int(step), summary=summary))

    def add_scalars(self, step, scalars, exact=None, wall_time=None):
        """One event at ``step`` with every ``scalars`` {tag: value} as a dashboard scalar (float32)
        and every ``exact`` {tag: value} as a float64 tensor.

        A tag's value is encoded once with the proto classes; afterwards only its number's bytes
        are replaced. The event around them is written by hand: Event fields 1 wall_time
        (fixed64), 2 step (varint), 5 summary (length-delimited). A test checks the bytes against
        the proto classes'.
        """
        heads, parts = self._heads, []
        for tag, value in scalars.items():
            head = heads.get(tag)
            if head is None:
                head = heads[tag] = _head(lambda v: scalar_value(tag, v), 4)
            try:
                parts.append(head + struct.pack("<f", value))
            except OverflowError:   # beyond float32 (a diverging run): TensorBoard shows inf
                parts.append(head + struct.pack("<f", math.copysign(math.inf, value)))
        for tag, value in (exact or {}).items():
            head = heads.get(tag)
            if head is None:
                head = heads[tag] = _head(lambda v: float64_value(tag, v), 8)
            parts.append(head + struct.pack("<d", value))
        summary = b"".join(parts)
        self._pending.append(b"\x09" + struct.pack("<d", wall_time or time.time()) + b"\x10" + _varint(int(step))
                             + b"\x2a" + _varint(len(summary)) + summary)
        if time.monotonic() - self._last_flush >= self.flush_secs:
            self.flush()

    def add_graph(self, graph_def, run_metadata=None):
        """A model graph (GraphDef) and optionally its RunMetadata, as TensorBoard's Graphs tab reads them."""
        self.add_event(Event(wall_time=time.time(), graph_def=graph_def.SerializeToString()))
        if run_metadata is not None:
            tagged = TaggedRunMetadata(tag="step1", run_metadata=run_metadata.SerializeToString())
            self.add_event(Event(wall_time=time.time(), tagged_run_metadata=tagged))

    def flush(self):
        if self._pending and not self._file.closed:
            count, end = len(self._pending), self._file.tell()
            try:
                self._file.write(frame_records(self._pending))
                self._file.flush()
            except OSError as e:
                # Keep what is complete: cut the file back to its last whole record and stop writing.
                self._pending.clear()
                self._file.truncate(end)
                self._file.close()
                if e.errno == errno.ENOSPC:
                    raise UsageError(f"no space left on the device of {os.path.dirname(self.path)}: the "
                                     "TensorBoard logs keep the steps written before it; free some space, "
                                     "choose another --logdir, or run with --no-tensorboard") from None
                raise
            del self._pending[:count]
        self._last_flush = time.monotonic()

    def close(self):
        if not self._file.closed:
            try:
                self.flush()
            finally:
                self._file.close()
