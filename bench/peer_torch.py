#!/usr/bin/env python3
"""This toolkit against Hugging Face transformers on PyTorch: same shapes, same run, interleaved.

    python bench/peer_torch.py [--rounds 7] [--quick] [--peer_python /work/peer-venv/bin/python]

Ours: the graph-mode TensorFlow model, training as the trainer builds it (classifier.model_fn
through Trainer.build_train_graph: Adam with weight decay, clipping, the summaries fetched each
step; `--precision=fp32`, and bf16 as `--precision=auto` trains it on a bf16 CPU at
fixed-length batches, with its elementwise ops compiled by XLA (--xla_elementwise), and without
them) and serving through an exported SavedModel loaded the way
tensorflow_model_server holds it (bert/loaded_export.py: its own graph and session, in a process
whose threads are those the exports record, as scripts/serve.sh passes them to the server; a
request is one Session call of the serving_default signature: int32 arrays in, probabilities
out). Theirs:
BertForSequenceClassification of the same config in eager PyTorch (`sdpa` attention; AdamW,
clipping, bf16 as torch.autocast(cpu, bfloat16); serving under torch.inference_mode(), fp32),
in bench/peer_torch_worker.py run by the peer environment's python, which holds PyTorch and
transformers (not dependencies of this toolkit; see the README). Without it the PyTorch column
is left out and the report says why.

Each side runs in worker processes of its own (ours with this python: `--worker`; our training
and our serving in separate ones, as TensorFlow's intra-op pool is made once per process),
driven over stdin/stdout from here, so neither framework shares a process with the other and the two
alternate: in every round each variant runs on the same inputs (round r's training batch; one
fixed batch per serving shape), in an order rotated from round to round. The workers time
themselves (time.perf_counter around each step or request); both get the same thread count.
A row's figure is the median over rounds of each round's value (training: examples/s of the
round's steps; serving: the median latency of the round's requests); its ratio is the median of
the per-round ratios, their time / our time (> 1: ours is faster), the range beside it.
A third worker serves our exports with XLA auto-clustering (bert/export_layout.py's
XLA_SERVING_FLAGS in its environment, as `scripts/serve.sh XLA=1` runs tensorflow_model_server;
a few more warm-up requests, as it compiles each shape on one of its first runs); its ratio is
their time / its time. Where the exports record one thread per op (2-core CPUs, models up to
256 wide), another serves them under TensorFlow's default pool (`INTRA_OP_THREADS=0
scripts/serve.sh`), in its own table: what that recording gains or costs on this CPU.
Weights are random (seed 1): only time is measured. Writes output/bench/peer.md and the raw
figures beside it (peer.json).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

from bench import markdown, perf_workers  # noqa: E402
from bench.peer_torch_worker import REPLY_PREFIX, command_loop  # noqa: E402
from bert import export_layout, hardware  # noqa: E402

PEER_WORKER = os.path.join(REPO_ROOT, "bench", "peer_torch_worker.py")
DEFAULT_PEER_PYTHON = "/work/peer-venv/bin/python"
TRAIN_MODEL = "teacher"
TRAIN_PRECISIONS = ("fp32", "bf16")
# Ours only: each precision with the elementwise XLA clusters off, against its row as
# --xla_elementwise=auto runs it at fixed-length batches (every example here is train_seq tokens:
# one shape).
PLAIN = {p: p + "_no_elementwise_xla" for p in TRAIN_PRECISIONS}
PLAIN_VARIANTS = tuple(PLAIN.values())
SIDES = ("ours", "ours_pool", "ours_xla", "theirs")
# ours_pool: the same exports under TensorFlow's default intra-op pool, where they record one
# thread per op (`INTRA_OP_THREADS=0 scripts/serve.sh`): what that recording gains on this CPU.
TRAINING_SIDES = ("ours", "theirs")
# Our training runs in a process of its own, which also makes the exports (once): TensorFlow's
# intra-op pool is made once per process, and the serving workers give the exports the threads
# they record (serving_cpu), as scripts/serve.sh sets them.
OURS_TRAINING = "ours_training"
XLA_WARMUP = 8  # auto-clustering compiles a shape lazily, on one of its first runs


def base_precision(variant):
  """The --precision of a training variant (fp32, bf16, or one of PLAIN's)."""
  return variant.split("_")[0]


FULL = {"rounds": 7, "train_batch": perf_workers.BATCH_SIZE,
        "train_seq": perf_workers.MAX_SEQ_LENGTH, "train_steps": 3, "train_warmup": 3,
        "serve_shapes": [[b, n] for n in perf_workers.SERVE_LENGTHS
                         for b in perf_workers.SERVE_BATCHES],
        "serve_warmup": 3, "serve_seconds": 0.5, "min_requests": 5, "max_requests": 50,
        "settle": 0.05}
# settle: a pause before each timed block, so that the threads of the side that ran before are
# asleep (OpenMP and Eigen pools spin a while after their work) and do not take the next side's
# cores.
# A smoke run: the same code paths at tiny sizes.
QUICK = {"rounds": 2, "train_batch": 4, "train_seq": 32, "train_steps": 1, "train_warmup": 1,
         "serve_shapes": [[1, 32], [8, 32]], "serve_warmup": 2, "serve_seconds": 0.05,
         "min_requests": 3, "max_requests": 10, "settle": 0.05}


def log(message):
  print(message, file=sys.stderr, flush=True)


# -- the driver's side of a worker --------------------------------------------------------------


class WorkerError(RuntimeError):
  pass


class Worker(object):
  """A worker process answering command_loop's commands; its stderr goes to a log file."""

  def __init__(self, name, argv, log_file, env_extra=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env_extra or {}))
    self.name, self.log_file = name, log_file
    self._stderr = open(log_file, "w")
    self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=self._stderr, env=env, universal_newlines=True,
                                    cwd=REPO_ROOT)

  def call(self, **command):
    try:
      self.process.stdin.write(json.dumps(command) + "\n")
      self.process.stdin.flush()
    except (BrokenPipeError, OSError):
      raise WorkerError("%s worker is gone (%s)" % (self.name, self._tail()))
    for line in self.process.stdout:
      if line.startswith(REPLY_PREFIX):
        reply = json.loads(line[len(REPLY_PREFIX):])
        if "error" in reply:
          raise WorkerError("%s worker, %s: %s" % (self.name, command["op"], reply["error"]))
        return reply
    raise WorkerError("%s worker exited (%s)" % (self.name, self._tail()))

  def _tail(self):
    self._stderr.flush()
    try:
      with open(self.log_file, encoding="utf-8", errors="replace") as f:
        return " / ".join(f.read().strip().splitlines()[-8:])[-1500:]
    except OSError:
      return "no log"

  def close(self):
    if self.process.poll() is None:
      try:
        self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.process.stdin.flush()
        self.process.wait(timeout=60)
      except (OSError, subprocess.TimeoutExpired):
        self.process.kill()
        self.process.wait()
    self._stderr.close()


