"""The command line's value types: positive numbers, lists, sizes, keys, each refusing a bad value
with a message that names it (argparse then exits 2 with that message).

    types    positive_int, positive_float, number, lists of them, layer sizes, layers lists, shapes,
             pairs, keywords

Shared by the commands (compare.cli) and the option groups they add; imports compare.errors, and
compare.network (a layers list is checked as it is parsed).
"""
