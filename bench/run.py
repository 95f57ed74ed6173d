#!/usr/bin/env python3
"""Performance benchmark: GEMM peak, training throughput, serving latency, peak memory.

    python bench/run.py [--quick | --all] [--output output/bench/perf.md]

Every measurement runs in its own subprocess (`--worker ...`), which reports its results and its
own peak resident memory (ru_maxrss). The parent only prepares the shared inputs (a character
vocab and TFRecords from ../shared/data/waimai/train.csv, untrained checkpoints and SavedModel
exports, all in a temporary work directory), schedules the workers in interleaved rounds and
writes the markdown report.

FLOPs are counted from the config with modeling.forward_flops_per_token (embeddings excluded,
attention included); a training step costs 3 × the forward pass. For dynamic padding the FLOPs
of the padded shapes actually run are counted, and the FLOPs of the real tokens (each example at
its own length) are shown next to them.
"""

import argparse
import json
import math
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

SHARED_DATA = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data", "waimai", "train.csv")
MODELS = {"teacher": os.path.join(REPO_ROOT, "model", "bert_config.json"),
          "student": os.path.join(REPO_ROOT, "model", "bert_config_student.json")}
# Students of other shapes, served beside the teacher at batch 8, seq 128 only: how much of the
# FLOP saving a student keeps depends on its width (narrow matmuls run slower per FLOP on CPU).
WIDTH_SWEEP = {"student_4x128": {"num_hidden_layers": 4},
               "student_1x256": {"hidden_size": 256, "num_attention_heads": 4,
                                 "intermediate_size": 1024}}
PRECISIONS = ("fp32", "bf16", "fp16")
SERVE_BATCHES = (1, 8, 32)
SERVE_LENGTHS = (32, 128)
BATCH_SIZE = 32
MAX_SEQ_LENGTH = 128
RESULT_PREFIX = "BENCH_RESULT "
# XLA on CPU: global_jit_level (what session_config(use_xla=True) sets) clusters nothing on CPU
# unless this flag is given too.
XLA_CPU_FLAG = "--tf_xla_cpu_global_jit"
# A batch shape's first SETTLED runs are not timed: XLA runs a new shape through TF's kernels
# once, then compiles it on its second run.
SETTLED = 2


def log(message):
  print(message, file=sys.stderr, flush=True)


def maxrss_mib():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def percentile(values, q):
  values = sorted(values)
  if not values:
    return float("nan")
  position = (len(values) - 1) * q / 100.0
  low, high = int(math.floor(position)), int(math.ceil(position))
  return values[low] + (values[high] - values[low]) * (position - low)


# ------------------------------------------------------------------------------------------------
# Workers (each runs in its own process)
# ------------------------------------------------------------------------------------------------

def _tf():
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf
  return tf


class Gemm(object):
  """A square n×n tf.matmul of variables in its own graph and session."""

  def __init__(self, tf, precision, n, session_config):
    tf1 = tf.compat.v1
    dtype = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}[precision]
    self.precision, self.n = precision, n
    graph = tf.Graph()
    with graph.as_default():
      init = tf1.random_normal_initializer(seed=1)
      a = tf1.get_variable("a", [n, n], dtype, initializer=init)
      b = tf1.get_variable("b", [n, n], dtype, initializer=init)
      self.product = tf.matmul(a, b).op  # fetched as an op: nothing is copied out
      initializer = tf1.global_variables_initializer()
    self.session = tf1.Session(graph=graph, config=session_config)
    self.session.run(initializer)
    self.session.run(self.product)

  def gflops(self):
    """GFLOP/s of one product."""
    t = time.perf_counter()
    self.session.run(self.product)
    return 2.0 * self.n ** 3 / (time.perf_counter() - t) / 1e9

  def close(self):
    self.session.close()


def worker_gemm(spec):
  """tf.matmul of square n×n variables in a graph session; GFLOP/s of each repeat."""
  tf = _tf()
  from bert import training
  results = []
  for name, n in spec["plan"]:
    gemm = Gemm(tf, name, n, training.session_config(False))
    gflops, started = [], time.time()
    while len(gflops) < spec["repeats"] or (len(gflops) < 2 * spec["repeats"] and
                                            time.time() - started < spec["seconds"]):
      gflops.append(gemm.gflops())
      if time.time() - started > 3 * spec["seconds"]:
        break
    gemm.close()
    results.append({"precision": name, "n": n, "gflops": gflops,
                    "median": statistics.median(gflops), "max": max(gflops)})
    log("  gemm %s n=%d: median %.1f GFLOP/s (%d repeats)" %
        (name, n, statistics.median(gflops), len(gflops)))
  return {"gemm": results}


