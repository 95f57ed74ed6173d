"""What the machine computes natively, for --precision=auto and --xla_elementwise=auto.
TensorFlow only to list GPUs.

bf16 pays where the hardware has bf16 arithmetic: CPUs with AVX512_BF16 or AMX-BF16 (measured
1.3–1.6× fp32 training throughput on AVX512_BF16), NVIDIA GPUs of compute capability 8.0 and
newer. Elsewhere bf16 is emulated and slower than fp32, so auto picks fp32 there.

On a CPU, bf16 speeds the matmuls up (oneDNN) but not TensorFlow's own elementwise kernels
(GELU, dropout, residual adds, Adam's updates), which then take most of a bf16 step. XLA's
auto-clustering restricted to fusible ops compiles those into a few fused loops and leaves the
matmuls to oneDNN: measured 1.23–1.26× the bf16 training step (4 × 256, batch 32 × 128,
bench/peer-cpu.md) and 1.03–1.06× the fp32 one, where the elementwise kernels weigh less.
TensorFlow reads the flags that allow it once per process, before its first device listing,
hence ELEMENTWISE_JIT_FLAGS set early (entry_point) and the session switch later.
"""

import os

from bert import serving_cpu

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
BF16_GPU_CAPABILITY = (8, 0)


def cpu_flags(cpuinfo="/proc/cpuinfo"):
  """The CPU's feature flags (Linux), as a frozenset of strings; empty when unknown."""
  try:
    with open(cpuinfo, encoding="utf-8", errors="replace") as f:
      for line in f:
        if line.startswith("flags") and ":" in line:
          return frozenset(line.split(":", 1)[1].split())
  except OSError:
    pass
  return frozenset()


def visible_gpu_capabilities():
  """(major, minor) compute capability of each GPU TensorFlow sees; empty on a CPU."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  capabilities = []
  for gpu in tf.config.list_physical_devices("GPU"):
    capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
    if capability:
      capabilities.append(tuple(capability))
  return capabilities


def choose_precision(requested, flags=(), gpu_capabilities=()):
  """The compute precision to use, and why.

  Args:
    requested: the --precision flag: fp32, fp16, bf16 or auto.
    flags: CPU feature flags (cpu_flags()).
    gpu_capabilities: (major, minor) compute capability of each visible GPU; empty on a CPU.
  Returns:
    (precision, reason): precision one of fp32, fp16, bf16; reason a short phrase for the log.
  """
  if requested != "auto":
    return requested, "--precision=%s" % requested
  if gpu_capabilities:
    if all(tuple(c) >= BF16_GPU_CAPABILITY for c in gpu_capabilities):
      return "bf16", "auto: GPU compute capability %s ≥ 8.0 has bf16 tensor cores" % (
          ", ".join("%d.%d" % tuple(c) for c in gpu_capabilities))
    return "fp32", "auto: GPU compute capability %s < 8.0 has no bf16 arithmetic" % (
        ", ".join("%d.%d" % tuple(c) for c in gpu_capabilities))
  native = [flag for flag in BF16_CPU_FLAGS if flag in flags]
  if native:
    return "bf16", "auto: this CPU has %s" % "/".join(native)
  return "fp32", "auto: this CPU has no bf16 instructions (%s)" % " or ".join(BF16_CPU_FLAGS)


ELEMENTWISE_JIT_FLAGS = ("--tf_xla_cpu_global_jit", "--tf_xla_ops_to_cluster=FUSIBLE")


def choose_elementwise_jit(requested, precision, padding="dynamic", gpu_capabilities=(),
                           use_xla=False):
  """Whether the training session compiles its elementwise ops with XLA, and why.

  XLA compiles each cluster (about 8 per layer) once per batch shape. With dynamic padding each
  bucket's length is a new shape, and at the short lengths of review-sized texts the fused loops
  are too small to repay their launch: measured no faster per step and slower overall (4 × 256
  on waimai). With fixed padding there is one shape and large loops.

  Args:
    requested: the --xla_elementwise flag: auto, on or off.
    precision: the compute precision chosen (choose_precision): fp32, fp16 or bf16.
    padding: the --padding flag: dynamic or fixed.
    gpu_capabilities: as for choose_precision; non-empty: training runs on a GPU.
    use_xla: --use_xla, which compiles the whole training step already.
  Returns:
    (on, reason): on a bool; reason a short phrase for the log.
  """
  if use_xla:
    return False, "--use_xla compiles the whole training step"
  if requested != "auto":
    return requested == "on", "--xla_elementwise=%s" % requested
  if gpu_capabilities:
    return False, "auto: off on a GPU (--use_xla compiles the step there)"
  if precision == "fp16":
    return False, "auto: fp16 on a CPU is not measured with it"
  if padding != "fixed":
    return False, ("auto: with dynamic padding each batch length compiles again and short "
                   "batches gain nothing")
  return True, "auto: %s on a CPU, fixed-length batches (one shape, compiled once)" % precision


def with_elementwise_jit_flags(tf_xla_flags):
  """TF_XLA_FLAGS's value with ELEMENTWISE_JIT_FLAGS added (a user's own flags kept).

  They let a session's global_jit_level cluster ops on a CPU, fusible ops only; a session that
  does not ask (evaluation, prediction, export) compiles nothing.
  """
  words = (tf_xla_flags or "").split()
  named = {word.split("=", 1)[0] for word in words}
  words += [flag for flag in ELEMENTWISE_JIT_FLAGS if flag.split("=", 1)[0] not in named]
  return " ".join(words)


def describe_cpu(flags=None):
  """A one-line CPU summary for benchmark headers: model name, cores, L2 per core (which decides
  the exports' row blocks, bert/serving_cpu.py) and the vector flags."""
  flags = cpu_flags() if flags is None else flags
  model = "unknown CPU"
  try:
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
      model = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), model)
  except OSError:
    pass
  vector = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16") if f in flags]
  l2 = serving_cpu.l2_cache_bytes()
  return "%s, %d cores, L2 %s per core, flags: %s" % (
      model, os.cpu_count() or 0, "%d KiB" % (l2 // 1024) if l2 else "unknown",
      " ".join(vector) or "none")
