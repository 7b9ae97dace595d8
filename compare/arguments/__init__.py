"""The command line's value types: positive numbers, lists, sizes, keys, each refusing a bad value
with a message that names it (argparse then exits 2 with that message).

    types    positive_int, positive_float, number, lists of them, layer sizes, pairs, keywords

Shared by the commands (compare.cli) and the option groups they add; imports compare.errors only.
"""
