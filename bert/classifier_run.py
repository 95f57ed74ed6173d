"""The train → eval → predict → export sequence shared by both entry points.

`run_classifier.py` runs ClassifierRun as it is; `run_classifier_distill.py` runs its subclass
DistillRun (distill_run.py), which adds the teacher and Hinton's loss. Both are built from a
checked RunConfig (run_config.py) and read no flags. Data flows one way:
text → features (TFRecord) → model_fn → trainer → export.
"""

import os

import tensorflow as tf

from bert import (checkpoint_init, classifier, classifier_data, collapse, distribute, export,
                  feature_cache, run_lock, tokenization)
from bert.errors import UsageError
from bert.training import Trainer, log


class ClassifierRun(object):
  """One invocation: a RunConfig's do_* steps, in order."""

  # Whether the training loss is the hard-label loss, whose constant-prediction level is known.
  checks_constant_loss = True

  def __init__(self, config):
    """config: a run_config.RunConfig (RunConfig.create or from_flags)."""
    self.config = config
    # Before TensorFlow starts its devices: mirrored on a CPU-only machine splits the CPU.
    self.distribution = distribute.Distribution.create(config.distribution, config.num_devices)
    if config.train_batch_size % self.distribution.num_replicas:
      raise UsageError("--train_batch_size %d: must be a multiple of the %d replicas (it is the "
                       "global batch, split over them)" %
                       (config.train_batch_size, self.distribution.num_replicas))
    self.tokenizer = tokenization.FullTokenizer(config.vocab_file, config.do_lower_case)
    self.processor = config.processor()
    if config.do_export:
      export.check_writable(config.export_dir)
    self._trainer = None

  @property
  def trainer(self):
    """The Trainer of this config's model_fn: built when first needed, again when the config is
    replaced (train() makes the final one, with the train steps)."""
    if self._trainer is None or self._trainer[0] is not self.config:
      self._trainer = (self.config, self.new_trainer())
    return self._trainer[1]

  def new_trainer(self):
    c = self.config
    return Trainer(self.model_fn(), c.output_dir, params={"seed": c.seed},
                   save_checkpoints_steps=c.save_checkpoints_steps,
                   keep_checkpoint_max=c.keep_checkpoint_max,
                   log_every_n_steps=c.log_every_n_steps, model_signature=c.model_signature(),
                   use_xla=c.use_xla, elementwise_jit=c.elementwise_jit,
                   distribution=self.distribution, worker_dir=c.work_dir)

  # -- features and model ----------------------------------------------------------------------

  def features(self, split):
    """(path, info) of the split's TFRecord (feature_cache.split_features)."""
    return feature_cache.split_features(self.config, self.processor, self.tokenizer, split)

  def input_fn(self, record_file, info, is_training):
    """Batches of a record file, its optional fields as its info records them."""
    c = self.config
    return classifier_data.input_fn_for_record(
        record_file, info, is_training, c.max_seq_length, padding=c.padding,
        num_labels=len(c.label_list), seed=c.seed)

  def loss_builder(self):
    return classifier.hard_label_loss(self.config.train_temperature)

  def model_fn(self):
    c = self.config
    return classifier.model_fn_builder(
        c.bert_config, list(c.label_list), init_checkpoint=c.init_checkpoint,
        learning_rate=c.learning_rate, num_train_steps=c.train_steps or 1,
        num_warmup_steps=c.warmup_steps, temperature=c.train_temperature,
        precision=c.compute_precision, init_layer_map=c.layer_map and list(c.layer_map),
        loss_builder=self.loss_builder(), adam_bias_correction=c.adam_bias_correction)

  # -- steps -----------------------------------------------------------------------------------

  def run(self):
    c = self.config
    # Refuse before anything is written to output_dir: features, checkpoints or results.
    self.trainer.check_output_dir()
    if not c.do_train:
      self.trainer.checkpoint_or_error("evaluate" if c.do_eval else
                                       "predict with" if c.do_predict else "export")
    if c.do_train and c.init_checkpoint:
      self.check_init_checkpoint()
    # One run at a time in output_dir, for the whole run.
    with run_lock.RunLock(c.work_dir) as lock:
      if lock.taken_over:
        log("Took over %s from pid %d, which ended without releasing it" %
            (lock.path, lock.taken_over))
      # Again under the lock (another run may have just written it); an older version's
      # signature gets the keys it lacked once a checkpoint exists.
      self.trainer.check_output_dir(
          write=self.distribution.is_chief and bool(self.trainer.latest_checkpoint()))
      self.run_steps()

  def run_steps(self):
    """The requested do_* steps, in order (run() holds output_dir's lock)."""
    if self.config.do_train:
      self.train()
    if not self.distribution.is_chief:
      log("Worker %d is not the chief: eval, predict and export are left to worker 0" %
          self.distribution.worker_index)
      return
    for step in ("eval", "predict", "export"):
      if getattr(self.config, "do_" + step):
        getattr(self, "evaluate" if step == "eval" else step)()

  def check_init_checkpoint(self):
    """--init_checkpoint against this model's variables (names, shapes, --init_layer_map), in a
    throwaway graph: the training graph would find a mismatch only after building features."""
    c = self.config
    with tf.Graph().as_default():
      ids = tf.compat.v1.placeholder(tf.int32, [None, None])
      classifier.classifier_logits(c.bert_config, False, ids, ids, ids, len(c.label_list))
      checkpoint_init.check_init_checkpoint(c.init_checkpoint, tf.compat.v1.trainable_variables(),
                                            c.layer_map and list(c.layer_map))

  def loss_description(self):
    """Lines describing the training loss, logged once before training (none: hard labels)."""
    return []

  def train(self):
    """Training features first; then the final config (train steps) and its one model_fn."""
    record_file, info = self.train_features()
    self.config = c = self.config.for_train_examples(info["num_examples"])
    log("Training %d steps (batch %d, %d examples, %d warmup steps)" %
        (c.train_steps, c.train_batch_size, c.num_train_examples, c.warmup_steps))
    log("Compute precision %s (%s); weights, checkpoints and exports stay fp32" %
        (c.compute_precision, c.precision_reason))
    log("Elementwise ops compiled with XLA: %s (%s)" %
        ("yes" if c.elementwise_jit else "no", c.elementwise_jit_reason))
    log(self.distribution.describe(c.train_batch_size))
    for line in self.loss_description():
      log(line)
    self.trainer.train(self.input_fn(record_file, info, True), c.train_steps, c.train_batch_size)
    if self.checks_constant_loss:
      warning = collapse.constant_loss_warning(self.trainer.train_losses, len(c.label_list),
                                               c.train_temperature, c.learning_rate)
      if warning:
        log(warning)

  def train_features(self):
    return self.features("train")

  def eval_features(self):
    return self.features("dev")

  def evaluate(self):
    record_file, info = self.eval_features()
    metrics = self.trainer.evaluate(self.input_fn(record_file, info, False),
                                    self.config.eval_batch_size)
    log("***** Eval results (%s) *****" % os.path.join(self.config.output_dir,
                                                       "eval_results.txt"))
    for key in sorted(metrics):
      log("  %s = %s" % (key, metrics[key]))
    return metrics

  def predict(self):
    c = self.config
    record_file, info = self.features("test")
    layout = feature_cache.test_rows(self.processor, c.data_dir)
    if layout.count(True) != info["num_examples"]:
      raise UsageError("%s: %d examples, but %s holds %d: delete it to rebuild the cache" %
                       (self.processor.data_file(c.data_dir, "test"), layout.count(True),
                        record_file, info["num_examples"]))
    predictions = self.trainer.predict(self.input_fn(record_file, info, False),
                                       c.predict_batch_size)
    feature_cache.write_test_results(os.path.join(c.output_dir, "test_results.tsv"), layout,
                                     predictions, len(c.label_list))

  def export(self):
    c = self.config
    checkpoint = self.trainer.checkpoint_or_error("export")
    vocab = self.tokenizer.vocab
    warmup = export.default_warmup_inputs(c.max_seq_length, vocab["[CLS]"], vocab["[SEP]"],
                                          vocab["[UNK]"])
    return export.export_saved_model(
        c.export_dir, checkpoint, c.bert_config, list(c.label_list), c.vocab_file,
        c.do_lower_case, c.max_seq_length, temperature=c.train_temperature,
        extra_info={"task_name": c.task_name}, warmup_inputs=warmup,
        row_blocks=c.export_row_blocks_for)
