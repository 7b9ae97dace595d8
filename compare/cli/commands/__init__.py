"""One module per subcommand, each with HELP, add_arguments(parser) and main(args) -> exit code."""
from backprop_oracle.compare.cli.commands import check_cmd, trace_cmd
from backprop_oracle.compare.cli.commands import list_cmd, run_cmd
from backprop_oracle.compare.cli.commands import train_cmd
from backprop_oracle.compare.cli.commands import bench_cmd
from backprop_oracle.compare.cli import checkpoints

COMMANDS = {
    "run": run_cmd,
    "list": list_cmd,
    "check": check_cmd,
    "trace": trace_cmd,
    "train": train_cmd,
    "bench": bench_cmd,
    "convert": checkpoints,
}