def worker_train(spec):
  """Times training steps of the real path: input_fn over the TFRecord → model_fn → train_op."""
  tf = _tf()
  tf1 = tf.compat.v1
  from bert import classifier, classifier_data, modeling, training

  config = modeling.BertConfig.from_dict(spec["config"])
  built = time.time()
  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(1)
    input_fn = classifier_data.input_fn_builder(spec["record_file"], True, MAX_SEQ_LENGTH,
                                                padding=spec["padding"], num_labels=2, seed=1)
    model_fn = classifier.model_fn_builder(config, ["0", "1"], learning_rate=1e-4,
                                           num_train_steps=100000, num_warmup_steps=10,
                                           precision=spec["precision"])
    seen = {}

    def capturing_model_fn(features, labels, mode, params):
      seen.update(features)
      return model_fn(features, labels, mode, params)

    # The graph Trainer.train runs: input_fn → iterator → model_fn (jit-scoped with use_xla).
    trainer = training.Trainer(capturing_model_fn, spec["scratch_dir"], params={"seed": 1},
                               use_xla=spec["xla"] == "scope")
    model = trainer._build(input_fn, training.ModeKeys.TRAIN, BATCH_SIZE)
    init = tf1.global_variables_initializer()
    local_init = tf1.group(tf1.local_variables_initializer(), tf1.tables_initializer())
    fetches = {"train_op": model.train_op, "loss": model.loss, "summaries": model.summaries,
               "shape": tf.shape(seen["input_ids"]),
               "lengths": tf.reduce_sum(seen["input_mask"], axis=1)}
    graph.finalize()

  steps, per_token = [], {}
  with tf1.Session(graph=graph, config=training.session_config(spec["xla"] != "off")) as session:
    session.run(local_init)
    session.run(init)
    # Warm-up: at least `warmup` steps, and until two steps in a row had a batch shape already
    # run SETTLED times. XLA runs a new shape through TF's kernels the first time and compiles
    # it the second; those costs stay out of the timing (see summarize_train for later ones).
    counts, warm, settled, started = {}, 0, 0, time.time()
    while True:
      out = session.run(fetches)
      warm += 1
      shape = tuple(int(x) for x in out["shape"])
      settled = settled + 1 if counts.get(shape, 0) >= SETTLED else 0
      counts[shape] = counts.get(shape, 0) + 1
      if warm >= spec["warmup"] and settled >= 2:
        break
      if warm >= spec["warmup_max"] or time.time() - started > spec["warmup_seconds"]:
        break
    warmup_seconds = time.time() - started
    # Peak memory of the training run itself, before the interleaved GEMM's matrices exist.
    train_maxrss = maxrss_mib()
    gemms = [Gemm(tf, p, spec["gemm_n"], training.session_config(False))
             for p in spec["gemm_interleave"]]
    gemm_gflops = {g.precision: [] for g in gemms}
    windows = []
    started = time.time()
    # Windows of training steps alternate with GEMM repeats, so the training FLOP/s and the
    # GEMM FLOP/s they are compared with see the same machine load.
    while len(steps) < spec["steps"]:
      window_start = len(steps)
      window_started = time.time()
      while True:
        t = time.perf_counter()
        out = session.run(fetches)
        seconds = time.perf_counter() - t
        if not math.isfinite(float(out["loss"])):
          raise RuntimeError("loss is %s" % out["loss"])
        steps.append(step_record(config, seconds, out["shape"], out["lengths"], per_token))
        shape = tuple(steps[-1]["shape"])
        # A shape's first runs are timed but not trusted (see the warm-up and summarize_train).
        steps[-1]["settled"] = counts.get(shape, 0) >= SETTLED
        counts[shape] = counts.get(shape, 0) + 1
        if (len(steps) - window_start >= spec["window_min_steps"] and
            time.time() - window_started > spec["window_seconds"]) or len(steps) >= spec["steps"]:
          break
      window = {"first": window_start, "last": len(steps)}
      for gemm in gemms:
        values = [gemm.gflops() for _ in range(spec["gemm_repeats"])]
        gemm_gflops[gemm.precision].extend(values)
        window["gemm_" + gemm.precision] = statistics.median(values)
      windows.append(window)
      if len(steps) >= spec["min_steps"] and time.time() - started > spec["seconds"]:
        break
    for gemm in gemms:
      gemm.close()
  return {"steps": steps, "windows": windows, "gemm": gemm_gflops, "warmup_steps": warm,
          "warmup_seconds": warmup_seconds, "train_maxrss_mib": train_maxrss,
          "build_seconds": started - built - warmup_seconds}


def step_record(config, seconds, shape, lengths, per_token):
  """One timed step: its batch shape, real lengths and FLOPs (3 × forward, embeddings excluded)
  of the padded shape run and of the real tokens."""
  from bert import modeling
  batch, length = int(shape[0]), int(shape[1])
  lengths = [int(n) for n in lengths]
  for n in set([length] + lengths) - set(per_token):
    per_token[n] = modeling.forward_flops_per_token(config, n)
  return {"seconds": seconds, "shape": [batch, length], "lengths": lengths,
          "padded_flops": 3.0 * batch * length * per_token[length],
          "real_flops": sum(3.0 * n * per_token[n] for n in lengths)}


