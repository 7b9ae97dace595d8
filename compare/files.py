"""Files written so that nothing is ever half-written: into a temporary file beside the target, then
renamed over it (a reader sees the old file or the new one, never a part), with the permissions a
plain ``open()`` would give under the user's umask (``mkstemp`` alone makes files 0600)."""
import errno
import math
import os
import tempfile

from backprop_oracle.compare.errors import UsageError


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path, data):
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` atomically; a full disk is a UsageError
    that names the folder, and leaves nothing behind."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".backprop-oracle-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise UsageError(f"no space left on the device of {directory}: {os.path.basename(path)} was not "
                             "written; free some space or choose another folder") from None
        raise


def json_safe(value):
    """``value`` with NaN and infinities (not JSON) written as None, through dicts, lists and tuples."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
