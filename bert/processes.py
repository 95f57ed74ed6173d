"""Whether the process that owns a temporary file is still running (no TensorFlow)."""

import os


def process_alive(pid):
  """True while `pid` runs (also when it belongs to another user); False once it is gone.

  Temporary files and directories carry their writer's pid in their name: a writer killed with
  kill -9 leaves them behind, and the next writer removes them once this says False.
  """
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True