# -- our side: a worker in this python -----------------------------------------------------------


class OursTF(object):
  """Our training graphs and loaded exports, answering the same commands as the PyTorch peer."""

  def setup(self, command):
    started = time.perf_counter()
    tf = perf_workers._tf()
    tf1 = tf.compat.v1
    import numpy as np
    from bert import export_layout, modeling, training
    from bert.loaded_export import LoadedExport, serving_session_config

    self.tf = tf
    arrays = dict(np.load(command["batches"]))
    threads = int(command["threads"])
    workdir = command["workdir"]
    # A serving process: its first session makes the intra-op pool the exports record.
    serve_exports = command.get("serve_exports", {})
    infos = {name: export_layout.read_export_info(d) for name, d in serve_exports.items()}
    if command.get("intra_op_threads") is not None:  # as `INTRA_OP_THREADS=N scripts/serve.sh`
      infos = {name: dict(info, serving_intra_op_threads=int(command["intra_op_threads"]))
               for name, info in infos.items()}
    recorded = {info["serving_intra_op_threads"] for info in infos.values()}
    if len(recorded) > 1:
      raise RuntimeError("the exports record different intra-op threads (%s); serve them "
                         "from separate workers" % sorted(recorded))
    serving_threads = recorded.pop() if recorded else None
    if infos:
      tf1.Session(config=serving_session_config(next(iter(infos.values())), threads)).close()

    def threaded(config):
      config.intra_op_parallelism_threads = threads
      config.inter_op_parallelism_threads = threads
      return config

    # Training: the schedule is the order in which the driver will ask for batches (warm-up on
    # batch 0, then each round's steps on that round's batch); the dataset yields them in that
    # order, with their index, which every step checks.
    schedule = command["schedule"]
    ids = np.stack([arrays["train_ids_%d" % i] for i in schedule])
    labels = np.stack([arrays["train_labels_%d" % i] for i in schedule])

    def input_fn(params):
      del params

      def features(example):
        f = {"input_ids": example["input_ids"], "label_ids": example["label_ids"],
             "segment_ids": tf.zeros_like(example["input_ids"]),
             "input_mask": tf.ones_like(example["input_ids"]), "batch": example["batch"]}
        return f, f["label_ids"]

      return tf.data.Dataset.from_tensor_slices(
          {"input_ids": ids, "label_ids": labels,
           "batch": np.array(schedule, np.int32)}).map(features)

    self.train, jit_used = {}, {}
    train_config = modeling.BertConfig.from_dict(command["configs"][command["train_model"]])
    for variant in command.get("train_precisions", []):
      precision = base_precision(variant)
      jit_used[variant] = variant not in PLAIN_VARIANTS and hardware.choose_elementwise_jit(
          "auto", precision, "fixed")[0]
      graph = tf.Graph()
      with graph.as_default():
        tf1.set_random_seed(1)
        seen = {}
        trainer = training.Trainer(perf_workers.benchmark_model_fn(train_config, precision, seen),
                                   os.path.join(workdir, "scratch"), params={"seed": 1})
        model = trainer.build_train_graph(input_fn, int(command["train_batch"]))
        fetches = {"train_op": model.train_op, "loss": model.loss, "summaries": model.summaries,
                   "batch": seen["batch"]}
        init = tf1.global_variables_initializer()
        local_init = tf1.group(tf1.local_variables_initializer(), tf1.tables_initializer())
        graph.finalize()
      session = tf1.Session(graph=graph, config=threaded(
          training.session_config(False, jit_used[variant])))
      session.run(local_init)
      session.run(init)
      self.train[variant] = (session, fetches)

    # Untrained exports (made once, in the training worker), and serving: loaded as a server
    # holds them; a request is one call of a Session callable (the leanest Python path to
    # Session::Run, which the server calls).
    exports = {}
    if command.get("export_models"):
      vocab_file = os.path.join(workdir, "vocab.txt")
      perf_workers.write_synthetic_vocab(
          vocab_file, max(c["vocab_size"] for c in command["configs"].values()))
      for name in command["export_models"]:
        config = modeling.BertConfig.from_dict(command["configs"][name])
        exports[name] = perf_workers.untrained_export(workdir, name, config, vocab_file)
    self.serve, self.arrays = {}, arrays
    for name, version_dir in sorted(serve_exports.items()):
      loaded = LoadedExport(version_dir, session_config=serving_session_config(infos[name],
                                                                               threads))
      inputs = loaded.inputs()
      names = sorted(inputs)
      request = loaded.session.make_callable(loaded.outputs()["probabilities"],
                                             feed_list=[inputs[k] for k in names])
      self.serve[name] = (loaded, names, request)
    return {"versions": {"tensorflow": tf.__version__, "numpy": np.__version__,
                         "threads": threads, "elementwise_jit": jit_used,
                         "serving_intra_op_threads": serving_threads},
            "exports": exports, "setup_seconds": time.perf_counter() - started}

  def train_steps(self, command):
    session, fetches = self.train[command["precision"]]
    seconds = []
    for _ in range(command["steps"]):
      t = time.perf_counter()
      out = session.run(fetches)
      seconds.append(time.perf_counter() - t)
      if int(out["batch"]) != command["batch"]:
        raise RuntimeError("step ran batch %d, the driver asked for %d (schedule out of step)" %
                           (int(out["batch"]), command["batch"]))
      if not float(out["loss"]) == float(out["loss"]):
        raise RuntimeError("loss is nan")
    return {"seconds": seconds}

  def serve_requests(self, command):
    import numpy as np
    _, names, request = self.serve[command["model"]]
    ids = self.arrays["serve_ids_%d_%d" % (command["batch"], command["seq"])]
    feed = {"input_ids": ids, "input_mask": np.ones_like(ids), "segment_ids": np.zeros_like(ids)}
    args = [feed[k] for k in names]
    seconds = []
    for _ in range(command["requests"]):
      t = time.perf_counter()
      request(*args)
      seconds.append(time.perf_counter() - t)
    return {"seconds": seconds}