def worker_serve(spec):
  """Loads each export the way a server does and times single requests, models interleaved."""
  tf = _tf()
  tf1 = tf.compat.v1
  import numpy as np

  models = []
  threads = spec.get("threads")  # None: TF's default pools (all cores for each request)
  session_config = tf1.ConfigProto(intra_op_parallelism_threads=threads or 0,
                                   inter_op_parallelism_threads=threads or 0)
  for name, version_dir in spec["models"]:
    graph = tf.Graph()
    session = tf1.Session(graph=graph, config=session_config)
    with graph.as_default():
      meta_graph = tf1.saved_model.loader.load(session, ["serve"], version_dir)
    signature = meta_graph.signature_def["serving_default"]
    inputs = {k: graph.get_tensor_by_name(v.name) for k, v in signature.inputs.items()}
    output = graph.get_tensor_by_name(signature.outputs["probabilities"].name)
    models.append((name, session, inputs, output))

  rng = np.random.RandomState(1)
  results = []
  for batch, seq in spec["shapes"]:
    ids = rng.randint(5, spec["vocab_size"], size=[batch, seq]).astype(np.int32)
    ids[:, 0] = 2
    feed_arrays = {"input_ids": ids, "input_mask": np.ones_like(ids),
                   "segment_ids": np.zeros_like(ids)}
    feeds = [{inputs[k]: feed_arrays[k] for k in inputs} for _, _, inputs, _ in models]
    for (_, session, _, output), feed in zip(models, feeds):
      for _ in range(spec["warmup"]):
        session.run(output, feed)
    latencies = [[] for _ in models]
    started = time.time()
    while True:
      for index, ((_, session, _, output), feed) in enumerate(zip(models, feeds)):
        t = time.perf_counter()
        session.run(output, feed)
        latencies[index].append(time.perf_counter() - t)
      n = len(latencies[0])
      if n >= spec["max_requests"] or (n >= spec["min_requests"] and
                                       time.time() - started > spec["seconds"]):
        break
    for (name, _, _, _), values in zip(models, latencies):
      results.append({"model": name, "batch": batch, "seq": seq, "n": len(values),
                      "threads": threads,
                      "median_ms": 1e3 * statistics.median(values),
                      "p95_ms": 1e3 * percentile(values, 95), "min_ms": 1e3 * min(values)})
      log("  serve %s batch %d seq %d: median %.2f ms p95 %.2f ms (%d requests)" %
          (name, batch, seq, results[-1]["median_ms"], results[-1]["p95_ms"], len(values)))
  profile = {}
  if spec.get("profile"):
    batch, seq = spec["profile"]
    ids = rng.randint(5, spec["vocab_size"], size=[batch, seq]).astype(np.int32)
    arrays = {"input_ids": ids, "input_mask": np.ones_like(ids), "segment_ids": np.zeros_like(ids)}
    for name, session, inputs, output in models:
      profile[name] = op_time_profile(tf, session, output,
                                      {inputs[k]: arrays[k] for k in inputs}, spec["profile_runs"])
  for _, session, _, _ in models:
    session.close()
  return {"serving": results, "profile": profile}


def op_time_profile(tf, session, output, feed, runs):
  """Each op's fastest time over traced runs (robust to other load), summed by kind."""
  tf1 = tf.compat.v1
  fastest, kinds = {}, {}
  for _ in range(runs):
    metadata = tf1.RunMetadata()
    session.run(output, feed, options=tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE),
                run_metadata=metadata)
    for device in metadata.step_stats.dev_stats:
      for node in device.node_stats:
        label = node.timeline_label
        kinds[node.node_name] = label.split(" = ")[1].split("(")[0] if " = " in label else "?"
        fastest[node.node_name] = min(fastest.get(node.node_name, float("inf")),
                                      node.all_end_rel_micros / 1e3)
  matmul = sum(t for n, t in fastest.items() if "MatMul" in kinds[n])
  # Batched matmuls are attention's scores and context; the others are the dense layers.
  attention = sum(t for n, t in fastest.items() if "BatchMatMul" in kinds[n])
  return {"ops": len(fastest), "total_ms": sum(fastest.values()), "matmul_ms": matmul,
          "attention_matmul_ms": attention}


