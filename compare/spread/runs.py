"""``run`` across processes: under torchrun (WORLD_SIZE > 1) ``run all``, ``run PRESET...`` and a
sweep spread their lockstep runs over the ranks, each run whole on one rank.

The rule: take the runs in the order one process runs them (preset by preset as named, each
preset's runs in its order, a sweep's combinations in theirs); run i goes to rank i mod WORLD_SIZE
(round-robin). Every rank works this out alone from the same command line, so nothing is sent
before the runs start but the log folder's name. A rank with no run says so in one line and waits.

Rank 0 gathers the results, the LockstepResult objects themselves (pickled by torch.distributed's
``gather_object``, so the table, the JSON and the preset plots get what they get from one
process), and reports them in the one-process order: one table, one ``--json``, one TensorBoard
log tree. Only rank 0 writes files. TensorBoard: rank 0 writes its own runs into its log tree as
they go; every other rank logs each of its runs into a temporary folder of its own, sends the
folder's files (bytes) with the result and removes it; rank 0 writes them into the run's folder,
named as one process would name it (``run_dir_names``; ``config.json`` names that folder). So the
logs of other ranks' runs appear when all runs are done.

The process group carries only these Python objects, so it is gloo's whatever device the runs use
(a run on CUDA uses the GPU of its local rank). A rank that has finished waits for the others as
long as they work: each rank counts its steps in the group's store, and a waiting rank gives up,
with one line naming the silent rank, its run and step, only when one shows no progress for
``SILENCE`` seconds (a stopped or frozen process; a killed one ends the job through torchrun).
Ctrl-C (which torchrun passes on to every rank) stops each rank's runs; the results are then
gathered and reported as after Ctrl-C in one process, the stopped runs' logs kept.
"""
import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager

SILENCE = 300.0          # seconds without a step from a rank that has not finished, before giving up on it
KEY = "backprop_oracle/run"


def processes():
    """How many processes torchrun started (WORLD_SIZE); 1 without torchrun."""
    world = os.environ.get("WORLD_SIZE", "1")
    return int(world) if world.isdigit() and int(world) > 0 else 1


def work(presets):
    """Every run in the order one process runs them: [(preset, label, run name, spec), ...]."""
    return [(preset, label, name, spec) for preset in presets
            for (label, spec), name in zip(preset.runs.items(), preset.run_names())]


def share(count, rank, world):
    """The places (in the one-process order) of the runs rank ``rank`` of ``world`` takes:
    round-robin, run i to rank i mod world."""
    return list(range(rank, count, world))


def folder_plan(presets):
    """{run name: folder name} for every run, and {preset name: folder name} under the key
    (None, preset name) for a preset of several runs: the names one process gives them."""
    order = []
    for preset in presets:
        order += [(name, name) for name in preset.run_names()]
        if len(preset.runs) > 1:
            order.append(((None, preset.name), preset.name))
    from backprop_oracle.compare.dashboards.tensorboard import run_dir_names
    return dict(zip([key for key, _ in order], run_dir_names([name for _, name in order])))


class Heartbeat:
    """Observer: counts this rank's steps in the group's store (at most about once a second), with
    the run and step, for the ranks that wait for it; remembers the run and step for Ctrl-C."""
    logs = False

    def __init__(self, store, rank, every=1.0):
        self.store, self.key, self.every = store, f"{KEY}/beat/{rank}", every
        self.count, self.last, self.name, self.step = 0, 0.0, None, 0

    def beat(self):
        self.count += 1
        self.last = time.monotonic()
        self.store.set(self.key, f"{self.count} {self.step} {self.name or ''}")

    def on_start(self, run):
        self.name, self.step = run.name, 0
        self.beat()

    def on_step(self, run, record):
        self.step = record.step
        if time.monotonic() - self.last >= self.every:
            self.beat()

    def reads_sides_at(self, step):
        return False          # only the records (compare.lockstep.blocks)


def _store():
    # The process group's own key-value store (torchrun's rendezvous store): torch offers no public
    # name for it, and this one has stayed the same since torch 1.x.
    from torch.distributed import distributed_c10d
    return distributed_c10d._get_default_store()


def wait_for_others(store, rank, world, *, silence=SILENCE, say=None, poll=0.2):
    """Mark this rank done, then wait until every rank is; raise SystemExit(1), after one line on
    stderr, when a rank that has not finished shows no progress for ``silence`` seconds.
    ``say``: a function given one line once the wait has taken 5 s (None: say nothing)."""
    store.set(f"{KEY}/done/{rank}", "1")
    others = [r for r in range(world) if r != rank]
    seen = {r: (None, time.monotonic()) for r in others}
    start, told = time.monotonic(), False
    while True:
        left = [r for r in others if not store.check([f"{KEY}/done/{r}"])]
        if not left:
            return
        now = time.monotonic()
        for r in left:
            beat = store.get(f"{KEY}/beat/{r}").decode() if store.check([f"{KEY}/beat/{r}"]) else None
            if beat != seen[r][0]:
                seen[r] = (beat, now)
            elif now - seen[r][1] > silence:
                where = "before its first run" if beat is None else \
                    f"in {beat.split(' ', 2)[2]} at step {beat.split(' ', 2)[1]}"
                print(f"backprop-oracle run: rank {r} has made no progress for {silence:.0f} s ({where}); "
                      f"rank {rank} gives up on it. Run again, or without torchrun", file=sys.stderr)
                raise SystemExit(1)
        if say is not None and not told and now - start >= 5:
            told = True
            doing = "; ".join(f"rank {r} in {seen[r][0].split(' ', 2)[2]}" for r in left if seen[r][0])
            say(f"rank {rank}'s runs are done; waiting for {len(left)} other rank(s)" + (f": {doing}" if doing else ""))
        time.sleep(poll)