def ours_worker_main():
  ours = OursTF()
  command_loop({"setup": ours.setup, "train": ours.train_steps, "serve": ours.serve_requests})
  return 0


# -- the driver ----------------------------------------------------------------------------------


def write_inputs(path, plan, vocab_size):
  """Round r's training batch (train_ids_r, train_labels_r: every example plan["train_seq"]
  tokens long) and one batch per serving shape (serve_ids_B_S), int32, [CLS] first."""
  import numpy as np
  rng = np.random.RandomState(1)
  arrays = {}

  def ids(batch, seq):
    values = rng.randint(5, vocab_size, size=[batch, seq]).astype(np.int32)
    values[:, 0] = 2
    return values

  for r in range(plan["rounds"]):
    arrays["train_ids_%d" % r] = ids(plan["train_batch"], plan["train_seq"])
    arrays["train_labels_%d" % r] = rng.randint(0, 2, size=[plan["train_batch"]]).astype(np.int32)
  for batch, seq in plan["serve_shapes"]:
    arrays["serve_ids_%d_%d" % (batch, seq)] = ids(batch, seq)
  np.savez(path, **arrays)


def peer_python_status(peer_python):
  """None when peer_python can run the PyTorch worker, else why not."""
  if not os.path.isfile(peer_python):
    return "%s not found" % peer_python
  if not os.access(peer_python, os.X_OK):
    return "%s is not executable" % peer_python
  return None