def worker_prepare(spec):
  """Vocab, TFRecord of unpadded features, untrained checkpoints and exports."""
  tf = _tf()
  tf1 = tf.compat.v1
  from bert import classifier, classifier_data, export, modeling, tokenization

  workdir = spec["workdir"]
  vocab_file = os.path.join(workdir, "vocab.txt")
  info = {}
  if spec["data_file"]:
    import importlib.util
    module_spec = importlib.util.spec_from_file_location(
        "build_vocab", os.path.join(REPO_ROOT, "scripts", "build_vocab.py"))
    build_vocab = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(build_vocab)
    texts = build_vocab.read_texts([spec["data_file"]])
    vocab = build_vocab.build_vocab(texts, min_count=2, do_lower_case=True)
    build_vocab.write_vocab(vocab_file, vocab)
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
    processor = classifier_data.EmotionProcessor()
    examples = processor.get_examples(os.path.dirname(spec["data_file"]), "train")
    features = classifier_data.convert_examples_to_features(examples, ["0", "1"],
                                                            MAX_SEQ_LENGTH, tokenizer)
    info["source"] = "%s (%d examples, char vocab of %d tokens, min count 2)" % (
        spec["data_file"], len(features), len(vocab))
    char_lengths = [len(e.text_a) for e in examples]
  else:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + ["tok%d" % i for i in range(4438)]
    with open(vocab_file, "w", encoding="utf-8") as f:
      f.write("\n".join(vocab) + "\n")
    rng = random.Random(1)
    # Log-normal character lengths, median 46 (the waimai reviews), one token per character.
    char_lengths = [max(1, min(400, int(round(rng.lognormvariate(math.log(46), 0.75)))))
                    for _ in range(9984)]
    features = [classifier_data.InputFeatures(
        [2] + [rng.randrange(5, len(vocab)) for _ in range(min(n, MAX_SEQ_LENGTH - 2))] + [3],
        [0] * (min(n, MAX_SEQ_LENGTH - 2) + 2), rng.randrange(2)) for n in char_lengths]
    info["source"] = ("SYNTHETIC lengths (../shared/data/waimai/train.csv not found): 9984 "
                      "log-normal lengths, median 46 characters")
  lengths = [len(f.input_ids) for f in features]
  info.update({"vocab_file": vocab_file, "vocab_size": len(vocab),
               "median_chars": statistics.median(char_lengths),
               "median_tokens": statistics.median(lengths),
               "mean_tokens": statistics.mean(lengths),
               "truncated": sum(1 for n in lengths if n >= MAX_SEQ_LENGTH)})
  record_file = os.path.join(workdir, "train.tf_record")
  classifier_data.write_records(record_file,
                                (classifier_data.feature_to_example(f) for f in features),
                                {"bench": info["source"]}, {})
  info["record_file"] = record_file

  info["exports"], info["configs"], info["flops_per_token"] = {}, {}, {}
  configs = {name: modeling.BertConfig.from_json_file(f) for name, f in MODELS.items()}
  for name, overrides in WIDTH_SWEEP.items():
    configs[name] = modeling.BertConfig.from_dict(dict(configs["student"].to_dict(), **overrides))
  for name, config in configs.items():
    config.vocab_size = len(vocab)
    info["configs"][name] = config.to_dict()
    info["flops_per_token"][name] = {str(n): modeling.forward_flops_per_token(config, n)
                                     for n in SERVE_LENGTHS}
    graph = tf.Graph()
    with graph.as_default():
      tf1.set_random_seed(1)
      ids = tf1.placeholder(tf.int32, [None, None])
      classifier.classifier_logits(config, False, ids, ids, ids, 2)
      saver = tf1.train.Saver()
      with tf1.Session(graph=graph) as session:
        session.run(tf1.global_variables_initializer())
        checkpoint = saver.save(session, os.path.join(workdir, "ckpt_" + name, "model.ckpt"))
    info["exports"][name] = export.export_saved_model(
        os.path.join(workdir, "export_" + name), checkpoint, config, ["0", "1"], vocab_file,
        True, MAX_SEQ_LENGTH)
  return info


WORKERS = {"gemm": worker_gemm, "train": worker_train, "serve": worker_serve,
           "prepare": worker_prepare}


def worker_main(kind, spec_json):
  spec = json.loads(spec_json)
  result = WORKERS[kind](spec)
  result["maxrss_mib"] = maxrss_mib()
  sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
  sys.stdout.flush()


# ------------------------------------------------------------------------------------------------
# Parent: scheduling
# ------------------------------------------------------------------------------------------------

def run_worker(kind, spec, env_extra=None, timeout=900):
  env = dict(os.environ)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  env.update(env_extra or {})
  started = time.time()
  try:
    process = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", kind,
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


