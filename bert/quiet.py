"""Quiet output for user-facing runs: our lines only, TensorFlow's internals only on request.

TensorFlow prints notices from C++ before its logging is configured (oneDNN, CPU instruction
hints, "All log messages before absl::InitializeLog()", CUDA probing on a machine without a
GPU), so no environment variable hides them all: the process's stderr goes through a filter
that drops those lines and passes everything else (our errors, Python tracebacks, real C++
errors) unchanged. Python-side TensorFlow logging (deprecation notices, "Restoring
parameters") is raised to ERROR.

`BERT_VERBOSE=1` in the environment, or `--verbose` on an entry point, turns all of this off.
No TensorFlow here: call configure() before TensorFlow is imported.
"""

import atexit
import logging
import os
import re
import sys
import threading

VERBOSE_ENV = "BERT_VERBOSE"

# An absl/TensorFlow C++ log record: severity letter, MMDD or 0000, time, thread, file:line].
_CPP_RECORD = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+\s+[\w.\-]+:\d+\]")
_ALWAYS_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler"
    r" flags\.)$")
# Errors TensorFlow logs while probing for CUDA; noise only where no NVIDIA driver exists.
_CUDA_PROBE = re.compile(r"cuInit|cuda_platform|cuda_diagnostics|cuda_executor|cudart_stub|"
                         r"kernel driver does not appear|Could not find cuda drivers|"
                         r"Unable to register cu(DNN|FFT|BLAS) factory|gpu_device\.cc")

_state = {"installed": False}


def is_verbose(flag_value=False):
  return bool(flag_value) or os.environ.get(VERBOSE_ENV, "") not in ("", "0", "false", "False")


def has_nvidia_driver():
  return os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version")


def is_noise(line, gpu_driver=False):
  """Whether one stderr line (without its newline) is a TensorFlow internal notice.

  INFO and WARNING records of the C++ logger are noise; ERROR and FATAL records are kept,
  except CUDA-probing errors on a machine without an NVIDIA driver.
  """
  if _ALWAYS_NOISE.match(line):
    return True
  record = _CPP_RECORD.match(line)
  if not record:
    return False
  if record.group(1) in "IW":
    return True
  return record.group(1) == "E" and not gpu_driver and bool(_CUDA_PROBE.search(line))


def configure(verbose=False, filter_stderr=True):
  """Quiets TensorFlow for this process (and the processes it starts) unless verbose.

  Sets TF_CPP_MIN_LOG_LEVEL=2 (unless the user set it), raises the `tensorflow` Python logger to
  ERROR and, with filter_stderr, filters file descriptor 2 (see module docstring). Idempotent.
  """
  if is_verbose(verbose):
    os.environ[VERBOSE_ENV] = "1"  # child processes (scripts call each other) stay verbose
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  logging.getLogger("tensorflow").setLevel(logging.ERROR)
  if filter_stderr and not _state["installed"]:
    _install_stderr_filter()


def _install_stderr_filter():
  sys.stderr.flush()
  original = os.dup(2)
  read_fd, write_fd = os.pipe()
  os.dup2(write_fd, 2)
  os.close(write_fd)
  gpu_driver = has_nvidia_driver()

  def pump():
    with os.fdopen(read_fd, "rb") as pipe:
      for raw in pipe:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not is_noise(line, gpu_driver):
          os.write(original, raw)

  thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
  thread.start()

  def drain():
    # Give fd 2 back so the pipe's last writer closes and the pump sees the end of it (child
    # processes that still hold the pipe would keep it open: wait a moment, not forever).
    try:
      sys.stderr.flush()
    except (OSError, ValueError):
      pass
    os.dup2(original, 2)
    thread.join(timeout=2.0)

  atexit.register(drain)
  _state["installed"] = True