def rotated(items, r):
  r %= len(items)
  return list(items[r:]) + list(items[:r])


def training_worker(workers, side):
  return workers[OURS_TRAINING if side == "ours" else side]


def measure(plan, threads, peer_python, workdir):
  """Runs both sides round by round; returns the raw figures."""
  configs = {}
  for name, path in perf_workers.MODELS.items():
    with open(path, encoding="utf-8") as f:
      configs[name] = json.load(f)
  vocab_size = min(c["vocab_size"] for c in configs.values())
  batches = os.path.join(workdir, "inputs.npz")
  write_inputs(batches, plan, vocab_size)
  schedule = [0] * plan["train_warmup"] + [r for r in range(plan["rounds"])
                                           for _ in range(plan["train_steps"])]
  setup = {"batches": batches, "configs": configs, "threads": threads,
           "train_model": TRAIN_MODEL, "train_precisions": list(TRAIN_PRECISIONS),
           "train_batch": plan["train_batch"], "serve_models": sorted(perf_workers.MODELS),
           "schedule": schedule, "workdir": workdir}
  threads_env = {"OMP_NUM_THREADS": str(threads)}
  data = {"plan": plan, "threads": threads, "configs": configs, "notes": [],
          "machine": hardware.describe_cpu(), "python": platform.python_version(),
          "load_before": os.getloadavg(), "versions": {}, "setup_seconds": {}}
  workers = {}
  begun = time.time()
  try:
    log("Setting up our side (training graphs) ...")
    workers[OURS_TRAINING] = Worker(
        OURS_TRAINING, [sys.executable, os.path.abspath(__file__), "--worker"],
        os.path.join(workdir, "ours_training.log"),
        dict(threads_env, TF_XLA_FLAGS=hardware.with_elementwise_jit_flags(
            os.environ.get("TF_XLA_FLAGS"))))  # as the entry points set it
    reply = workers[OURS_TRAINING].call(op="setup", **dict(
        setup, train_precisions=list(TRAIN_PRECISIONS + PLAIN_VARIANTS),
        export_models=sorted(perf_workers.MODELS)))
    data["versions"]["ours"], data["setup_seconds"]["ours"] = reply["versions"], reply[
        "setup_seconds"]
    serving_setup = dict(setup, train_precisions=[], serve_exports=reply["exports"])
    log("Setting up our side (exports, served as scripts/serve.sh serves them) ...")
    workers["ours"] = Worker(
        "ours", [sys.executable, os.path.abspath(__file__), "--worker"],
        os.path.join(workdir, "ours.log"), threads_env)
    reply = workers["ours"].call(op="setup", **serving_setup)
    data["versions"]["ours_serving"] = reply["versions"]
    data["setup_seconds"]["ours_serving"] = reply["setup_seconds"]
    if reply["versions"]["serving_intra_op_threads"] == 1:
      log("Setting up our side under TensorFlow's default pool (serving only) ...")
      workers["ours_pool"] = Worker(
          "ours_pool", [sys.executable, os.path.abspath(__file__), "--worker"],
          os.path.join(workdir, "ours_pool.log"), threads_env)
      data["setup_seconds"]["ours_pool"] = workers["ours_pool"].call(
          op="setup", **dict(serving_setup, intra_op_threads=0))["setup_seconds"]
    log("Setting up our side with XLA (serving only) ...")
    workers["ours_xla"] = Worker(
        "ours_xla", [sys.executable, os.path.abspath(__file__), "--worker"],
        os.path.join(workdir, "ours_xla.log"),
        dict(threads_env, TF_XLA_FLAGS=export_layout.XLA_SERVING_FLAGS))
    data["setup_seconds"]["ours_xla"] = workers["ours_xla"].call(
        op="setup", **serving_setup)["setup_seconds"]
    missing = peer_python_status(peer_python)
    if missing:
      data["notes"].append("PyTorch column left out: %s (set --peer_python or PEER_PYTHON; "
                           "the README's performance section sets it up)." % missing)
      log(data["notes"][-1])
    else:
      log("Setting up the PyTorch side (%s) ..." % peer_python)
      workers["theirs"] = Worker("theirs", [peer_python, PEER_WORKER],
                                 os.path.join(workdir, "theirs.log"), threads_env)
      try:
        reply = workers["theirs"].call(op="setup", **setup)
        data["versions"]["theirs"] = reply["versions"]
        data["setup_seconds"]["theirs"] = reply["setup_seconds"]
      except WorkerError as e:
        data["notes"].append("PyTorch column left out: its setup failed: %s" %
                             markdown.clean(e, 600))
        log(data["notes"][-1])
        workers.pop("theirs").close()
    sides = [s for s in SIDES if s in workers]
    training_sides = [s for s in sides if s in TRAINING_SIDES]
    data["sides"] = sides

    train_variants = [(side, p) for p in TRAIN_PRECISIONS for side in training_sides] + [
        ("ours", p) for p in PLAIN_VARIANTS]
    log("Warm-up ...")
    for side, precision in train_variants:
      training_worker(workers, side).call(op="train", precision=precision, batch=0,
                                          steps=plan["train_warmup"])
    requests = {}
    for model in sorted(perf_workers.MODELS):
      for batch, seq in plan["serve_shapes"]:
        for side in sides:
          reply = workers[side].call(op="serve", model=model, batch=batch, seq=seq,
                                     requests=max(plan["serve_warmup"], XLA_WARMUP)
                                     if side == "ours_xla" else plan["serve_warmup"])
          if side == "ours":  # requests per round: about serve_seconds of ours
            requests[(model, batch, seq)] = int(max(plan["min_requests"], min(
                plan["max_requests"], round(plan["serve_seconds"] / min(reply["seconds"])))))

    train_rows = [("train", p) for p in TRAIN_PRECISIONS + PLAIN_VARIANTS]
    rows = train_rows + [("serve", model, batch, seq) for model in ("teacher", "student")
                         for batch, seq in plan["serve_shapes"]]
    rounds = {row: {side: [] for side in (sides if row[0] == "serve" else training_sides
                                          if row[1] in TRAIN_PRECISIONS else ["ours"])}
              for row in rows}
    for r in range(plan["rounds"]):
      for side, precision in rotated(train_variants, r):
        time.sleep(plan["settle"])
        reply = training_worker(workers, side).call(op="train", precision=precision, batch=r,
                                                    steps=plan["train_steps"])
        rounds[("train", precision)][side].append(
            plan["train_batch"] * len(reply["seconds"]) / sum(reply["seconds"]))
      for row in rows[len(train_rows):]:
        _, model, batch, seq = row
        for side in rotated(sides, r):
          time.sleep(plan["settle"])
          reply = workers[side].call(op="serve", model=model, batch=batch, seq=seq,
                                     requests=requests[(model, batch, seq)])
          rounds[row][side].append(1e3 * statistics.median(reply["seconds"]))
      log("  round %d/%d: %s" % (r + 1, plan["rounds"], "; ".join(
          "%s %s" % (" ".join(str(x) for x in row[1:]), " vs ".join(
              "%.4g" % values[-1] for values in rounds[row].values())) for row in rows)))
  finally:
    for worker in workers.values():
      worker.close()
  data["rounds"] = [{"row": list(row), "requests": requests.get(tuple(row[1:])),
                     "values": rounds[row]} for row in rows]
  data["load_after"] = os.getloadavg()
  data["elapsed"] = time.time() - begun
  return data


