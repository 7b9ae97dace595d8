"""The errors a user's mistake raises, shared by every room of compare/ (so none imports another
room just to name an error). Each message names the problem and the fix; the command line prints
it in one line and exits with code 2, without a traceback."""


class UsageError(Exception):
    """A mistake in how a command was called."""


class SpecError(ValueError):
    """An experiment spec (or an override of one) that makes no sense."""


class DataError(ValueError):
    """Arrays that cannot be trained on; the message names the problem and the fix."""


class IdxError(ValueError):
    """A file that is missing or is not a well-formed IDX file; the message names the file."""


class CheckError(ValueError):
    """A check that cannot run as asked (bad shapes, a function that raises, NaN in its output);
    the message names the problem and the fix."""


USER_ERRORS = (UsageError, SpecError, DataError, IdxError)
