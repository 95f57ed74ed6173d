"""One run at a time per output_dir: an exclusive lock held for the life of a run (no TensorFlow).

The lock is `fcntl.flock` on `output_dir/.lock`, which holds the holder's pid. The kernel
releases a flock when its process dies (kill -9 included), so a lock left by a dead process is
simply taken over; the pid still in the file then tells whose run ended without releasing it.
Where flock is not supported (some network file systems), the pid alone decides: a live pid holds
the lock, a dead one's is taken over.
"""

import errno
import fcntl
import os

from bert.errors import UsageError
from bert.processes import process_alive

LOCK_FILE = ".lock"


def _read_pid(fd):
  text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
  return int(text) if text.isdigit() else None


def _write_pid(fd, pid):
  """Best effort (a full disk): the flock holds all the same, only the pid shown is missing."""
  try:
    os.ftruncate(fd, 0)
    if pid:
      os.pwrite(fd, b"%d\n" % pid, 0)
  except OSError:
    pass


class RunLock(object):
  """`with RunLock(output_dir, flag="--output_dir"):` — raises UsageError naming the holder's pid
  when another live process holds output_dir."""

  def __init__(self, output_dir, flag="--output_dir"):
    self.output_dir = output_dir
    self.flag = flag
    self.path = os.path.join(output_dir, LOCK_FILE)
    self.fd = None
    self.taken_over = None  # pid of a dead holder whose lock this run took over

  def acquire(self):
    where = "%s %s" % (self.flag, self.output_dir)
    if os.path.exists(self.output_dir) and not os.path.isdir(self.output_dir):
      raise UsageError("%s: is a file, not a directory (expected a directory for checkpoints "
                       "and results)" % where)
    try:
      os.makedirs(self.output_dir, exist_ok=True)
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise UsageError("%s: cannot create the lock file %s (%s); expected a directory this "
                       "process can write" % (where, self.path, e.strerror or e))
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      holder = _read_pid(fd)
      busy = e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
      if busy or holder and holder != os.getpid() and process_alive(holder):  # else: no flock
        os.close(fd)
        raise UsageError("%s: in use by another run (pid %s holds %s); wait for it to end or "
                         "give another --output_dir" % (where, holder or "unknown", self.path))
    previous = _read_pid(fd)
    if previous and previous != os.getpid():
      self.taken_over = previous
    _write_pid(fd, os.getpid())
    self.fd = fd
    return self

  def release(self):
    """Empties the pid (a clean end) and unlocks; the file stays (removing it would race)."""
    if self.fd is None:
      return
    _write_pid(self.fd, None)
    try:
      fcntl.flock(self.fd, fcntl.LOCK_UN)
    finally:
      os.close(self.fd)
      self.fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc_info):
    self.release()