def summarize(entry, side="ours"):
  """(side's figure, theirs, per-round ratios their time / side's time) of one row; None and []
  for what the row lacks."""
  values = entry["values"]
  if side not in values:
    return None, None, []
  ours = statistics.median(values[side])
  if "theirs" not in values:
    return ours, None, []
  theirs = statistics.median(values["theirs"])
  pairs = zip(values[side], values["theirs"])
  if entry["row"][0] == "train":  # examples/s: their time / our time = ours / theirs
    ratios = [o / t for o, t in pairs]
  else:  # milliseconds
    ratios = [t / o for o, t in pairs]
  return ours, theirs, ratios


def intra_op_words(threads):
  if threads is None:
    return "not recorded"
  return "1, each op on one thread" if threads == 1 else "TensorFlow's default, all cores"


def pool_lines(data, shape, ratio_cells):
  """The serving rows of ours (one thread per op, as the exports record) against ours_pool
  (the same exports under TensorFlow's default pool), or nothing when ours_pool did not run."""
  rows = []
  for entry in data["rounds"]:
    values = entry["values"]
    if entry["row"][0] != "serve" or "ours_pool" not in values:
      continue
    _, model, batch, seq = entry["row"]
    one, pool = values["ours"], values["ours_pool"]
    _, _, peer_ratios = summarize(entry, "ours_pool")
    rows.append(["%s, batch %d × %d" % (shape(model), batch, seq),
                 "%.2f" % statistics.median(one), "%.2f" % statistics.median(pool)] +
                ratio_cells([p / o for o, p in zip(one, pool)]) + ratio_cells(peer_ratios)[:1])
  if not rows:
    return []
  return ["", "Serving with one thread per op (as the exports record; `ours` above) against the "
          "same exports under TensorFlow's default pool (`INTRA_OP_THREADS=0 scripts/serve.sh`), "
          "interleaved in the same rounds: default-pool time / one-thread time (> 1: one thread "
          "per op is faster), median of the per-round ratios.", ""] + markdown.table(
              ["serving shape", "one thread per op, ms", "default pool, ms", "ratio", "range",
               "PyTorch / default pool"], rows)