XLA_LABELS = {"off": "off", "scope": "on", "global": "global"}


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


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true",
                      help="fp32 training without XLA, fewer GEMM and serving repeats "
                      "(about 2 minutes on an idle 2-core machine)")
  parser.add_argument("--all", action="store_true",
                      help="also bf16 and fp16 with XLA at dynamic padding (about 5 minutes "
                      "more: XLA compiles each length bucket)")
  parser.add_argument("--output", default=os.path.join("output", "bench", "perf.md"))
  parser.add_argument("--workdir", default=None, help="keep the prepared inputs here")
  parser.add_argument("--data", default=SHARED_DATA, help="waimai train.csv")
  parser.add_argument("--render", default=None,
                      help="only rewrite the report from a previous run's .json")
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--spec", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    return worker_main(args.worker, args.spec)
  if args.render:
    with open(args.render, encoding="utf-8") as f:
      return write_report(json.load(f), args.output)

  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  begun = time.time()
  quick = args.quick
  workdir = args.workdir or tempfile.mkdtemp(prefix="bert-bench-")
  os.makedirs(workdir, exist_ok=True)
  notes = []
  load_before = load_average()

  try:
    # -- GEMM peak first ------------------------------------------------------------------------
    plan = [["fp32", 2048], ["bf16", 2048]] if quick else [
        ["fp32", 2048], ["fp32", 3072], ["bf16", 2048], ["fp16", 2048]]
    gemm_spec = {"plan": plan, "repeats": 3 if quick else 5, "seconds": 2 if quick else 3}
    log("GEMM peak ...")
    phases, phase_started = {}, time.time()
    gemm_runs = [run_worker("gemm", gemm_spec)]
    phases["GEMM"] = time.time() - phase_started
    phase_started = time.time()

    log("Preparing data, checkpoints and exports in %s ..." % workdir)
    data_file = args.data if os.path.isfile(args.data) else None
    prepared = run_worker("prepare", {"workdir": workdir, "data_file": data_file})
    if "error" in prepared:
      raise SystemExit("prepare failed: %s" % prepared["error"])
    if not data_file:
      notes.append("**%s**" % prepared["source"])
    phases["prepare"] = time.time() - phase_started
    phase_started = time.time()

    # -- training -------------------------------------------------------------------------------
    precisions = ("fp32",) if quick else PRECISIONS
    xla_modes = ("off",) if quick else ("off", "scope")
    # XLA compiles every length bucket of dynamic padding (tens of seconds each on 2 cores):
    # only fp32 runs that way unless --all.
    combos = [(m, pad, prec, xla) for m in ("teacher", "student") for prec in precisions
              for xla in xla_modes for pad in ("fixed", "dynamic")
              if args.all or not (xla != "off" and pad == "dynamic" and prec != "fp32")]
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
    # The fixed/dynamic pairs of the targets again, alternating, then the GEMM peak again.
    for _ in range(0 if quick else 1):
      for model in ("teacher", "student"):
        for padding in ("fixed", "dynamic"):
          train_once((model, padding, "fp32", "off"))
    phases["training"] = time.time() - phase_started
    phase_started = time.time()
    gemm_runs.append(run_worker("gemm", dict(gemm_spec, plan=[["fp32", 2048], ["bf16", 2048]])))

    # -- serving --------------------------------------------------------------------------------
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
    phases["serving"] = time.time() - phase_started
  finally:
    if not args.workdir:
      shutil.rmtree(workdir, ignore_errors=True)

  notes.append("Phases: %s." % ", ".join("%s %.0f s" % kv for kv in phases.items()))
  data = {"quick": quick, "prepared": prepared, "gemm_runs": gemm_runs,
          "combos": [list(c) for c in combos],
          "runs": [[list(c), results] for c, results in runs.items()], "serving": serving,
          "serving_extra": serving_extra,
          "serve_memory": serve_memory, "notes": notes, "load_before": load_before,
          "load_after": load_average(), "elapsed": time.time() - begun}
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  with open(os.path.splitext(args.output)[0] + ".json", "w", encoding="utf-8") as f:
    json.dump(data, f, indent=1)
  return write_report(data, args.output)


def write_report(data, output):
  report = format_report(
      data["quick"], data["prepared"], data["gemm_runs"], [tuple(c) for c in data["combos"]],
      {tuple(c): results for c, results in data["runs"]}, data["serving"],
      data.get("serving_extra", []),
      data["serve_memory"], data["notes"], data["load_before"], data["load_after"],
      data["elapsed"])
  print(report)
  with open(output, "w", encoding="utf-8") as f:
    f.write(report)
  log("Wrote %s (raw figures in %s.json)" % (output, os.path.splitext(output)[0]))
  return 0


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------

def _best(results, key="examples_per_sec"):
  good = [r for r in results if "error" not in r]
  return max(good, key=lambda r: r.get(key, r["examples_per_sec"])) if good else None


def _normalized(result):
  """Examples/s per GFLOP/s of the fp32 GEMM timed alongside: comparable across load."""
  return result["examples_per_sec"] / result["gemm_fp32"] if "gemm_fp32" in result else None


def gemm_peaks(gemm_runs):
  """{precision: best median GFLOP/s over sizes and runs}, and the table rows."""
  peaks, rows = {}, []
  for index, run in enumerate(gemm_runs):
    if "error" in run:
      rows.append("| %d | failed: %s | | | | |" % (index + 1, _clean(run["error"])))
      continue
    for r in run["gemm"]:
      peaks[r["precision"]] = max(peaks.get(r["precision"], 0.0), r["median"])
      rows.append("| %d | %s | %d | %.1f | %.1f | %d |" %
                  (index + 1, r["precision"], r["n"], r["median"], r["max"], len(r["gflops"])))
  return peaks, rows


def _clean(text, width=160):
  return " ".join(str(text).split())[-width:].replace("|", "/")


def _pct(value):
  return "-" if value is None else "%.0f %%" % (100 * value)


def _ratio(value, reference):
  return _pct(value / reference) if reference else "-"


def serving_rows(serving, prepared):
  """{(batch, seq): (teacher run medians, student run medians, p95s...)} merged over runs."""
  merged = {}
  for run in serving:
    if "error" in run:
      continue
    for r in run["serving"]:
      merged.setdefault((r["batch"], r["seq"]), {}).setdefault(r["model"], []).append(r)
  return merged


