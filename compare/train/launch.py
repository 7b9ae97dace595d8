"""Our own launch of the training processes, on torch's elastic launcher API
(torch.distributed.launcher.api: LaunchConfig, elastic_launch) with a static rendezvous at the
master's address. Unlike plain torchrun it says what it waits for ("waiting for node 1 of 2 at
127.0.0.1:29500, 30 s so far") and gives up after --dist-timeout seconds with one line, exit 1.

Each node's launch also writes its node rank to the job's store (the TCPStore node 0 holds at the
master's address) so that node 0 can name the nodes still missing. ``resume_command`` gives the
exact command line that goes on from a checkpoint: the launch's (ours or torchrun's) or the
process's own.
"""
import datetime
import logging
import math
import os
import shlex
import socket
import sys
import threading
import time

from backprop_oracle.compare.errors import UsageError

FIRST_WORD = 5.0        # seconds before the first "waiting for" line (half the timeout where that is sooner)
EVERY = 10.0            # seconds between them after that


def in_launched_worker():
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def wants_launch(args):
    """Whether this command starts the processes (--nproc-per-node, outside a worker); refuses
    launch options that make no sense."""
    if in_launched_worker():
        return False
    if args.nproc_per_node is None:
        given = [f"--{n.replace('_', '-')}" for n, default in (("nnodes", 1), ("node_rank", 0), ("master", None),
                                                                ("max_restarts", 0))
                 if getattr(args, n) != default]
        if given:
            raise UsageError(f"{given[0]} needs --nproc-per-node N (the processes to start on this machine)")
        return False
    if args.node_rank >= args.nnodes:
        raise UsageError(f"--node-rank {args.node_rank} with --nnodes {args.nnodes}: node ranks run from 0 to "
                         f"{args.nnodes - 1}")
    if args.nnodes > 1 and args.master is None:
        raise UsageError(f"--nnodes {args.nnodes} needs --master HOST:PORT, node 0's address and a free port, "
                         "the same on every node")
    return True


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nodes(ranks, n):
    if len(ranks) == 1:
        return f"node {ranks[0]} of {n}" + (" (the master)" if ranks[0] == 0 else "")
    return f"nodes {', '.join(map(str, ranks))} of {n}"


