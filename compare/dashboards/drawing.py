"""Pictures drawn beside the run: a second process turns figures into PNGs while the lockstep goes on.

A picture is a *drawing*: a call of a compare.dashboards.plots function on plain data (arrays,
numbers, titles), ``functools.partial(plots.cost_curves, ...)``, which returns PNG bytes. The
data comes from the models (their outputs on a grid, their predicted classes) and is taken in the
calling process at the step the picture shows; only the drawing (laying out the figure, rendering
it with Agg, compressing the PNG) moves elsewhere. That is most of a run's picture time, and it is
the same work wherever it is done: the worker draws the same bytes.

``Drawer()`` draws in the calling process as soon as a picture is handed to it (what a
TensorBoardLogger made from Python does unless given another). ``Drawer(process=True)``, the
command line's, starts one worker at its first picture and hands it every drawing, in order;
``png(drawing, pending)`` waits for one. The worker is a fresh interpreter running this module
(``python -m backprop_oracle.compare.dashboards.drawing``): it imports matplotlib and NumPy, never
torch or the caller's script, and shares no threads or state with the run. It reads pickled
drawings from its standard input and writes each PNG back, in order, on its standard output; it
ignores Ctrl-C, which the run handles (it stops and closes its logs, which wait for their
pictures), and ends when its input closes. Where no worker can be started, or it dies, or it
fails on a drawing, that picture and the rest are drawn in the calling process: a picture is
never lost, and an error inside a drawing is raised in the caller, as it would be drawn in place.
"""
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future

_LENGTH = struct.Struct("<Q")     # each message: its length, then that many bytes of pickle
_STOP = object()


class WorkerFailed(Exception):
    """The worker did not draw a picture (it is gone, or the drawing raised there)."""


def _write(stream, payload):
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read(stream):
    """The next message's bytes, or None at the end of the stream."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    body = stream.read(size)
    return body if len(body) == size else None


class Drawer:
    """Draws pictures (drawings: calls that return PNG bytes), in this process or in a worker."""

    def __init__(self, process=False):
        self._worker = None
        self._inline = not process
        self._lock = threading.Lock()
        self._waiting = []        # the Futures of the drawings sent, in order
        self._gone = False        # the worker ended: nothing more is sent to it

    # ---- the caller's side -----------------------------------------------------------------

    def submit(self, drawing):
        """Start drawing; returns what ``png`` takes (a Future). Drawn in place without a worker."""
        if not self._inline:
            try:
                if self._worker is None:
                    self._start()
                pending = Future()
                with self._lock:
                    if not self._gone:
                        self._waiting.append(pending)
                        self._outbox.put(drawing)
                        return pending
            except OSError:                 # no process can be started here
                pass
            self._inline = True
        done = Future()
        done.set_result(drawing())
        return done

    def png(self, drawing, pending, wait=True):
        """The PNG bytes of ``drawing`` (``pending``: what ``submit`` returned), or None while it is
        still being drawn and ``wait`` is False. One the worker did not draw is drawn here."""
        if not (wait or pending.done()):
            return None
        try:
            return pending.result()
        except WorkerFailed:
            self._inline = True
            return drawing()

    def close(self):
        """End the worker once its pictures are drawn (they are: every logger waits for its own)."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        self._outbox.put(_STOP)
        self._sender.join()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        self._receiver.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- the threads that talk to the worker ------------------------------------------------

    def _start(self):
        self._worker = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)
        self._outbox = queue.Queue()
        self._sender = threading.Thread(target=self._send, name="drawing: send", daemon=True)
        self._receiver = threading.Thread(target=self._receive, name="drawing: receive", daemon=True)
        self._sender.start()
        self._receiver.start()

    def _send(self):
        """Pickle and send each drawing (so that the caller never waits on the pipe)."""
        stream = self._worker.stdin
        try:
            while (drawing := self._outbox.get()) is not _STOP:
                try:
                    payload = pickle.dumps(drawing, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception:           # data the worker cannot be sent: drawn in place
                    payload = pickle.dumps(None)
                _write(stream, payload)
        except OSError:                     # the worker is gone: the receiver fails what is waiting
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    def _receive(self):
        """Give each PNG that comes back to the oldest drawing waiting; when the worker ends,
        every drawing still waiting is failed (and then drawn in place)."""
        stream = self._worker.stdout
        while (message := _read(stream)) is not None:
            ok, value = pickle.loads(message)
            with self._lock:
                pending = self._waiting.pop(0)
            if ok:
                pending.set_result(value)
            else:
                pending.set_exception(WorkerFailed(value))
        with self._lock:
            self._gone = True
            waiting, self._waiting = self._waiting, []
        for pending in waiting:
            pending.set_exception(WorkerFailed("the drawing worker ended"))


def serve(inbox=None, outbox=None):
    """The worker: draw each drawing read from ``inbox`` and write its PNG to ``outbox``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox = inbox or sys.stdin.buffer
    outbox = outbox or sys.stdout.buffer
    sys.stdout = sys.stderr              # nothing a drawing prints may get into the PNGs' stream
    while (message := _read(inbox)) is not None:
        try:
            drawing = pickle.loads(message)
            if drawing is None:
                raise WorkerFailed("the drawing could not be sent")
            reply = (True, drawing())
        except Exception as e:
            reply = (False, f"{type(e).__name__}: {e}")
        _write(outbox, pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    serve()
