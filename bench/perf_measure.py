"""The performance benchmark's measurements: which workers run, in what order, and their summary.

`measure` runs the GEMM peak, the preparation, the training runs and the serving runs, each in a
worker process (bench/perf_workers.py) started through `bench/run.py --worker`, and returns the
raw figures that bench/run.py writes to JSON and bench/perf_report.py turns into the report.
"""

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench.perf_workers import (BATCH_SIZE, PRECISIONS, RESULT_PREFIX, SERVE_BATCHES,
                                SERVE_LENGTHS, WIDTH_SWEEP, XLA_CPU_FLAG, log)

ENTRY_POINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py")


def run_worker(kind, spec, env_extra=None, timeout=900):
  env = dict(os.environ)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  env.update(env_extra or {})
  started = time.time()
  try:
    process = subprocess.run([sys.executable, ENTRY_POINT, "--worker", kind,
                              "--spec", json.dumps(spec)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
  except subprocess.TimeoutExpired:
    return {"error": "timed out after %d s" % timeout, "wall_seconds": time.time() - started}
  lines = [l for l in process.stdout.splitlines() if l.startswith(RESULT_PREFIX)]
  if process.returncode != 0 or not lines:
    tail = "\n".join(process.stderr.strip().splitlines()[-15:])
    return {"error": "exit %d: %s" % (process.returncode, tail[-1500:]),
            "wall_seconds": time.time() - started}
  for line in process.stderr.splitlines():
    if line.startswith("  "):
      log(line)
  result = json.loads(lines[-1][len(RESULT_PREFIX):])
  result["wall_seconds"] = time.time() - started
  return result


def cpu_description():
  """CPU model and whether it has bf16/fp16 matmul instructions (else TF converts to fp32)."""
  model, flags = platform.processor() or platform.machine(), set()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
          model = value.strip()
        elif key.strip() == "flags":
          flags = set(value.split())
  except OSError:
    return model
  bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
  return "%s (%s; bf16 instructions: %s)" % (
      model, "AVX-512" if "avx512f" in flags else "AVX2, no AVX-512" if "avx2" in flags else
      "no AVX2", ", ".join(bf16) or "none")


def load_average():
  try:
    return os.getloadavg()
  except OSError:
    return (float("nan"),) * 3


def summarize_train(result):
  """Throughput of the timed steps at steady state.

  A step whose batch shape had not yet run SETTLED times (a rare length bucket, or XLA compiling
  it) is counted at the median time of that shape's settled steps, or, when the shape never
  settled within the run, at its fastest observed time (XLA's uncompiled first run); so the mix
  of shapes stays that of the data and compile time stays out.
  """
  steps = result["steps"]
  settled, observed = {}, {}
  for s in steps:
    observed.setdefault(tuple(s["shape"]), []).append(s["seconds"])
    if s["settled"]:
      settled.setdefault(tuple(s["shape"]), []).append(s["seconds"])

  def seconds_of(s):
    shape = tuple(s["shape"])
    if s["settled"]:
      return s["seconds"]
    return statistics.median(settled[shape]) if shape in settled else min(observed[shape])

  seconds = sum(seconds_of(s) for s in steps)
  real_tokens = sum(sum(s["lengths"]) for s in steps)
  padded_tokens = sum(s["shape"][0] * s["shape"][1] for s in steps)
  summary = {"examples_per_sec": sum(s["shape"][0] for s in steps) / seconds,
             "step_ms": 1e3 * seconds / len(steps),
             "padded_gflops": sum(s["padded_flops"] for s in steps) / seconds / 1e9,
             "real_gflops": sum(s["real_flops"] for s in steps) / seconds / 1e9,
             "padding_overhead": padded_tokens / float(real_tokens),
             "steps": len(steps), "unsettled_steps": sum(1 for s in steps if not s["settled"]),
             "unsettled_seconds": sum(s["seconds"] - seconds_of(s) for s in steps),
             "maxrss_mib": result["train_maxrss_mib"], "warmup_steps": result["warmup_steps"],
             "warmup_seconds": result["warmup_seconds"], "wall_seconds": result["wall_seconds"]}
  # Training FLOP/s of each window against the GEMM measured right after it.
  for precision, values in result["gemm"].items():
    if not values:
      continue
    shares = []
    for window in result["windows"]:
      window_steps = steps[window["first"]:window["last"]]
      window_gflops = (sum(s["padded_flops"] for s in window_steps) /
                       sum(seconds_of(s) for s in window_steps) / 1e9)
      shares.append(window_gflops / window["gemm_" + precision])
    summary["gemm_" + precision] = statistics.median(values)
    summary["share_" + precision] = statistics.median(shares)
  return summary


def train_spec(prepared, workdir, model, padding, precision, xla, quick):
  """Timing plan of one training run: warm-up (capped: XLA compiles there), then windows of
  steps for `seconds` in all, each window followed by GEMM repeats (fp32 and the run's own
  precision) that put the run's FLOP/s against the machine's speed at that moment."""
  student = model == "student"
  target = model == "teacher" and padding == "fixed"
  spec = {"config": prepared["configs"][model], "record_file": prepared["record_file"],
          "scratch_dir": os.path.join(workdir, "scratch"), "padding": padding,
          "precision": precision, "xla": xla,
          "warmup": 3, "warmup_max": 40, "warmup_seconds": 25 if student else 40,
          "steps": 2000, "min_steps": 8 if student else 3,
          "window_min_steps": 4 if student else 2, "window_seconds": 1.0 if student else 2.0,
          "seconds": (1.5 if student else 3.0) if quick else (2.0 if student else 4.0),
          "gemm_n": 2048, "gemm_repeats": 2 if target else 1,
          "gemm_interleave": ["fp32"] + ([precision] if precision != "fp32" else [])}
  return spec


def measure(quick=False, all_combos=False, workdir=None, data_file=None):
  """Runs every measurement; returns the raw figures (what bench/run.py writes as JSON).

  Args:
    quick: fp32 training without XLA, fewer GEMM and serving repeats.
    all_combos: also bf16 and fp16 with XLA at dynamic padding.
    workdir: keep the prepared inputs here (default: a temporary directory, removed after).
    data_file: the waimai train.csv; None or missing: synthetic lengths.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  begun = time.time()
  keep = workdir is not None
  workdir = workdir or tempfile.mkdtemp(prefix="bert-bench-")
  os.makedirs(workdir, exist_ok=True)
  notes = []
  load_before = load_average()
  phases = {}

  def phase(name, started):
    phases[name] = time.time() - started
    return time.time()

  try:
    plan = [["fp32", 2048], ["bf16", 2048]] if quick else [
        ["fp32", 2048], ["fp32", 3072], ["bf16", 2048], ["fp16", 2048]]
    gemm_spec = {"plan": plan, "repeats": 3 if quick else 5, "seconds": 2 if quick else 3}
    log("GEMM peak ...")
    started = time.time()
    gemm_runs = [run_worker("gemm", gemm_spec)]
    started = phase("GEMM", started)

    log("Preparing data, checkpoints and exports in %s ..." % workdir)
    data_file = data_file if data_file and os.path.isfile(data_file) else None
    prepared = run_worker("prepare", {"workdir": workdir, "data_file": data_file})
    if "error" in prepared:
      raise SystemExit("prepare failed: %s" % prepared["error"])
    if not data_file:
      notes.append("**%s**" % prepared["source"])
    started = phase("prepare", started)

    combos, runs = measure_training(prepared, workdir, quick, all_combos)
    started = phase("training", started)
    gemm_runs.append(run_worker("gemm", dict(gemm_spec, plan=[["fp32", 2048], ["bf16", 2048]])))

    serving, serving_extra, serve_memory = measure_serving(prepared, quick)
    phase("serving", started)
  finally:
    if not keep:
      shutil.rmtree(workdir, ignore_errors=True)

  notes.append("Phases: %s." % ", ".join("%s %.0f s" % kv for kv in phases.items()))
  return {"quick": quick, "machine": cpu_description(), "cpus": os.cpu_count(),
          "prepared": prepared,
          "gemm_runs": gemm_runs, "combos": [list(c) for c in combos],
          "runs": [[list(c), results] for c, results in runs.items()], "serving": serving,
          "serving_extra": serving_extra, "serve_memory": serve_memory, "notes": notes,
          "load_before": load_before, "load_after": load_average(),
          "elapsed": time.time() - begun}


def measure_training(prepared, workdir, quick, all_combos):
  """Training runs of every (model, padding, precision, XLA) combination.

  Returns:
    (combos in order, {combo: [summarize_train result or {"error": ...}, ...]}).
  """
  precisions = ("fp32",) if quick else PRECISIONS
  xla_modes = ("off",) if quick else ("off", "scope")
  # XLA compiles every length bucket of dynamic padding (tens of seconds each on 2 cores):
  # only fp32 runs that way unless --all.
  combos = [(m, pad, prec, xla) for m in ("teacher", "student") for prec in precisions
            for xla in xla_modes for pad in ("fixed", "dynamic")
            if all_combos or not (xla != "off" and pad == "dynamic" and prec != "fp32")]
  if not quick:
    # XLA through TF_XLA_FLAGS instead of --use_xla's jit_scope, for comparison.
    combos.append(("teacher", "fixed", "fp32", "global"))
  runs = {}

  def train_once(combo):
    result = run_worker("train", train_spec(prepared, workdir, *combo, quick=quick),
                        {"TF_XLA_FLAGS": XLA_CPU_FLAG} if combo[3] == "global" else None,
                        timeout=300)
    if "error" in result:
      log("  train %s: FAILED %s" % (" ".join(map(str, combo)), result["error"][-300:]))
    else:
      result = summarize_train(result)
      log("  train %-7s %-7s %s XLA %-6s: %6.1f ex/s, %6.1f padded GFLOP/s, %5.0f MiB "
          "(%d steps, wall %.0f s)" % (combo + (result["examples_per_sec"],
                                                result["padded_gflops"], result["maxrss_mib"],
                                                result["steps"], result["wall_seconds"])))
    runs.setdefault(combo, []).append(result)

  log("Training (batch %d) ..." % BATCH_SIZE)
  for combo in combos:
    train_once(combo)
  # The fixed/dynamic pairs of the targets again, alternating.
  for _ in range(0 if quick else 1):
    for model in ("teacher", "student"):
      for padding in ("fixed", "dynamic"):
        train_once((model, padding, "fp32", "off"))
  return combos, runs


def measure_serving(prepared, quick):
  """Serving runs: every shape with teacher and student interleaved, then batch 8, seq 128 with
  students of other shapes and with one thread per request.

  Returns:
    (serving runs, extra runs, {"both" or model: peak RSS MiB}).
  """
  log("Serving ...")
  shapes = [(b, n) for n in SERVE_LENGTHS for b in SERVE_BATCHES]
  serve_spec = {"shapes": shapes, "vocab_size": prepared["vocab_size"], "warmup": 3,
                "min_requests": 12 if quick else 20, "max_requests": 300,
                "seconds": 0.3 if quick else 1.0}
  both = [[name, prepared["exports"][name]] for name in ("teacher", "student")]
  serving = [run_worker("serve", dict(serve_spec, models=both, profile=[8, 128],
                                      profile_runs=8 if quick else 15))]
  serve_memory = {}
  if quick:
    serve_memory["both"] = serving[0].get("maxrss_mib", float("nan"))
  else:
    for name, version_dir in both:
      solo = run_worker("serve", dict(serve_spec, models=[[name, version_dir]],
                                      min_requests=5, seconds=0.1, max_requests=10))
      serve_memory[name] = solo.get("maxrss_mib", float("nan"))
    serving.append(run_worker("serve", dict(serve_spec, models=both[::-1])))
  # Batch 8, seq 128 only: students of other widths and depths, then one thread per request.
  sweep = both + [[name, prepared["exports"][name]] for name in WIDTH_SWEEP]
  serving_extra = [run_worker("serve", dict(serve_spec, shapes=[[8, 128]], models=sweep,
                                            profile=[8, 128], profile_runs=5 if quick else 10)),
                   run_worker("serve", dict(serve_spec, shapes=[[8, 128]], models=both,
                                            threads=1))]
  return serving, serving_extra, serve_memory
