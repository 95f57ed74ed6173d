"""A small trainer in place of tf.estimator: train / evaluate / predict over a model_fn.

The model_fn keeps Estimator's contract — `model_fn(features, labels, mode, params)` returning a
ModelSpec — and checkpoints keep Estimator's layout (`model.ckpt-<global_step>` plus a
`checkpoint` state file in output_dir), so scripts that point `--init_checkpoint` at a training
checkpoint keep working.
"""

import collections
import contextlib
import json
import math
import os
import threading
import time

import numpy as np
import tensorflow as tf

from bert.errors import TrainingError, UsageError, one_line_message

tf1 = tf.compat.v1


class ModeKeys(object):
  TRAIN = "train"
  EVAL = "eval"
  PREDICT = "infer"


class ModelSpec(collections.namedtuple("ModelSpec", [
    "mode", "loss", "train_op", "predictions", "eval_tensors", "metrics_fn", "summaries",
    "num_examples"])):
  """What a model_fn returns.

  loss: scalar (TRAIN, EVAL). train_op: op that increments the global step (TRAIN).
  predictions: dict of per-example tensors [batch_size, ...] (PREDICT).
  eval_tensors: dict of per-example tensors gathered over the whole eval set (EVAL);
  metrics_fn(arrays) → dict of floats computed from them.
  summaries: dict of scalar tensors logged during training (loss, learning_rate, accuracy...).
  num_examples: int scalar, the examples in this step's batch (TRAIN; the last batch of an epoch
  may be short), for examples/s; None: the batch size given to train().
  """

  def __new__(cls, mode, loss=None, train_op=None, predictions=None, eval_tensors=None,
              metrics_fn=None, summaries=None, num_examples=None):
    return super(ModelSpec, cls).__new__(cls, mode, loss, train_op, predictions or {},
                                         eval_tensors or {}, metrics_fn, summaries or {},
                                         num_examples)


SIGNATURE_FILE = "model_signature.json"
# Graphs larger than this are not written to the TensorBoard events file.
MAX_SUMMARY_GRAPH_BYTES = 16 << 20


def log(message):
  print(message, flush=True)


def format_seconds(seconds):
  seconds = int(max(seconds, 0))
  if seconds >= 3600:
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
  if seconds >= 60:
    return "%dm%02ds" % (seconds // 60, seconds % 60)
  return "%ds" % seconds


def checkpoint_shapes(checkpoint):
  """{variable name: shape} of a checkpoint file prefix."""
  return dict(tf.train.list_variables(checkpoint))


def check_shapes_match(checkpoint, assignment, what="checkpoint"):
  """Raises UsageError naming the first variable whose checkpoint shape differs.

  assignment: {checkpoint variable name: graph variable}.
  """
  shapes = checkpoint_shapes(checkpoint)
  for name, variable in sorted(assignment.items()):
    if name not in shapes:
      raise UsageError("%s %s: has no variable %s" % (what, checkpoint, name))
    expected = variable.shape.as_list()
    if list(shapes[name]) != expected:
      raise UsageError("%s %s: variable %s has shape %s, the model expects %s" %
                       (what, checkpoint, name, list(shapes[name]), expected))


def _differences(recorded, current, prefix=""):
  """['bert_config.num_hidden_layers: 2 recorded, 1 now', ...]: differing keys, dotted if nested."""
  found = []
  for key in sorted(set(recorded) | set(current)):
    a, b = recorded.get(key), current.get(key)
    if isinstance(a, dict) and isinstance(b, dict):
      found.extend(_differences(a, b, "%s%s." % (prefix, key)))
    elif a != b:
      found.append("%s%s: %s recorded, %s now" % (prefix, key, a, b))
  return found


def all_finite(variables):
  """A bool op: every floating-point variable holds only finite values."""
  checks = [tf.reduce_all(tf.math.is_finite(v)) for v in variables
            if v.dtype.base_dtype.is_floating]
  return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)


def session_config(use_xla=False, elementwise_jit=False):
  """elementwise_jit: auto-clusters the session's ops on a CPU too, fusible ops only, where
  TF_XLA_FLAGS held hardware.ELEMENTWISE_JIT_FLAGS when TensorFlow first read it."""
  config = tf1.ConfigProto(allow_soft_placement=True)
  config.gpu_options.allow_growth = True
  if use_xla or elementwise_jit:
    config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
  return config


