"""The command line's argument types: each turns one option's text into its value, or refuses it
with a one-line message that names the value and what it should be (argparse.ArgumentTypeError,
UsageError), so that every command parses the same way.

Imports compare.errors and compare.network (a layers list is checked as it is parsed); the command
line imports it, nothing else does.

    types      positive_int, number, listed, listed_keys, layer_sizes, layers_list, shape, keywords, ...
"""