def report(data):
  """The markdown report, as a list of lines."""
  plan = data["plan"]
  configs = data["configs"]

  def shape(name):
    c = configs[name]
    return "%s %d×%d" % (name, c["num_hidden_layers"], c["hidden_size"])

  versions = data["versions"]
  theirs = versions.get("theirs")
  lines = ["# This toolkit vs. Hugging Face transformers on PyTorch", "",
           "- Machine: %s; python %s." % (data["machine"], data["python"]),
           "- Ours: TensorFlow %s, graph mode; training as Trainer.build_train_graph builds it; "
           "serving through the exported SavedModel (one Session call per request) in a "
           "process of its own with the threads the exports record, as `scripts/serve.sh` "
           "gives them to tensorflow_model_server (intra-op threads: %s); "
           "ours + XLA: the same, with XLA auto-clustering (`scripts/serve.sh XLA=1`)." % (
               versions["ours"]["tensorflow"], intra_op_words(
                   versions.get("ours_serving", {}).get("serving_intra_op_threads"))),
           "- Theirs: %s" % ("torch %s, transformers %s: BertForSequenceClassification, eager, "
                            "`sdpa` attention; AdamW; bf16 = torch.autocast(cpu, bfloat16); "
                            "serving fp32 under torch.inference_mode()." %
                            (theirs["torch"], theirs["transformers"]) if theirs else
                            "not measured (see below)."),
           "- %d threads each side; %d rounds, interleaved (every variant on the same inputs, "
           "order rotated each round); training %d steps per variant and round after %d "
           "warm-up steps, every example %d tokens; serving: a round's median of its requests "
           "(count per row below), after %d warm-up requests." %
           (data["threads"], plan["rounds"], plan["train_steps"], plan["train_warmup"],
            plan["train_seq"], plan["serve_warmup"]),
           "- Load average before %.2f, after %.2f; %.0f s in all." %
           (data["load_before"][0], data["load_after"][0], data["elapsed"])]
  if plan.get("quick"):
    lines.append("- **--quick: a smoke run at tiny sizes, not a measurement.**")
  lines += ["- " + note for note in data["notes"]]
  lines += ["", "Ratio: their time / our time, the median of the per-round ratios (> 1: ours "
            "is faster); the range is the per-round ratios' lowest and highest.", ""]

  def ratio_cells(ratios):
    if not ratios:
      return ["-", "-"]
    return ["%.2f×" % statistics.median(ratios), "%.2f–%.2f" % (min(ratios), max(ratios))]

  table_rows = []
  for entry in data["rounds"]:
    row = entry["row"]
    ours, peer, ratios = summarize(entry)
    xla, _, xla_ratios = summarize(entry, "ours_xla")
    if row[0] == "train":
      what = ("training %s, elementwise XLA off, ex/s" % base_precision(row[1])
              if row[1] in PLAIN_VARIANTS else "training %s, ex/s" % row[1])
      where = "%s, batch %d × %d" % (shape(TRAIN_MODEL), plan["train_batch"], plan["train_seq"])
      form = "%.1f"
    else:
      what = "serving, median ms (%d requests/round)" % entry["requests"]
      where = "%s, batch %d × %d" % (shape(row[1]), row[2], row[3])
      form = "%.2f"
    cells = ["-" if value is None else form % value for value in (ours, xla, peer)]
    table_rows.append([what, where] + cells + ratio_cells(ratios) + ratio_cells(xla_ratios))
  lines += markdown.table(["measure", "shape", "ours", "ours + XLA", "PyTorch", "ratio", "range",
                           "ratio XLA", "range XLA"], table_rows)
  lines += pool_lines(data, shape, ratio_cells)
  by_row = {tuple(e["row"]): e for e in data["rounds"]}
  speedups = []
  for side in by_row[("train", "fp32")]["values"]:
    fp32, bf16 = (by_row[("train", p)]["values"][side] for p in ("fp32", "bf16"))
    speedups.append("%s %.2f×" % ("ours" if side == "ours" else "PyTorch",
                                  statistics.median(b / f for b, f in zip(bf16, fp32))))
  plain = {p: by_row[("train", v)]["values"]["ours"] for p, v in PLAIN.items()
           if ("train", v) in by_row}
  if len(plain) == len(PLAIN):
    speedups.append("ours with the elementwise XLA clusters off %.2f×" % statistics.median(
        b / f for b, f in zip(plain["bf16"], plain["fp32"])))
  jit = versions["ours"].get("elementwise_jit", {})
  lines += ["", "Training bf16 / fp32 examples/s (median of the per-round ratios): %s." %
            ", ".join(speedups)]
  compiled = ["%s %.2f×" % (p, statistics.median(
      a / b for a, b in zip(by_row[("train", p)]["values"]["ours"], plain[p])))
      for p in TRAIN_PRECISIONS if p in plain]
  if compiled:
    lines.append("Ours, each precision as `--xla_elementwise=auto` runs it / with the elementwise "
                 "XLA clusters off (median of the per-round ratios): %s." % ", ".join(compiled))
  forms = ["%s %s" % (p, "elementwise ops compiled by XLA" if jit.get(p) else
                       "elementwise ops uncompiled") for p in TRAIN_PRECISIONS]
  lines.append("Our training rows at fixed-length batches (`--xla_elementwise=auto`): %s." %
               "; ".join(forms))
  return lines


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=None,
                      help="interleaved rounds (default %d; --quick %d)" %
                      (FULL["rounds"], QUICK["rounds"]))
  parser.add_argument("--quick", action="store_true",
                      help="a smoke run: 2 rounds, training batch 4 × 32, serving at seq 32")
  parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                      help="threads of each side (TF intra- and inter-op pools; "
                      "torch.set_num_threads); default: the CPU count")
  parser.add_argument("--peer_python",
                      default=os.environ.get("PEER_PYTHON", DEFAULT_PEER_PYTHON),
                      help="python of the environment with torch and transformers "
                      "(default $PEER_PYTHON or %s)" % DEFAULT_PEER_PYTHON)
  parser.add_argument("--output", default=os.path.join("output", "bench", "peer.md"))
  parser.add_argument("--workdir", default=None, help="keep the inputs, exports and logs here")
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    return ours_worker_main()

  plan = dict(QUICK if args.quick else FULL, quick=args.quick)
  if args.rounds:
    plan["rounds"] = args.rounds
  keep = args.workdir is not None
  workdir = args.workdir or tempfile.mkdtemp(prefix="bert-peer-")
  os.makedirs(workdir, exist_ok=True)
  try:
    data = measure(plan, args.threads, args.peer_python, os.path.abspath(workdir))
  except WorkerError as e:
    log("FAILED: %s" % e)
    return 1
  finally:
    if not keep:
      shutil.rmtree(workdir, ignore_errors=True)
  lines = report(data)
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  with open(args.output, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.splitext(args.output)[0] + ".json", "w", encoding="utf-8") as f:
    json.dump(data, f, indent=1)
  print("\n".join(lines))
  log("Wrote %s" % args.output)
  return 0


if __name__ == "__main__":
  sys.exit(main())