class SummaryWriter(tf1.summary.FileWriter):
  """FileWriter whose failed writes (a full disk) are one TrainingError naming output_dir.

  FileWriter writes from a background thread; a failed write there prints a traceback and an
  ERROR line, then raises the same error in the caller's thread at the next flush or close.
  This keeps the last: that thread's report is dropped (_drop_event_thread_reports).
  """

  def __init__(self, logdir, *args, **kwargs):
    _drop_event_thread_reports()
    super(SummaryWriter, self).__init__(logdir, *args, **kwargs)
    self.logdir = logdir
    self.failed = False

  def _checked(self, write, what):
    try:
      write()
    except (tf.errors.OpError, OSError, RuntimeError) as e:
      if self.failed and what == "close":
        return  # already reported
      self.failed = True
      raise TrainingError("cannot write TensorBoard summaries to --output_dir %s (%s); "
                          "checkpoints are kept" % (self.logdir, one_line_message(e)[:300]))

  def flush(self):
    self._checked(super(SummaryWriter, self).flush, "flush")

  def close(self):
    self._checked(super(SummaryWriter, self).close, "close")


def _drop_event_thread_reports():
  if _drop_event_thread_reports.installed:
    return
  _drop_event_thread_reports.installed = True
  previous = threading.excepthook

  def hook(args):
    if args.thread is None or args.thread.name != "EventLoggerThread":
      previous(args)

  threading.excepthook = hook
  tf.get_logger().addFilter(
      lambda record: "EventFileWriter writer thread error" not in record.getMessage())


_drop_event_thread_reports.installed = False


