"""Processes that train together: torch.distributed's process group with every wait bounded, and
what a rank that stops answering leaves the others to say.

Every collective (the gradient all-reduce, DDP's broadcasts, the final barrier) waits at most
``timeout`` seconds (``init_process_group(timeout=...)``, which gloo honours). A peer that is
killed ends the others' collective at once (gloo: "Connection reset by peer"); a peer that is
frozen (SIGSTOP, a hung machine) ends it after the timeout ("Timed out waiting ...ms"). Either way
torch raises a RuntimeError (a torch.distributed.DistError for the store's and the backend's own
errors), which ``process_group`` turns into PeerLost.

Which rank went silent is known from heartbeats: each rank's thread writes its current step to the
job's store (a TCPStore: torchrun's agent holds it, or rank 0 under a plain env:// launch) every
0.2 s. After a failure a rank marks itself failed and watches the beats for a second: the ranks
that neither beat nor marked themselves failed are the silent ones. Where the store itself cannot be
reached, its holder (rank 0's machine) is the one that went away.

The store also carries what rank 0 saved (``note_saved``), so that every rank can name the last
checkpoint, and a group that torchrun restarts can tell a checkpoint of this job from an old file.
"""
import datetime
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from backprop_oracle.compare.errors import SpecError

# torch is imported where it is used, so that the command line can read DEFAULT_TIMEOUT without it.

# Long enough for any rank's lead over the others in these jobs (rank 0 draws the pictures, evaluates
# and writes checkpoints between epochs while the others wait at the next step: well under 10 s even
# for MNIST), and for the slowest start of a process (importing torch on a loaded machine); short
# enough that a frozen peer is reported within a minute instead of torch's default 30 minutes.
DEFAULT_TIMEOUT = 60.0
# The start and the end are uneven: the ranks import torch and join, each prepares its data, rank 0
# starts its dashboards (and draws the last pictures at the end) while the others wait. Those waits
# get START_TIMEOUT or the timeout, whichever is longer; every step's collectives get the timeout.
START_TIMEOUT = 120.0
BEAT = 0.2                       # seconds between heartbeats
LISTEN = 1.0                     # seconds a failed rank watches the others' heartbeats
PREFIX = "backprop-oracle"
_joined = False                  # whether this process joined a process group (see exit_process)


class PeerLost(Exception):
    """A collective failed because another rank stopped answering (killed, frozen or cut off)."""

    def __init__(self, *, rank, world_size, step, epoch, heard, cause, timeout, joining=False):
        self.rank, self.world_size, self.step, self.epoch = rank, world_size, step, epoch
        # Distributed.listen's {"silent", "failed", "busy"}, or None where the store was out of reach.
        self.heard = heard
        self.cause, self.timeout, self.joining = cause, timeout, joining
        super().__init__(self.describe())

    @property
    def silent(self):
        """[(rank, its last step or None)] of the ranks that went silent; None where not known."""
        return None if self.heard is None else self.heard["silent"]

    def describe(self):
        """Who went silent, where, and how it showed: 'rank 1 of 2 went silent after step 37 (...)'."""
        n, me = self.world_size, f"rank {self.rank} of {self.world_size}"
        here = f"{me} stopped at step {self.step} (epoch {self.epoch})"
        if self.joining:
            return (f"not every rank joined the process group within {self.timeout:g} s (the start's bound: "
                    f"{START_TIMEOUT:g} s or --dist-timeout if longer), so "
                    f"{me} never started training ({self.cause})")
        heard = self.heard
        if heard is None:
            who = "rank 0's machine (it holds the job's store)" if self.rank != 0 else "the job's store"
            return f"{who} went away ({self.cause}); {here}"
        if heard["silent"]:
            last = [s for _, s in heard["silent"] if s is not None]
            at = f"after step {max(last)}" if last else "before its first step"
            return f"{_ranks(heard['silent'], n)} went silent {at} ({self.cause}); {here}"
        if heard["busy"]:
            return (f"{_ranks(heard['busy'], n)} kept working but did not answer within {self.timeout:g} s "
                    f"(--dist-timeout; give it longer); {here}")
        if heard["failed"]:
            r, (step, said) = min(heard["failed"].items())
            return f"rank {r} of {n} gave up at step {step} ({said}); {here}"
        return f"a peer went silent ({self.cause}); {here}"


def _ranks(ranks, n):
    names = [str(r[0] if isinstance(r, tuple) else r) for r in ranks]
    return f"rank {names[0]} of {n}" if len(names) == 1 else f"ranks {', '.join(names)} of {n}"


def cause_of(error, timeout):
    """A few words on how a peer's failure showed, from torch's error text."""
    text = str(error)
    if "Connection reset" in text or "Connection closed" in text or "Broken pipe" in text or "EOF" in text:
        return "its connection closed: it was killed or its machine went away"
    if "Timed out" in text or "timed out" in text or "Timeout" in text:
        return f"no answer for {timeout:g} s, --dist-timeout: it is frozen, stopped or cut off"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first[:160]


