"""What the machine computes natively, for --precision=auto. TensorFlow only to list GPUs.

bf16 pays where the hardware has bf16 arithmetic: CPUs with AVX512_BF16 or AMX-BF16 (measured
1.3–1.6× fp32 training throughput on AVX512_BF16), NVIDIA GPUs of compute capability 8.0 and
newer. Elsewhere bf16 is emulated and slower than fp32, so auto picks fp32 there.
"""

import os

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


def describe_cpu(flags=None):
  """A one-line CPU summary for benchmark headers: model name, cores and the vector flags."""
  flags = cpu_flags() if flags is None else flags
  model = "unknown CPU"
  try:
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
      model = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), model)
  except OSError:
    pass
  vector = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16") if f in flags]
  return "%s, %d cores, flags: %s" % (model, os.cpu_count() or 0, " ".join(vector) or "none")