class Trainer(object):
  """Drives a model_fn: train with checkpoints and resume, evaluate, predict."""

  def __init__(self, model_fn, output_dir, params=None, save_checkpoints_steps=1000,
               keep_checkpoint_max=5, log_every_n_steps=100, model_signature=None,
               use_xla=False, elementwise_jit=False, distribution=None, worker_dir=None):
    """model_signature: a JSON-able dict (config, labels...) recorded in output_dir; a run whose
    signature differs refuses to resume from or evaluate that directory's checkpoints.

    distribution: a distribute.Distribution (None: one device). Training then runs the model_fn
    once per replica; only the chief writes checkpoints, summaries and the signature in
    output_dir (shared by all workers: every worker resumes from its checkpoints). A non-chief
    worker writes its final weights to worker_dir (for checking) and nothing to output_dir.
    Evaluation and prediction run on one device.

    elementwise_jit: the training session auto-clusters its fusible ops with XLA
    (hardware.choose_elementwise_jit); evaluation and prediction sessions do not, as each new
    batch length would compile again.
    """
    self.model_fn = model_fn
    self.output_dir = output_dir
    self.params = dict(params or {})
    self.save_checkpoints_steps = save_checkpoints_steps
    self.keep_checkpoint_max = keep_checkpoint_max
    self.log_every_n_steps = max(1, log_every_n_steps)
    self.model_signature = model_signature
    self.use_xla = use_xla
    self.elementwise_jit = elementwise_jit  # training only: eval batches vary in length
    self.distribution = distribution
    self.worker_dir = worker_dir
    self.train_losses = []

  @property
  def is_chief(self):
    return self.distribution is None or self.distribution.is_chief

  # -- checkpoints -----------------------------------------------------------------------------

  def latest_checkpoint(self):
    return tf.train.latest_checkpoint(self.output_dir) if os.path.isdir(self.output_dir) else None

  def check_output_dir(self, write=False):
    """Refuses (UsageError) an output_dir whose recorded model signature differs from this run's.

    write: record this run's signature (a new output_dir, or keys an older version lacked).
    """
    if self.model_signature is None:
      return
    path = os.path.join(self.output_dir, SIGNATURE_FILE)
    if os.path.isfile(path):
      try:
        with open(path, encoding="utf-8") as f:
          recorded = json.load(f)
      except ValueError as e:
        raise UsageError("--output_dir %s: its %s is not valid JSON (%s); restore it or give a "
                         "new --output_dir" % (self.output_dir, SIGNATURE_FILE, e))
      # Keys an older version did not record are unknown there: accepted, and recorded below.
      known = {key: value for key, value in self.model_signature.items() if key in recorded}
      if recorded != known:
        raise UsageError(
            "--output_dir %s: holds checkpoints of a different model (%s in its %s); refusing to "
            "use them: give a new --output_dir or the matching settings" %
            (self.output_dir, "; ".join(_differences(recorded, known)), SIGNATURE_FILE))
      if write and known != self.model_signature:
        with open(path + ".tmp", "w", encoding="utf-8") as f:
          json.dump(dict(recorded, **self.model_signature), f, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)
    elif write:
      tf.io.gfile.makedirs(self.output_dir)
      with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(self.model_signature, f, indent=1, sort_keys=True)
      os.replace(path + ".tmp", path)

  def _restore(self, session, saver, checkpoint):
    try:
      check_shapes_match(checkpoint, {v.op.name: v for v in tf1.global_variables()},
                         what="checkpoint")
      saver.restore(session, checkpoint)
    except (tf.errors.OpError, OSError) as e:
      # A truncated or corrupt .index/.data file: OutOfRangeError, DataLossError...
      raise UsageError("checkpoint %s: cannot be read (%s); its files are damaged: delete "
                       "model.ckpt-%s.* and the %s line naming it to fall back to the previous "
                       "checkpoint, or give a new --output_dir" %
                       (checkpoint, one_line_message(e)[:300], checkpoint.rsplit("-", 1)[-1],
                        os.path.join(os.path.dirname(checkpoint), "checkpoint")))

  def build_train_graph(self, input_fn, batch_size):
    """In the current graph, the one-device training step Trainer.train runs: input_fn →
    iterator → model_fn (jit-scoped with use_xla). Returns the model_fn's ModelSpec."""
    return self._build(input_fn, ModeKeys.TRAIN, batch_size)

  def _build(self, input_fn, mode, batch_size):
    dataset = input_fn(dict(self.params, batch_size=batch_size))
    iterator = tf1.data.make_one_shot_iterator(dataset)
    features, labels = iterator.get_next()
    tf1.train.get_or_create_global_step()
    with self._jit_scope(mode):
      return self.model_fn(features, labels, mode, dict(self.params, batch_size=batch_size))

  def _build_replicated(self, input_fn, batch_size):
    """The training step under the distribution's strategy (Estimator's distributed path).

    Each global batch of batch_size examples (bucketed and padded as on one device) is split
    into one slice per replica; the model_fn runs once per replica on its slice
    (call_for_each_replica) and its optimizer all-reduces the gradients. Returns
    (iterator initializer, {"train_op", "loss", "num_examples", "summaries"}): the loss is the
    sum of the replicas' shares (the global mean), num_examples the global count, summaries the
    mean of the replicas' values.
    """
    strategy = self.distribution.strategy
    sum_, mean = tf.distribute.ReduceOp.SUM, tf.distribute.ReduceOp.MEAN
    params = dict(self.params, batch_size=batch_size)
    with strategy.scope():
      iterator = strategy.make_input_fn_iterator(lambda context: _replica_slices(
          input_fn(params), context.num_replicas_in_sync, context.num_input_pipelines,
          context.input_pipeline_id))
      tf1.train.get_or_create_global_step()
      names = []

      def step_fn(inputs):
        features, labels = inputs
        with self._jit_scope(ModeKeys.TRAIN):
          spec = self.model_fn(features, labels, ModeKeys.TRAIN,
                               dict(self.params, batch_size=batch_size))
        summaries = {k: tf.cast(v, tf.float32) for k, v in spec.summaries.items()}
        summed = tf.stack([spec.loss, tf.cast(tf.shape(labels)[0] if spec.num_examples is None
                                            else spec.num_examples, tf.float32)])
        names[:] = sorted(summaries)
        averaged = tf.stack([summaries[k] for k in names]) if names else tf.zeros([0])
        return spec.train_op, summed, averaged

      train_op, summed, averaged = strategy.extended.call_for_each_replica(
          step_fn, args=(iterator.get_next(),))
      summed = strategy.reduce(sum_, summed, axis=None)
      averaged = strategy.reduce(mean, averaged, axis=None)
      summaries = {name: averaged[i] for i, name in enumerate(names)}
      summaries["loss"] = summed[0]
      return iterator.initializer, {"train_op": strategy.group(train_op), "loss": summed[0],
                                    "num_examples": summed[1], "summaries": summaries}

  def _jit_scope(self, mode):
    """With use_xla, marks the training step's ops for XLA compilation.

    session_config's global_jit_level clusters nothing on CPU unless TF_XLA_FLAGS holds
    --tf_xla_cpu_global_jit when the process first reads its flags; the scope works on any
    device. Variable initializers stay uncompiled (run once). Eval and predict are left to
    global_jit_level: they pad each batch to its own length, and each new shape would recompile.
    """
    if not (self.use_xla and mode == ModeKeys.TRAIN):
      return contextlib.nullcontext()
    return tf1.xla.experimental.jit_scope(
        compile_ops=lambda node_def: "/Initializer/" not in node_def.name)

  # -- train -----------------------------------------------------------------------------------

  def train(self, input_fn, max_steps, batch_size):
    """Trains until the global step is max_steps, resuming from output_dir's latest checkpoint."""
    if self.is_chief:
      self.check_output_dir(write=True)
      self._remove_partial_checkpoints()
    else:
      self.check_output_dir()
    replicated = self.distribution is not None and self.distribution.strategy is not None
    graph = tf.Graph()
    with graph.as_default():
      tf1.set_random_seed(self.params.get("seed"))
      if replicated:
        iterator_init, fetch = self._build_replicated(input_fn, batch_size)
      else:
        spec = self._build(input_fn, ModeKeys.TRAIN, batch_size)
        iterator_init = tf.no_op()
        fetch = {"train_op": spec.train_op, "loss": spec.loss, "summaries": spec.summaries,
                 "num_examples": (spec.num_examples if spec.num_examples is not None
                                  else tf.constant(batch_size))}
      global_step = tf1.train.get_global_step()
      saver = tf1.train.Saver(max_to_keep=self.keep_checkpoint_max, save_relative_paths=True)
      init = tf1.global_variables_initializer()
      local_init = tf1.group(tf1.local_variables_initializer(), tf1.tables_initializer())
      finite = all_finite(tf1.global_variables())
      # A distillation graph holds the whole teacher as constants: keep it out of the events file.
      graph_def = graph.as_graph_def()
      if self.is_chief:
        writer = SummaryWriter(self.output_dir, graph=graph if graph_def.ByteSize() <
                               MAX_SUMMARY_GRAPH_BYTES else None)
      else:
        writer = _NoWriter()
      graph.finalize()
    config = session_config(self.use_xla, self.elementwise_jit)
    target = ""
    if self.distribution is not None:
      config, target = self.distribution.session_config(config), self.distribution.target
    # The writer is closed however training ends: done, nothing to do, or an error.
    with tf1.Session(target, graph=graph, config=config) as session, writer:
      latest = self.latest_checkpoint()
      session.run([local_init, iterator_init])
      if latest:
        self._restore(session, saver, latest)
        state = tf.train.get_checkpoint_state(self.output_dir)
        saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
        log("Resuming from %s" % latest)
      else:
        session.run(init)
      step = int(session.run(global_step))
      if step >= max_steps:
        log("Global step %d already reaches %d: nothing to train" % (step, max_steps))
        return latest
      last_saved = latest
      self.train_losses = []  # this run's per-step losses, for the caller's collapse check
      start_step, started, window_start, window_examples = step, time.time(), time.time(), 0
      saved_step = step
      while step < max_steps:
        try:
          out = session.run(fetch)
        except tf.errors.OutOfRangeError:
          log("Input exhausted at step %d" % step)
          break
        step += 1
        loss = float(out["loss"])
        self.train_losses.append(loss)
        if not math.isfinite(loss):
          raise TrainingError(
              "loss is %s at step %d; training stopped without saving: the last good checkpoint %s "
              "is kept" % (loss, step, last_saved or "(none)"))
        window_examples += int(out["num_examples"])
        if step % self.log_every_n_steps == 0 or step == max_steps:
          now = time.time()
          rate = window_examples / max(now - window_start, 1e-9)
          eta = (now - started) / max(step - start_step, 1) * (max_steps - step)
          values = dict(out["summaries"], examples_per_sec=rate)
          self._write_summaries(writer, values, step)
          extras = " ".join("%s %s" % (k, _fmt(v)) for k, v in sorted(values.items())
                            if k not in ("loss", "examples_per_sec"))
          log("step %d/%d loss %.4f %s %.1f ex/s ETA %s" %
              (step, max_steps, loss, extras, rate, format_seconds(eta)))
          window_start, window_examples = now, 0
        if step % self.save_checkpoints_steps == 0 and step < max_steps and self.is_chief:
          last_saved = self._save(session, saver, step, last_saved, finite)
          saved_step = step
      if not self.is_chief:
        if self.worker_dir:  # this worker's copy of the final weights, outside output_dir
          self._save(session, saver, step, None, finite, self.worker_dir)
      elif saved_step != step:
        last_saved = self._save(session, saver, step, last_saved, finite)
    log("Trained to step %d in %s" % (step, format_seconds(time.time() - started)))
    return last_saved

  def _remove_partial_checkpoints(self):
    """Deletes what a save killed mid-write left (TF's `*.tempstate<n>` files, `*_temp` dirs).

    A finished save renames these away, and no checkpoint state names them.
    """
    for pattern in ("model.ckpt-*.tempstate*", "model.ckpt-*_temp*"):
      for path in tf.io.gfile.glob(os.path.join(self.output_dir, pattern)):
        if tf.io.gfile.isdir(path):
          tf.io.gfile.rmtree(path)
        else:
          tf.io.gfile.remove(path)
        log("Removed %s, left by an interrupted checkpoint save" % path)

  def _save(self, session, saver, step, previous, finite=None, directory=None):
    """Saves model.ckpt-<step>, unless a weight or optimizer slot is NaN or Inf (finite: bool op).

    A step's loss is computed before its update: a finite loss does not prove the updated state
    finite, and a non-finite state must not become the latest checkpoint.
    """
    if finite is not None and not session.run(finite):
      raise TrainingError(
          "weights are not finite after step %d; training stopped without saving: the last good "
          "checkpoint %s is kept" % (step, previous or "(none)"))
    if directory:
      tf.io.gfile.makedirs(directory)
    prefix = os.path.join(directory or self.output_dir, "model.ckpt")
    try:
      path = saver.save(session, prefix, global_step=step, write_meta_graph=False)
    except (tf.errors.OpError, OSError) as e:
      # What the failed save wrote (a partial data file on a full disk) goes: the checkpoint
      # state never named it, and the previous checkpoint stays the latest.
      try:
        for path in tf.io.gfile.glob("%s-%d.*" % (prefix, step)):
          if not tf.io.gfile.isdir(path):
            tf.io.gfile.remove(path)
      except (tf.errors.OpError, OSError):
        pass  # best effort: the error below is what matters
      raise TrainingError("cannot write checkpoint %s-%d (%s); the previous checkpoint %s is kept" %
                          (prefix, step, one_line_message(e)[:300], previous or "(none)"))
    log("Saved checkpoint %s" % path)
    return path

  @staticmethod
  def _write_summaries(writer, values, step):
    summary = tf1.Summary(value=[tf1.Summary.Value(tag=k, simple_value=float(v))
                                 for k, v in sorted(values.items())])
    writer.add_summary(summary, step)
    writer.flush()

  # -- evaluate / predict ----------------------------------------------------------------------

  def checkpoint_or_error(self, what, checkpoint_path=None):
    """checkpoint_path, or output_dir's latest checkpoint after checking its signature; a
    UsageError naming `what` ("evaluate", "export", ...) when there is none."""
    checkpoint = checkpoint_path or self.latest_checkpoint()
    if not checkpoint:
      raise UsageError("--output_dir %s: no checkpoint to %s (train first with --do_train)" %
                       (self.output_dir, what))
    if not checkpoint_path:
      self.check_output_dir()
    return checkpoint

  def _run_to_end(self, input_fn, mode, batch_size, checkpoint_path, fetches_of):
    checkpoint = self.checkpoint_or_error("evaluate" if mode == ModeKeys.EVAL else "predict with",
                                          checkpoint_path)
    graph = tf.Graph()
    with graph.as_default():
      spec = self._build(input_fn, mode, batch_size)
      saver = tf1.train.Saver()
      local_init = tf1.group(tf1.local_variables_initializer(), tf1.tables_initializer())
      graph.finalize()
    with tf1.Session(graph=graph, config=session_config(self.use_xla)) as session:
      session.run(local_init)
      self._restore(session, saver, checkpoint)
      step = int(session.run(tf1.train.get_global_step(graph)))
      fetches = fetches_of(spec)
      while True:
        try:
          yield spec, step, session.run(fetches)
        except tf.errors.OutOfRangeError:
          return

  def evaluate(self, input_fn, batch_size, checkpoint_path=None, results_file="eval_results.txt"):
    """Runs the whole eval set; returns metrics and writes them to output_dir/results_file."""
    gathered = collections.defaultdict(list)
    spec, step = None, 0
    for spec, step, batch in self._run_to_end(input_fn, ModeKeys.EVAL, batch_size,
                                              checkpoint_path, lambda s: s.eval_tensors):
      for name, value in batch.items():
        gathered[name].append(value)
    if spec is None:
      raise UsageError("eval set is empty")
    arrays = {name: np.concatenate(values) for name, values in gathered.items()}
    metrics = dict(spec.metrics_fn(arrays), global_step=step)
    if results_file:
      write_results(os.path.join(self.output_dir, results_file), metrics)
    return metrics

  def predict(self, input_fn, batch_size, checkpoint_path=None):
    """Yields one dict of numpy values per example, in input order."""
    for _, _, batch in self._run_to_end(input_fn, ModeKeys.PREDICT, batch_size, checkpoint_path,
                                        lambda s: s.predictions):
      size = len(next(iter(batch.values())))
      for i in range(size):
        yield {name: value[i] for name, value in batch.items()}