def packed(folder):
    """{path relative to ``folder``: bytes} for every file under it."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = fh.read()
    return out


def unpack(files, folder):
    """Write ``packed``'s files into ``folder`` (each file whole or not at all)."""
    from backprop_oracle.compare.files import write_atomic
    for rel, data in files.items():
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, data)


def run_spread(presets, run_one, observers_for, logdir=None, *, quiet=False, timeout=None):
    """Run ``presets``' runs spread over torchrun's processes (see the module's text).

    ``run_one(preset, label, run name, spec, observers_for)`` runs one run and returns (run name,
    result, goal) (compare.cli.runner.run_one); the result must pickle.
    ``observers_for(name, spec, **where)``: a run's observers; ``where`` holds the TensorBoard
    logger's ``folder`` and ``final_folder`` (compare.dashboards.tensorboard.TensorBoardLogger).
    ``logdir``: --logdir, None for no TensorBoard logs. ``timeout``: the process group's
    timeout (torch's default when None). On rank 0 returns (the command's log folder or None,
    [(preset, [(run name, result, goal), ...]), ...] in the one-process order, interrupted: (run
    name, step) or None); on every other rank None.
    """
    import torch
    import torch.distributed as dist
    from contextlib import nullcontext
    from backprop_oracle.compare.train.torch_only import process_group
    group_options = {} if timeout is None else {"timeout": timeout}       # --dist-timeout goes here
    # The group carries Python objects only: gloo's, whatever the runs' device.
    with process_group("cpu", **group_options) as place:
        rank, world = place.rank, place.world_size
        if torch.cuda.is_available():
            torch.cuda.set_device(place.local_rank % torch.cuda.device_count())  # "cuda": this rank's GPU
        items = work(presets)
        mine = share(len(items), rank, world)
        guard = nullcontext()
        if rank == 0 and logdir is not None:
            from backprop_oracle.compare.dashboards.tensorboard import logdir_for_runs
            guard = logdir_for_runs(logdir)       # removed again if nothing could run
        with guard as folder:
            box = [folder]
            dist.broadcast_object_list(box, src=0)
            folder = box[0]
            plan = folder_plan(presets) if folder is not None else {}
            if not mine:
                print(f"rank {rank} of {world}: no run for it ({len(items)} run(s) over {world} processes); "
                      "it waits for the others", file=sys.stderr)
            beat = Heartbeat(_store(), rank)
            # Ctrl-C reaches every rank, from the terminal and again from torchrun, which kills what
            # is left 30 s later: it stops this rank's runs, and is then held back until the results
            # are gathered, so that what finished is still reported.
            with _interrupts_held_after_the_runs():
                done, interrupted = _run_mine(items, mine, rank, folder, plan, beat, run_one, observers_for)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                wait_for_others(_store(), rank, world, say=None if rank or quiet else
                                (lambda line: print(line, file=sys.stderr)))
                gathered = [None] * world if rank == 0 else None
                dist.gather_object((done, interrupted), gathered, dst=0)
            if rank != 0:
                return None
            return folder, _in_order(presets, items, gathered, folder, plan), _first_interrupted(gathered)


def _run_mine(items, mine, rank, folder, plan, beat, run_one, observers_for):
    """Run this rank's runs; returns ([(place, result, goal, packed log files or None)], (place,
    run name, step, its packed logs so far or None) where Ctrl-C stopped one, or None)."""
    done, interrupted = [], None
    temp = tempfile.mkdtemp(prefix="backprop-oracle-run-") if folder is not None and rank != 0 else None
    try:
        for i in mine:
            preset, label, name, spec = items[i]
            where = {}
            if folder is not None:
                final = os.path.join(folder, plan[name])
                where = {"folder": final} if temp is None else \
                    {"folder": os.path.join(temp, plan[name]), "final_folder": final}
            try:
                _, result, goal = run_one(preset, label, name, spec,
                                          lambda n, s: [beat, *observers_for(n, s, **where)])
            except KeyboardInterrupt:
                signal.signal(signal.SIGINT, signal.SIG_IGN)      # the second one, torchrun's, too
                # What finished is still a result, the others' runs too; this run's logs so far are kept.
                interrupted = (i, beat.name, beat.step, packed(where["folder"]) if temp is not None else None)
                break
            done.append((i, result, goal, packed(where["folder"]) if temp is not None else None))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    return done, interrupted


def _in_order(presets, items, gathered, folder, plan):
    """The gathered results in the one-process order, by preset; other ranks' logs written into
    ``folder``."""
    by_place = {}
    for done, stop in gathered:
        if stop is not None and stop[3]:
            unpack(stop[3], os.path.join(folder, plan[items[stop[0]][2]]))
        for i, result, goal, files in done:
            by_place[i] = (result, goal)
            if files is not None:
                unpack(files, os.path.join(folder, plan[items[i][2]]))
    out, i = [], 0
    for preset in presets:
        ran = []
        for name in preset.run_names():
            if i in by_place:
                ran.append((name, *by_place[i]))
            i += 1
        out.append((preset, ran))
    return out


def _first_interrupted(gathered):
    stops = sorted(stop[:3] for _, stop in gathered if stop is not None)
    return None if not stops else stops[0][1:]


@contextmanager
def _interrupts_held_after_the_runs():
    """Put Python's own SIGINT handling back at the end (the runs and the wait ignore it where they set so)."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
