"""A user's own Python file, named on the command line as FILE.py:NAME, imported as the check
commands need it: a mistake in the name, the file or its import is a UsageError in one line."""
import importlib.util
import os
import re

from backprop_oracle.compare.errors import UsageError


def import_user_file(target, form, example):
    """(module, path, name) for ``target`` = "FILE.py:NAME"; ``form`` ("FUNCTION", "NAME") and
    ``example`` are shown when the target is not of that form."""
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise UsageError(f"expected FILE.py:{form}, e.g. {example}; got {target!r}")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(f"backprop_oracle_user_{stem}", path)
    if spec is None:
        raise UsageError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SystemExit as e:
        raise UsageError(f"importing {path} called sys.exit({e.code!r}); a file to check must not exit "
                         "when it is imported (put the script part under if __name__ == '__main__':)") from None
    except Exception as e:  # the user's file may raise anything while it is imported
        raise UsageError(f"importing {path} raised {type(e).__name__}: {e}") from None
    return module, path, name
