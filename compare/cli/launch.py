"""The options of ``backprop-oracle train PRESET --nproc-per-node N [--nnodes M --node-rank R --master
HOST:PORT]``, our own launch of the training processes (compare.train.launch). The workers run
this very command line: inside one (TORCHELASTIC_RUN_ID or WORLD_SIZE set) the launch options are
ignored and the worker trains (compare.train.launch.wants_launch).
"""
import argparse

from backprop_oracle.compare.arguments.types import non_negative_int, positive_float, positive_int
from backprop_oracle.compare.train.distributed import DEFAULT_TIMEOUT


def host_port(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:29500, got {text!r}")
    return host.strip("[]"), int(port)


def add_launch_arguments(parser):
    group = parser.add_argument_group("across processes (or start them with torchrun)")
    group.add_argument("--nproc-per-node", type=positive_int, metavar="N",
                       help="start N training processes on this machine, each on a shard of every batch "
                            "(DistributedDataParallel; gloo on the CPU, NCCL with one GPU each)")
    group.add_argument("--nnodes", type=positive_int, default=1, metavar="M",
                       help="with --nproc-per-node: machines taking part (default 1); start the command on each")
    group.add_argument("--node-rank", type=non_negative_int, default=0, metavar="R",
                       help="with --nnodes: this machine's number, 0 to M-1 (0 holds the job's store)")
    group.add_argument("--master", type=host_port, metavar="HOST:PORT",
                       help="with --nnodes: node 0's address and a free port, the same on every node")
    group.add_argument("--max-restarts", type=non_negative_int, default=0, metavar="K",
                       help="with --nproc-per-node: restart the group up to K times after a failed worker; "
                            "with --save-every it resumes from the last checkpoint")
    group.add_argument("--dist-timeout", type=positive_float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                       help=f"the longest wait for another process or node (default {DEFAULT_TIMEOUT:g} s): a "
                            "peer that stops answering ends the others within it, with one line saying who")