def peer_failure(error):
    """Whether ``error`` (raised by a collective) is a peer's failure rather than a bug of ours."""
    import torch.distributed as dist
    if isinstance(error, dist.DistError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(k in text for k in (
        "gloo", "Gloo", "NCCL", "Connection reset", "Connection closed", "Broken pipe", "Timed out", "timed out"))


class JobStore:
    """This rank's own client of the job's TCPStore (MASTER_ADDR:MASTER_PORT), its keys named for this
    job; every call gives up after a few seconds."""

    def __init__(self, timeout):
        import torch.distributed
        host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
        wait = datetime.timedelta(seconds=max(1.0, min(timeout, 10.0)))
        self.store = torch.distributed.TCPStore(host, port, is_master=False, timeout=wait, wait_for_workers=False)
        self.job = f"{PREFIX}/{os.environ.get('TORCHELASTIC_RUN_ID', 'env')}"
        self.attempt = f"{self.job}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"

    def set(self, key, value):
        self.store.set(key, value)

    def get(self, key):
        """The value of ``key`` as text, or None where it was never set."""
        return self.store.get(key).decode() if self.store.check([key]) else None


@dataclass
class Distributed:
    """This process's place among ``world_size`` processes started by torchrun (or our own launch).
    The training loop reports where it is with ``at(step, epoch)``."""
    rank: int
    world_size: int
    local_rank: int
    timeout: float = DEFAULT_TIMEOUT
    step: int = 0
    epoch: int = 0
    group: object = field(default=None, repr=False)    # the steps' process group (waits <= timeout)
    store: object = field(default=None, repr=False)
    beat_store: object = field(default=None, repr=False)     # the heartbeat thread's own connection
    _beating: object = field(default=None, repr=False)

    def at(self, step, epoch):
        self.step, self.epoch = step, epoch

    def together(self):
        """Wait (up to START_TIMEOUT) until every rank is here: before the first collective of the
        steps, so that an uneven start is not taken for a silent peer."""
        import torch.distributed as dist
        dist.barrier()

    # ---- heartbeats ----------------------------------------------------------------------

    def _beat_key(self, rank):
        return f"{self.store.attempt}/beat/{rank}"

    def start_beating(self):
        stop = threading.Event()

        def beat():
            count = 0
            while not stop.wait(BEAT):
                count += 1
                try:
                    self.beat_store.set(self._beat_key(self.rank), f"{count} {self.step}")
                except Exception:          # the store is gone; the failure path says so
                    return
        thread = threading.Thread(target=beat, name="backprop-oracle heartbeat", daemon=True)
        thread.start()
        self._beating = (stop, thread)

    def stop_beating(self):
        if self._beating is not None:
            stop, thread = self._beating
            stop.set()
            thread.join(timeout=2 * BEAT + 5)
            self._beating = None

    def listen(self, cause):
        """What the other ranks' heartbeats say, watched for LISTEN seconds after this rank's failure:
        {"silent": [(rank, its last step)], "failed": {rank: (step, cause) of a failure of its own},
        "busy": [ranks still beating]}; None where the store cannot be reached."""
        try:
            def failures():        # the ranks that reported a failure of their own: {rank: (step, cause)}
                found = {}
                for r in range(self.world_size):
                    value = self.store.get(f"{self.store.attempt}/failed/{r}") if r != self.rank else None
                    if value is not None:
                        step, said = value.split(" ", 1)
                        found[r] = (int(step), said)
                return found

            def beats():
                found = {}
                for r in range(self.world_size):
                    value = self.store.get(self._beat_key(r))
                    found[r] = None if value is None else tuple(int(x) for x in value.split())
                return found
            failed = failures()            # before this rank's: they gave up first
            self.store.set(f"{self.store.attempt}/failed/{self.rank}", f"{self.step} {cause}")
            before = beats()
            time.sleep(LISTEN)
            after = beats()
        except Exception:
            return None
        heard = {"silent": [], "failed": failed, "busy": []}
        for r in range(self.world_size):
            if r == self.rank or r in failed:
                continue
            if after[r] is None or after[r] == before[r]:
                heard["silent"].append((r, None if after[r] is None else after[r][1]))
            else:                          # alive: still working, or failing after this rank did
                heard["busy"].append(r)
        return heard

    # ---- what rank 0 saved ---------------------------------------------------------------

    def note_saved(self, path, epoch, step):
        """Rank 0, after writing a checkpoint: tell the job (every rank, and a restarted group)."""
        if self.store is not None:
            try:
                self.store.set(f"{self.store.job}/saved", f"{epoch} {step} {path}")
            except Exception:
                pass

    def saved(self):
        """(epoch, step, path) of the last checkpoint rank 0 wrote in this job (any attempt), or None."""
        if self.store is None:
            return None
        try:
            value = self.store.get(f"{self.store.job}/saved")
        except Exception:
            return None
        if value is None:
            return None
        epoch, step, path = value.split(" ", 2)
        return int(epoch), int(step), path

    def restarted(self):
        """How many times torchrun has restarted this group (0 for its first start)."""
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def _attempt_store(world, rank, timeout):
    """init_process_group's store where torch's elastic agent holds the job's store: its keys under
    this attempt's name; {} (env:// rendezvous, rank 0 holds the store) elsewhere.

    The agent keeps one TCPStore for the whole job, restarts included, and init_process_group names
    its keys the same in every attempt (gloo's addresses under "default_pg/0/..."): a restarted rank
    could read the killed attempt's address of a peer before the peer has written its new one, and
    fail with "connectFullMesh ... Connection refused". Under "<job>/<attempt>/" each attempt reads
    only its own keys (new_group's keys too: they are the default group's store's, prefixed)."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return {}
    import torch.distributed as dist
    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    client = dist.TCPStore(host, port, world_size=world, is_master=False,
                           timeout=datetime.timedelta(seconds=timeout))
    job = f"{PREFIX}/{os.environ.get('TORCHELASTIC_RUN_ID', 'env')}"
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return {"store": dist.PrefixStore(f"{job}/{attempt}/pg", client), "rank": rank, "world_size": world}


@contextmanager
def process_group(device="cpu", timeout=None):
    """torch.distributed's process group when started by torchrun (WORLD_SIZE > 1), yielding a
    Distributed; otherwise nothing is set up and None is yielded. NCCL on CUDA, gloo on the CPU.
    Every wait is bounded by ``timeout`` seconds (DEFAULT_TIMEOUT where None); a peer that stops
    answering raises PeerLost, on every rank that is left, within that time."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield None
        return
    import torch
    import torch.distributed as dist
    from backprop_oracle import torch_ref
    timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    backend = "nccl" if torch_ref.resolve_device(device).type == "cuda" else "gloo"
    here = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if backend == "nccl" and here > torch.cuda.device_count():
        # Refused on every rank before any of them waits for the others.
        count = torch.cuda.device_count()
        raise SpecError(f"torchrun starts {here} processes on this machine but it has {count} GPU"
                        f"{'s' if count != 1 else ''} (one each): use --nproc_per_node={count}, or --device cpu "
                        "to train across processes with gloo on the CPU")
    rank = int(os.environ.get("RANK", "0"))
    start = max(timeout, START_TIMEOUT)
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=start), **_attempt_store(world, rank, start))
    except RuntimeError as e:
        if not peer_failure(e):
            raise
        raise PeerLost(rank=rank, world_size=world, step=0, epoch=0, heard=None, cause=cause_of(e, start),
                       timeout=start, joining=True) from None
    global _joined
    _joined = True
    d = Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), timeout)
    try:
        dist.barrier()      # every rank has joined: the steps' group connects without an uneven wait
        d.group = dist.new_group(timeout=datetime.timedelta(seconds=timeout))
        try:
            d.store, d.beat_store = JobStore(timeout), JobStore(timeout)
            d.start_beating()
        except RuntimeError:
            d.store = None              # no heartbeats: a failure is still reported, without a name
        yield d
        # (On the default group, whose waits are START_TIMEOUT's: rank 0 draws the last pictures.)
        # Every rank is done with its collectives before any tears its connections down: a rank
        # that exits while a peer still holds a gloo connection to it can abort the peer at exit.
        dist.barrier()
    except RuntimeError as e:
        if not peer_failure(e):
            raise
        cause = cause_of(e, timeout)
        heard = d.listen(cause) if d.store is not None else {"silent": [], "failed": {}, "busy": []}
        d.stop_beating()
        raise PeerLost(rank=d.rank, world_size=d.world_size, step=d.step, epoch=d.epoch, heard=heard,
                       cause=cause, timeout=timeout) from None
    finally:
        d.stop_beating()
        dist.destroy_process_group()


def exit_process(code):
    """End the program with exit status ``code`` (None: 0). A process that never joined a process
    group raises SystemExit, as sys.exit does. A worker that did (started by torchrun or our launch)
    has, by the time its command returns, done every collective, destroyed the group and written
    and closed its files (write_atomic, the loggers' on_close): it flushes stdout and stderr and
    leaves with os._exit, without the interpreter's teardown of torch. There the C++ destructors of
    gloo's threads and connections, run while the peers exit too, could abort a worker that had
    finished all its work ("terminate called without an active exception", exit -6). A command
    that raises is not ended here: its traceback and status are the interpreter's."""
    if not _joined:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):    # a closed or broken stream: nothing more can be said there
            pass
    os._exit(0 if code is None else int(code))