def format_report(quick, prepared, gemm_runs, combos, runs, serving, serving_extra, serve_memory,
                  notes, load_before, load_after, elapsed):
  lines = []
  add = lines.append
  add("# Performance benchmark%s" % (" (--quick)" if quick else ""))
  add("")
  add("Machine: %s, %d CPUs; load average %.1f before, %.1f after (other jobs share this "
      "machine); the run took %.0f s." % (cpu_description(), os.cpu_count(), load_before[0],
                                          load_after[0], elapsed))
  add("Data: %s; median %.0f characters, %.0f tokens with [CLS]/[SEP] (mean %.1f); %d examples "
      "reach %d tokens." % (prepared["source"], prepared["median_chars"],
                            prepared["median_tokens"], prepared["mean_tokens"],
                            prepared["truncated"], MAX_SEQ_LENGTH))
  for note in notes:
    add(note)
  add("")

  peaks, gemm_rows = gemm_peaks(gemm_runs)
  add("## GEMM peak: tf.matmul of n×n variables in a graph session")
  add("")
  add("Run 1 before everything, run 2 after training.")
  add("")
  add("| run | precision | n | median GFLOP/s | best GFLOP/s | repeats |")
  add("|---|---|---|---|---|---|")
  lines.extend(gemm_rows)
  add("")
  add("Peak used below (best median over sizes and runs): %s." %
      ", ".join("%s %.1f GFLOP/s" % (p, peaks[p]) for p in PRECISIONS if p in peaks))
  add("")

  add("## Training, batch %d: TFRecord → input_fn → Trainer's model_fn graph → train_op" %
      BATCH_SIZE)
  add("")
  add("FLOPs = 3 × forward (modeling.forward_flops_per_token: embeddings excluded, attention "
      "included) of the padded shapes run; *real* counts each example at its own length. "
      "Dynamic padding = length buckets (classifier_data). XLA *on* = `--use_xla` (the train "
      "step built in a jit_scope); *global* = session global_jit_level with TF_XLA_FLAGS=%s. "
      "A step whose batch shape had run fewer than %d times (a rare bucket's first runs; XLA "
      "compiles a shape on its second run) counts at that shape's steady time (*unsettled* "
      "steps). *vs GEMM alongside*: the run's FLOP/s divided by a 2048² GEMM timed between its "
      "step windows in the same process, median over windows: the load-independent measure "
      "of efficiency, used to pick each row's best run and for the comparisons below. Peak "
      "RSS: ru_maxrss of the run's process before its GEMM check." % (XLA_CPU_FLAG, SETTLED))
  add("")
  add("| model | padding | precision | XLA | ex/s | step ms | padded GFLOP/s | % fp32 peak | "
      "% own peak | vs fp32 GEMM alongside | vs own GEMM alongside | real GFLOP/s | "
      "padded / real tokens | peak RSS MiB | runs: ex/s (timed steps, unsettled) |")
  add("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
  best = {}
  for combo in combos:
    model, padding, precision, xla = combo
    results = runs.get(combo, [])
    b = best[combo] = _best(results, "share_fp32")
    if b is None:
      error = next((r["error"] for r in results if "error" in r), "not run")
      add("| %s | %s | %s | %s | failed: %s | | | | | | | | | | |" %
          (model, padding, precision, XLA_LABELS[xla], _clean(error)))
      continue
    add("| %s | %s | %s | %s | %.1f | %.0f | %.1f | %s | %s | %s | %s | %.1f | %.2f | %.0f | %s |"
        % (model, padding, precision, XLA_LABELS[xla], b["examples_per_sec"], b["step_ms"],
           b["padded_gflops"], _ratio(b["padded_gflops"], peaks.get("fp32")),
           _ratio(b["padded_gflops"], peaks.get(precision)), _pct(b.get("share_fp32")),
           _pct(b.get("share_" + precision)), b["real_gflops"], b["padding_overhead"],
           b["maxrss_mib"], ", ".join(
               "%.1f (%d, %d)" % (r["examples_per_sec"], r["steps"], r["unsettled_steps"])
               if "error" not in r else "failed" for r in results)))
  add("")

  add("## Serving: exported SavedModel loaded with tf.compat.v1.saved_model.loader")
  add("")
  if "both" in serve_memory:
    memory = "both models in one process (load + all shapes): %.0f MiB" % serve_memory["both"]
  else:
    memory = ("each model alone in a process (load + all shapes): teacher %.0f MiB, student "
              "%.0f MiB" % (serve_memory.get("teacher", float("nan")),
                            serve_memory.get("student", float("nan"))))
  add("One session.run per request (random ids, full mask), default session config; teacher "
      "and student requests alternate in one process (%d run%s, the second loading the models "
      "in the other order; medians over runs). Peak RSS, %s. FLOP ratio: "
      "forward_flops_per_token of teacher / student." % (
          len(serving), "s" if len(serving) > 1 else "", memory))
  add("")
  add("| batch | seq | teacher median ms | teacher p95 ms | student median ms | student p95 ms | "
      "student speedup | FLOP ratio | speedup / FLOP ratio |")
  add("|---|---|---|---|---|---|---|---|---|")
  serve_ratio = {}
  merged = serving_rows(serving, prepared)
  for (batch, seq) in sorted(merged, key=lambda k: (k[1], k[0])):
    t, s = merged[(batch, seq)].get("teacher"), merged[(batch, seq)].get("student")
    if not t or not s:
      continue
    t_med = statistics.median(r["median_ms"] for r in t)
    s_med = statistics.median(r["median_ms"] for r in s)
    flop_ratio = (prepared["flops_per_token"]["teacher"][str(seq)] /
                  prepared["flops_per_token"]["student"][str(seq)])
    speedup = t_med / s_med
    serve_ratio[(batch, seq)] = (speedup, flop_ratio)
    add("| %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f× | %.2f× | %.2f |" % (
        batch, seq, t_med, statistics.median(r["p95_ms"] for r in t), s_med,
        statistics.median(r["p95_ms"] for r in s), speedup, flop_ratio, speedup / flop_ratio))
  for run in serving:
    if "error" in run:
      add("")
      add("Serving run failed: %s" % _clean(run["error"], 400))
  profile = next((run["profile"] for run in serving if run.get("profile")), None)
  if profile and "teacher" in profile and "student" in profile:
    t, s = profile["teacher"], profile["student"]
    add("")
    add("Where the time goes at batch 8, seq 128 (each op's fastest time over traced requests, "
        "summed; robust to other load): teacher %.1f ms in %d ops, of which matmuls %.1f ms; "
        "student %.1f ms in %d ops, of which matmuls %.1f ms. Ratios: all ops %.2f×, matmuls "
        "alone %.2f×, FLOPs %.2f×." % (
            t["total_ms"], t["ops"], t["matmul_ms"], s["total_ms"], s["ops"], s["matmul_ms"],
            t["total_ms"] / s["total_ms"], t["matmul_ms"] / s["matmul_ms"],
            prepared["flops_per_token"]["teacher"]["128"] /
            prepared["flops_per_token"]["student"]["128"]))
  add("")
  add_student_shapes(add, serving_extra, prepared)

  add("## Targets")
  add("")
  add("| target | measured | threshold | result |")
  add("|---|---|---|---|")

  def verdict(ok):
    return "**PASS**" if ok else "**FAIL**"

  fixed32 = best.get(("teacher", "fixed", "fp32", "off"))
  if fixed32 and "fp32" in peaks:
    share = fixed32["padded_gflops"] / peaks["fp32"]
    add("| teacher training, fixed 128, fp32: FLOP/s / fp32 GEMM peak | %.1f / %.1f GFLOP/s = "
        "%s | ≥ 50 %% | %s |" % (fixed32["padded_gflops"], peaks["fp32"], _pct(share),
                                 verdict(share >= 0.5)))
    if "share_fp32" in fixed32:
      add("| the same against the fp32 GEMM timed alongside it (same load) | %s (GEMM %.1f "
          "GFLOP/s) | ≥ 50 %% | %s |" % (_pct(fixed32["share_fp32"]), fixed32["gemm_fp32"],
                                         verdict(fixed32["share_fp32"] >= 0.5)))
  fastest = [(c, b) for c, b in best.items()
             if b and c[0] == "teacher" and c[1] == "fixed" and "share_fp32" in b]
  if fastest:
    # Fastest = most examples per unit of machine speed (fp32 GEMM alongside).
    combo, b = max(fastest, key=lambda cb: _normalized(cb[1]))
    precision = combo[2]
    if precision in peaks:
      share = b["padded_gflops"] / peaks[precision]
      own = b.get("share_" + precision)
      add("| teacher training, fixed 128, fastest setting (%s, XLA %s): FLOP/s / %s GEMM peak "
          "| %.1f / %.1f GFLOP/s = %s (against the %s GEMM alongside: %s) | ≥ 50 %% | %s |" % (
              precision, XLA_LABELS[combo[3]], precision, b["padded_gflops"], peaks[precision],
              _pct(share), precision, _pct(own), verdict(share >= 0.5)))
  for model in ("teacher", "student"):
    f_runs = runs.get((model, "fixed", "fp32", "off"), [])
    d_runs = runs.get((model, "dynamic", "fp32", "off"), [])
    pairs = [(fr, dr) for fr, dr in zip(f_runs, d_runs) if "error" not in fr and "error" not in dr]
    if pairs:
      raw = [dr["examples_per_sec"] / fr["examples_per_sec"] for fr, dr in pairs]
      normalized = [_normalized(dr) / _normalized(fr) for fr, dr in pairs]
      ratio = statistics.median(normalized)
      add("| %s training, fp32: dynamic padding / fixed 128, examples/s | %.2f× per unit of "
          "GEMM speed alongside (median of %d back-to-back pairs: %s; raw examples/s ratios %s) "
          "| ≥ 1.8× | %s |" % (model, ratio, len(pairs),
                               ", ".join("%.2f×" % r for r in normalized),
                               ", ".join("%.2f×" % r for r in raw), verdict(ratio >= 1.8)))
  if (8, 128) in serve_ratio:
    speedup, flop_ratio = serve_ratio[(8, 128)]
    add("| serving, batch 8, seq 128: student speedup / FLOP ratio | %.2f× / %.2f× = %.2f | "
        "≥ 0.9 | %s |" % (speedup, flop_ratio, speedup / flop_ratio,
                          verdict(speedup >= 0.9 * flop_ratio)))
  add("")

  add("## What the figures say about defaults")
  add("")
  add("Ratios of examples/s per unit of the fp32 GEMM speed timed alongside each run (so other "
      "load cancels), raw examples/s ratio in brackets; > 1 means faster than the default.")
  add("")

  gains = {}

  def compare(model, padding, precision, xla, what):
    base = best.get((model, padding, "fp32", "off"))
    other = best.get((model, padding, precision, xla))
    if not (base and other and "gemm_fp32" in base and "gemm_fp32" in other):
      return
    gain = _normalized(other) / _normalized(base)
    gains.setdefault((precision, xla), []).append((padding, gain))
    add("- %s, %s padding: %s = %.2f× (%.2f×)" % (
        model, padding, what, gain, other["examples_per_sec"] / base["examples_per_sec"]))

  for model in ("teacher", "student"):
    f, d = best.get((model, "fixed", "fp32", "off")), best.get((model, "dynamic", "fp32", "off"))
    if f and d and "gemm_fp32" in f and "gemm_fp32" in d:
      add("- %s: dynamic padding / fixed 128 = %.2f× (%.2f×)" % (
          model, _normalized(d) / _normalized(f), d["examples_per_sec"] / f["examples_per_sec"]))
    for padding in ("fixed", "dynamic"):
      for precision in precisions_in(combos):
        if precision != "fp32":
          compare(model, padding, precision, "off", "%s / fp32" % precision)
      for precision in precisions_in(combos):
        for xla in ("scope", "global"):
          compare(model, padding, precision, xla, "%s with XLA %s / fp32 without" %
                  (precision, XLA_LABELS[xla]))
  add("")
  dynamic = [_normalized(best[(m, "dynamic", "fp32", "off")]) /
             _normalized(best[(m, "fixed", "fp32", "off")]) for m in ("teacher", "student")
             if best.get((m, "dynamic", "fp32", "off")) and best.get((m, "fixed", "fp32", "off"))]
  if dynamic:
    add("Defaults: padding — %s." % ("keep `--padding dynamic`" if min(dynamic) > 1 else
                                    "dynamic padding is not faster everywhere here"))
  # A setting earns a default only if it is clearly faster in every comparison made, the
  # default (dynamic) padding included.
  for (precision, xla), measured in sorted(gains.items()):
    what = "%s%s" % (precision, "" if xla == "off" else " with XLA %s" % XLA_LABELS[xla])
    values = [gain for _, gain in measured]
    if min(values) < 1.1:
      verdict_text = "keep it off by default"
    elif "dynamic" not in {padding for padding, _ in measured}:
      verdict_text = ("faster at fixed padding only, not measured with the default dynamic "
                      "padding: keep it off by default")
    else:
      verdict_text = "worth making the default"
    add("Defaults: %s — %.2f× to %.2f× of fp32 without XLA → %s." % (
        what, min(values), max(values), verdict_text))
  add("")
  return "\n".join(lines) + "\n"


def add_student_shapes(add, serving_extra, prepared):
  """Batch 8, seq 128: the speedup / FLOP ratio of students of other shapes, and one thread."""
  rows = [r for run in serving_extra if "error" not in run for r in run["serving"]]
  teacher = {r["threads"]: r["median_ms"] for r in rows if r["model"] == "teacher"}
  if not rows or not teacher:
    return
  profile = next((run["profile"] for run in serving_extra if run.get("profile")), {})
  flops = {name: f["128"] for name, f in prepared["flops_per_token"].items()}
  add("### Batch 8, seq 128: students of other shapes, and one thread per request")
  add("")
  add("Same process, requests interleaved with the teacher's. *threads 1*: intra- and inter-op "
      "pools of one thread (each request on one core, as a server handling concurrent requests "
      "would run). Op time as above, split into dense-layer matmuls, attention's batched "
      "matmuls and everything else.")
  add("")
  add("| model | layers × hidden | threads | median ms | speedup vs teacher | FLOP ratio | "
      "speedup / FLOP ratio | op ms: dense matmul / attention matmul / other |")
  add("|---|---|---|---|---|---|---|---|")
  for r in rows:
    config = prepared["configs"][r["model"]]
    speedup = teacher[r["threads"]] / r["median_ms"]
    ratio = flops["teacher"] / flops[r["model"]]
    ops = profile.get(r["model"]) if r["threads"] is None else None
    split = "–"
    if ops and "attention_matmul_ms" in ops:
      dense = ops["matmul_ms"] - ops["attention_matmul_ms"]
      split = "%.1f / %.1f / %.1f" % (dense, ops["attention_matmul_ms"],
                                      ops["total_ms"] - ops["matmul_ms"])
    add("| %s | %d × %d | %s | %.2f | %.2f× | %.2f× | %.2f | %s |" % (
        r["model"], config["num_hidden_layers"], config["hidden_size"], r["threads"] or "all",
        r["median_ms"], speedup, ratio, speedup / ratio, split))
  add("")


def precisions_in(combos):
  return [p for p in PRECISIONS if any(c[2] == p for c in combos)]


if __name__ == "__main__":
  sys.exit(main())