class Waiting(threading.Thread):
    """Says, every few seconds on stderr, which nodes the launch still waits for, until all joined."""

    def __init__(self, host, port, nnodes, node_rank, run_id, timeout):
        super().__init__(name="backprop-oracle waiting", daemon=True)
        self.host, self.port, self.nnodes, self.node_rank = host, port, nnodes, node_rank
        self.key = f"backprop-oracle/launch/{run_id}/node"
        self.done, self.joined, self.missing = threading.Event(), False, [0] if node_rank else []
        self.start_time, self.timeout = time.monotonic(), timeout

    def _reachable(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def run(self):
        store, say = None, min(FIRST_WORD, self.timeout / 2)
        while not self.done.wait(0.25):
            try:
                if store is None and self._reachable():
                    import torch.distributed as dist
                    store = dist.TCPStore(self.host, self.port, is_master=False, wait_for_workers=False,
                                          timeout=datetime.timedelta(seconds=5))
                    store.set(f"{self.key}/{self.node_rank}", "joined")
                if store is not None:
                    self.missing = [r for r in range(self.nnodes) if not store.check([f"{self.key}/{r}"])]
                    if not self.missing:
                        self.joined = True
                        return
            except Exception:          # the store went away: the launch itself reports it
                store = None
            waited = time.monotonic() - self.start_time
            if waited >= say and not self.done.is_set():
                print(f"waiting for {_nodes(self.missing or [0], self.nnodes)} at {self.host}:{self.port}, "
                      f"{waited:.0f} s so far", file=sys.stderr, flush=True)
                say += EVERY

    def gave_up(self, timeout):
        """The line for a rendezvous that timed out."""
        missing, n = self.missing or ([0] if self.node_rank else list(range(1, self.nnodes))), self.nnodes
        where = f"{self.host}:{self.port}"
        if missing == [0]:
            fix = f"start node 0 first (--node-rank 0 --master {where})"
        else:
            fix = f"start {'it' if len(missing) == 1 else 'them'} with --nnodes {n} --node-rank " \
                  f"{'|'.join(map(str, missing))} --master {where}"
        return (f"{_nodes(missing, n)} did not join at {where} within {timeout:g} s (--dist-timeout); "
                f"{fix}, or wait longer with --dist-timeout")


def launch(args, command):
    """Start ``args.nproc_per_node`` workers running ``command`` (argv after the program name) on this
    node, and wait for them; returns the exit code (0 done, 1 a worker or a node failed, 2 the
    workers refused the command line)."""
    nnodes, node_rank, timeout = args.nnodes, args.node_rank, args.dist_timeout
    host, port = args.master if args.master is not None else ("127.0.0.1", _free_port())
    # Our own lines replace torch's logs of the rendezvous (C++ socket warnings while a node is
    # missing): quiet for this process only, the workers keep torch's defaults.
    before = os.environ.get("TORCH_CPP_LOG_LEVEL")
    os.environ["TORCH_CPP_LOG_LEVEL"] = "FATAL"
    try:
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
        from torch.distributed.launcher.api import LaunchConfig, elastic_launch
    finally:
        if before is None:
            os.environ.pop("TORCH_CPP_LOG_LEVEL")
        else:
            os.environ["TORCH_CPP_LOG_LEVEL"] = before
    for name in ("torch.distributed.elastic", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    run_id = f"backprop-oracle-{host}-{port}"
    config = LaunchConfig(min_nodes=nnodes, max_nodes=nnodes, nproc_per_node=args.nproc_per_node, run_id=run_id,
                          rdzv_endpoint=f"{host}:{port}", rdzv_backend="static",
                          rdzv_configs={"rank": node_rank, "timeout": max(1, math.ceil(timeout))},
                          max_restarts=args.max_restarts, monitor_interval=0.1)
    waiting = Waiting(host, port, nnodes, node_rank, run_id, timeout) if nnodes > 1 else None
    if waiting is not None:
        waiting.start()
    os.environ["BACKPROP_ORACLE_LAUNCH"] = shlex.join(launch_command(command))   # what a failed worker shows to resume
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "backprop_oracle", *command)
    except ChildFailedError as e:
        codes = [f.exitcode for f in e.failures.values()]
        return 2 if codes and all(c == 2 for c in codes) else 1
    except Exception:
        if waiting is None or waiting.joined:
            raise
        waiting.done.set()
        raise NodeMissing(waiting.gave_up(timeout)) from None
    finally:
        os.environ.pop("BACKPROP_ORACLE_LAUNCH", None)
        if waiting is not None:
            waiting.done.set()
    return 0


class NodeMissing(Exception):
    """A node did not come within --dist-timeout: the command prints the line and exits 1."""


def launch_command(argv):
    """This process's command line with ``argv`` after the program, as the user typed the program."""
    if sys.argv[0].endswith("__main__.py"):
        return [sys.executable, "-m", "backprop_oracle", *argv]
    return [sys.argv[0] or "backprop-oracle", *argv]


def _parent_command():
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        return None
    if len(argv) >= 2 and os.path.basename(argv[0]).startswith("python") and not argv[1].startswith("-"):
        argv = argv[1:]           # a script run through its interpreter: torchrun, backprop-oracle
    return argv or None


def resume_command(path, argv):
    """The exact command to go on from the checkpoint ``path``: the launch's (ours, torchrun's) or
    this process's (``argv``: its arguments), with --resume PATH."""
    if os.environ.get("BACKPROP_ORACLE_LAUNCH"):
        argv = shlex.split(os.environ["BACKPROP_ORACLE_LAUNCH"])
    elif "TORCHELASTIC_RUN_ID" in os.environ:
        argv = _parent_command() or ["torchrun", "...", "-m", "backprop_oracle"] + sys.argv[1:]
    else:
        argv = launch_command(argv)
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--resume":
            skip = True
        elif not a.startswith("--resume="):
            out.append(a)
    return shlex.join(out + ["--resume", path])


class TellSaved:
    """Observer after rank 0's Saver: tells the job what was saved (compare.train.distributed)."""
    logs = False

    def __init__(self, saver, dist):
        self.saver, self.dist, self.told = saver, dist, None

    def on_epoch_done(self, run, progress):
        if self.saver.saved is not None and self.saver.saved != self.told:
            self.told = self.saver.saved
            self.dist.note_saved(os.path.abspath(self.saver.path), *self.saver.saved)


def ended_early(args, lost, dist, savers, loggers, results, run_dirs):
    """A peer went silent (``lost``, a PeerLost): one line on every rank that is left; rank 0 marks
    the run folder (``loggers``' config.json) and the --json file as ended early; the process exits
    with code 1. ``args``: the train command's (argv, save, json)."""
    saved = dist.saved() if dist is not None else None
    saver = savers[-1] if savers else None
    if saver is not None and saver.saved is not None:
        saved = (saver.saved[0], saver.saved[1], saver.path)
    restarts = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0") or 0)
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)
    if saved is not None:
        where = f"the last checkpoint is {saved[2]} (epoch {saved[0]}, step {saved[1]})"
        path = args.save if args.save is not None else saved[2]
        if restart < restarts:
            then = f"the launcher restarts the group ({restart + 1} of {restarts}), which resumes from it"
        else:
            then = f"resume with: {resume_command(path, args.argv)}"
    else:
        where = "no checkpoint was saved" + ("" if args.save is not None else " (--save FILE --save-every N keeps one)")
        then = "the launcher restarts the group afresh" if restart < restarts else "start again"
    line = f"{lost.describe()}; {where}; {then}"
    print(f"backprop-oracle train: error: {line}", file=sys.stderr, flush=True)
    if lost.rank == 0:
        note = {"step": lost.step, "epoch": lost.epoch, "why": lost.describe(),
                "silent_ranks": None if lost.silent is None else [r for r, _ in lost.silent],
                "checkpoint": None if saved is None else {"path": saved[2], "epoch": saved[0], "step": saved[1]},
                "next": then}
        logdir = None
        for logger in loggers:
            if logger is not None and logger.run_dir is not None:
                logger.note_ended_early(note)
                logdir = logger.run_dir
        if args.json:
            from backprop_oracle.compare.lockstep.report import write_json
            write_json(args.json, {"runs": [dict(r.to_dict(), logdir=run_dirs.get(r.name)) for r in results],
                                   "ended_early": dict(note, logdir=logdir)})
    # Everything is written and closed: exit at once. The interpreter's teardown of torch takes
    # seconds on a busy machine, and after a peer's failure torch's destructors may wait on it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