def _replica_slices(dataset, num_replicas, num_workers, worker_index):
  """This worker's replicas' slices of each global batch, in replica order.

  The global batches are made as on one device (shuffled, bucketed, padded), by every worker
  alike (the same seed); each is cut along the batch into num_replicas slices of sizes differing
  by at most one, and this worker keeps those of its replicas, which the strategy hands out in
  turn to its devices. strategy.make_dataset_iterator splits the same way on one machine, but
  across machines it shards by auto-shard policy (by file when there are several files: other
  batches than on one device); cutting here keeps every worker count equal to one device.

  Args:
    dataset: (features {name: [batch_size, ...]}, labels [batch_size]) elements.
  Returns:
    A dataset of the same structure whose elements are slices [slice_size, ...].
  """
  per_worker = num_replicas // num_workers
  first = worker_index * per_worker

  def slices(features, labels):
    size = tf.cast(tf.shape(labels)[0], tf.int64)

    def take(index):
      start, end = index * size // num_replicas, (index + 1) * size // num_replicas
      return tf.nest.map_structure(lambda t: t[start:end], (features, labels))

    return tf.data.Dataset.range(first, first + per_worker).map(take)

  return dataset.flat_map(slices)


class _NoWriter(object):
  """A non-chief worker's stand-in for the SummaryWriter: writes nothing."""

  def __enter__(self):
    return self

  def __exit__(self, *unused):
    return False

  def add_summary(self, *unused):
    pass

  def flush(self):
    pass


def _fmt(value):
  value = float(value)
  return "%.3g" % value if abs(value) < 1e-2 and value else "%.4f" % value


def write_results(path, metrics):
  tf.io.gfile.makedirs(os.path.dirname(os.path.abspath(path)))
  with open(path + ".tmp", "w", encoding="utf-8") as f:
    for key in sorted(metrics):
      f.write("%s = %s\n" % (key, metrics[key]))
  os.replace(path + ".tmp", path)
