"""The CPU an inference graph is built for: which requests' rows it splits into two blocks, and
how many threads each of its ops should get from the server (README: Row blocks).

An inference graph may split each layer's token-wise part (attention output, feed-forward, layer
norms) into two row blocks: two chains of ops that the executor's inter-op threads run side by
side (modeling.transformer). Whether that pays depends on how the ops themselves use the cores:

* Each op on one thread (the server's intra-op pool of 1, inter-op pool of 2): on a 2-core CPU the
  two blocks are then the two cores' work, and the small ops skip the handoff to a second thread
  that costs ~20-80 us each at serving sizes (oneDNN's batch matmuls and softmax always hand
  off). Measured on a 2-core EPYC (Zen 4) against TensorFlow's default pool, split in both: the
  teacher 4 x 256 1.5x / 1.2x / 1.15x / 1.0x at 1 x 32 / 1 x 128 / 8 x 32 / 8 x 128, the student
  1 x 128 1.2x at 1 x 32 and 1.0-1.1x above; 0.9x at 32 x 128 (the attention core is not split).
  MiniLM's 6 x 384 measured 0.9-1.15x at batch 1 and 0.82-0.88x at 8 x 128, so only models up to
  ONE_THREAD_PER_OP_MAX_HIDDEN wide are served this way, and only on 2 cores (more cores than
  blocks would idle; unmeasured).
* TensorFlow's default pool (every op may use every core): oneDNN runs a matmul on one thread when
  its operands (m·n + k·(m + n) floats) fit in the L2 cache of one core, else on all. Splitting
  pays where a block's feed-forward matmul fits (it would have run on one core), and costs where
  it does not: the teacher at 1 x 32 measured 0.80x split on the 1 MiB-L2 EPYC, BERT-Base
  0.77-0.95x on a 2 MiB Xeon.

In both, requests split from ROW_SPLIT_MIN_WORK rows x width^2 on (below, the second block's ops
cost more than they save). The sizes come from the machine that builds the export unless told
(--serving_l2_kib, --serving_cores); bert_export.json records them and the threads per op, which
scripts/serve.sh passes to tensorflow_model_server.
"""

import os

ROW_SPLIT_MIN_WORK = 2 ** 21
ONE_THREAD_PER_OP_MAX_HIDDEN = 256
CPU_CACHE_DIR = "/sys/devices/system/cpu/cpu0/cache"


def l2_cache_bytes(cache_dir=CPU_CACHE_DIR):
  """This machine's L2 cache per core in bytes (Linux sysfs), or None where it is not listed."""
  try:
    for index in sorted(os.listdir(cache_dir)):
      entry = os.path.join(cache_dir, index)
      with open(os.path.join(entry, "level")) as level, open(os.path.join(entry, "type")) as kind:
        if level.read().strip() != "2" or kind.read().strip() == "Instruction":
          continue
      with open(os.path.join(entry, "size")) as size:
        text = size.read().strip().upper()
      scale = {"K": 2 ** 10, "M": 2 ** 20}.get(text[-1:], 1)
      return int(text.rstrip("KM")) * scale
  except (OSError, ValueError):
    pass
  return None


def usable_cores():
  """The logical CPUs this process may run on (what the thread pools count as cores)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


class ServingCpu(object):
  """A serving CPU: l2_bytes of L2 cache per core and `cores` cores (None: unknown)."""

  def __init__(self, l2_bytes=None, cores=None):
    self.l2_bytes = int(l2_bytes) if l2_bytes else None
    self.cores = int(cores) if cores else None

  @classmethod
  def this_machine(cls, l2_bytes=None, cores=None):
    """This machine's CPU, with l2_bytes or cores given in its place where not None."""
    return cls(l2_bytes or l2_cache_bytes(), cores or usable_cores())

  def to_json(self):
    return {"l2_bytes": self.l2_bytes, "cores": self.cores}

  def intra_op_threads(self, config):
    """The server's intra-op threads for this model: 1 (each op on one thread) or 0 (TensorFlow's
    default, every core)."""
    return 1 if self.cores == 2 and config.hidden_size <= ONE_THREAD_PER_OP_MAX_HIDDEN else 0

  def row_split_min_rows(self, config):
    """The fewest rows (batch x sequence) whose inference graph splits them, or None (never).

    With one thread per op, from ROW_SPLIT_MIN_WORK on; else only when half those rows times the
    feed-forward weights fit the one-thread rule of oneDNN's matmul:
    4 bytes x (rows / 2 x (hidden + intermediate) + hidden x intermediate) < l2_bytes.
    One core (or an unknown L2 with the default pool): never.
    """
    if self.cores is not None and self.cores < 2:
      return None
    hidden, inner = config.hidden_size, config.intermediate_size
    min_rows = -(-ROW_SPLIT_MIN_WORK // (hidden * hidden))
    if self.intra_op_threads(config) == 1:
      return min_rows
    if not self.l2_bytes:
      return None
    block = -(-min_rows // 2)
    fits = 4 * (block * (hidden + inner) + hidden * inner) < self.l2_bytes
    return min_rows if fits else None
