"""Flags and the train → eval → predict → export sequence shared by both entry points.

`run_classifier.py` runs ClassifierRun as it is; `run_classifier_distill.py` subclasses it to add
the teacher and Hinton's loss. Data flows one way: text → features (TFRecord) → model_fn →
trainer → export.
"""

import math
import os

from absl import flags
import numpy as np
import tensorflow as tf

from bert import checkpoint_init, classifier, classifier_data, export, modeling, tokenization
from bert.errors import UsageError
from bert.training import Trainer, log

REQUIRED_TOKENS = ("[CLS]", "[SEP]", "[UNK]")


class _FlagDefiner(object):
  """absl's DEFINE_* functions bound to one FlagValues."""

  def __init__(self, flag_values):
    self.flag_values = flag_values

  def __getattr__(self, name):
    define = getattr(flags, name)
    return lambda *args, **kwargs: define(*args, flag_values=self.flag_values, **kwargs)


def define_flags(flag_values=None):
  """Google's run_classifier flags (same names and meaning) plus this toolkit's.

  flag_values: where to define them (default absl's global FLAGS). Idempotent, so both entry
  points can be imported in one process (tests, notebooks).
  """
  flag_values = flags.FLAGS if flag_values is None else flag_values
  if "task_name" in flag_values:
    return
  f = _FlagDefiner(flag_values)
  f.DEFINE_string("task_name", None, "Task: emotion, csv, mrpc, cola, mnli or xnli.")
  f.DEFINE_string("data_dir", None, "Directory of the task's train/dev/test files.")
  f.DEFINE_string("vocab_file", None, "The vocabulary the model was trained with.")
  f.DEFINE_string("bert_config_file", None, "bert_config.json of the model.")
  f.DEFINE_string("output_dir", None, "Checkpoints, features, summaries and results go here.")
  f.DEFINE_string("init_checkpoint", None, "Google BERT checkpoint, training checkpoint or export "
                  "to start from.")
  f.DEFINE_string("init_layer_map", None, "Layer i of the model starts from --init_checkpoint's "
                  "layer map[i], e.g. 0,4,8,11 (a shallow student from a deep teacher).")
  f.DEFINE_bool("do_lower_case", True, "Lower-case and strip accents (uncased and Chinese models).")
  f.DEFINE_integer("max_seq_length", 128, "Longest token sequence; longer texts are truncated.")
  f.DEFINE_bool("do_train", False, "Train on train split.")
  f.DEFINE_bool("do_eval", False, "Evaluate on the dev split (eval_results.txt).")
  f.DEFINE_bool("do_predict", False, "Predict the test split (test_results.tsv).")
  f.DEFINE_bool("do_export", False, "Export a SavedModel for tensorflow_model_server.")
  f.DEFINE_string("export_dir", None, "Base directory of the exported versions.")
  f.DEFINE_integer("train_batch_size", 32, "Training batch size.")
  f.DEFINE_integer("eval_batch_size", 8, "Eval batch size.")
  f.DEFINE_integer("predict_batch_size", 8, "Predict batch size.")
  f.DEFINE_float("learning_rate", 5e-5, "Peak learning rate of Adam.")
  f.DEFINE_float("num_train_epochs", 3.0, "Epochs of training.")
  f.DEFINE_integer("num_train_steps", 0, "Train this many steps instead of num_train_epochs.")
  f.DEFINE_float("warmup_proportion", 0.1, "Fraction of steps with linear learning-rate warmup.")
  f.DEFINE_integer("save_checkpoints_steps", 1000, "Save a checkpoint every this many steps.")
  f.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints kept in output_dir.")
  f.DEFINE_integer("log_every_n_steps", 50, "Progress line and summaries every this many steps.")
  f.DEFINE_integer("iterations_per_loop", 1000, "Accepted for compatibility with Google's scripts.")
  f.DEFINE_bool("use_tpu", False, "Accepted for compatibility; TPUs are not supported.")
  f.DEFINE_bool("do_distill", False, "Train the teacher on temperature-scaled logits "
                "(cross-entropy on logits/T times T^2); its export divides logits by T.")
  f.DEFINE_float("temperature", 1.0, "Softmax temperature T (> 0).")
  f.DEFINE_enum("padding", "dynamic", ["dynamic", "fixed"], "Pad each batch to its longest "
                "example (bucketed when training) or always to max_seq_length.")
  f.DEFINE_enum("precision", "fp32", ["fp32", "fp16", "bf16"], "Compute precision; weights, "
                "checkpoints and exports stay fp32.")
  f.DEFINE_bool("use_xla", False, "Compile the graph with XLA JIT.")
  f.DEFINE_integer("seed", 12345, "Random seed of initialisation, dropout and shuffling.")
  f.DEFINE_string("labels", None, "csv task: comma-separated label list (default: read from the "
                  "training file, sorted).")
  f.DEFINE_string("text_column", "0", "csv task: text column (index, or name with --csv_header).")
  f.DEFINE_string("text_b_column", "", "csv task: second text column for sentence pairs.")
  f.DEFINE_string("label_column", "1", "csv task: label column.")
  f.DEFINE_string("csv_delimiter", "", "csv task: delimiter (default: ',' for .csv, tab else).")
  f.DEFINE_bool("csv_header", False, "csv task: the first row names the columns.")


def _require(value, flag, what):
  if value is None or value == "":
    raise UsageError("--%s: required (%s)" % (flag, what))


def _positive(value, flag):
  if value is None or value <= 0:
    raise UsageError("--%s: must be > 0, got %s" % (flag, value))


def check_vocab(vocab, vocab_file, bert_config):
  for token in REQUIRED_TOKENS:
    if token not in vocab:
      raise UsageError("--vocab_file %s: has no %s token (a BERT vocab needs %s)" %
                       (vocab_file, token, " ".join(REQUIRED_TOKENS)))
  if len(vocab) != bert_config.vocab_size:
    raise UsageError("--vocab_file %s: has %d tokens but --bert_config_file says vocab_size %d" %
                     (vocab_file, len(vocab), bert_config.vocab_size))


class ClassifierRun(object):
  """One invocation: validated settings, then the requested do_* steps in order."""

  def __init__(self, flag_values):
    self.flags = flag_values
    self.validate_flags()
    fv = flag_values
    self.bert_config = modeling.BertConfig.from_json_file(fv.bert_config_file)
    if fv.max_seq_length > self.bert_config.max_position_embeddings:
      raise UsageError("--max_seq_length %d: larger than max_position_embeddings %d of %s" %
                       (fv.max_seq_length, self.bert_config.max_position_embeddings,
                        fv.bert_config_file))
    self.tokenizer = tokenization.FullTokenizer(fv.vocab_file, fv.do_lower_case)
    check_vocab(self.tokenizer.vocab, fv.vocab_file, self.bert_config)
    tokenization.validate_case_matches_checkpoint(fv.do_lower_case, fv.init_checkpoint or "")
    self.processor = classifier_data.get_processor(
        fv.task_name, text_column=fv.text_column, text_b_column=fv.text_b_column,
        label_column=fv.label_column, delimiter=fv.csv_delimiter, has_header=fv.csv_header,
        labels=fv.labels.split(",") if fv.labels else None)
    if fv.data_dir:
      self.processor.prepare(fv.data_dir)
    self.label_list = self.processor.get_labels()
    if fv.do_export:
      export.check_writable(fv.export_dir)
    self.trainer = Trainer(
        self.model_fn_for_run, fv.output_dir, params={"seed": fv.seed},
        save_checkpoints_steps=fv.save_checkpoints_steps,
        keep_checkpoint_max=fv.keep_checkpoint_max, log_every_n_steps=fv.log_every_n_steps,
        model_signature=self.model_signature(), use_xla=fv.use_xla)
    self.layer_map = checkpoint_init.parse_layer_map(fv.init_layer_map,
                                                     self.bert_config.num_hidden_layers)
    if self.layer_map and not fv.init_checkpoint:
      raise UsageError("--init_layer_map: needs --init_checkpoint to take the layers from")
    self.num_train_steps = 1
    self.num_warmup_steps = 0

  # -- settings --------------------------------------------------------------------------------

  def validate_flags(self):
    fv = self.flags
    if not (fv.do_train or fv.do_eval or fv.do_predict or fv.do_export):
      raise UsageError("nothing to do: give at least one of --do_train, --do_eval, --do_predict, "
                       "--do_export")
    if fv.use_tpu:
      raise UsageError("--use_tpu: TPUs are not supported by this toolkit (use GPU or CPU)")
    for flag, what in (("task_name", "the task"), ("vocab_file", "vocab.txt"),
                       ("bert_config_file", "bert_config.json"),
                       ("output_dir", "where checkpoints go")):
      _require(getattr(fv, flag), flag, what)
    if fv.do_train or fv.do_eval or fv.do_predict:
      _require(fv.data_dir, "data_dir", "directory of the task's data files")
    if fv.do_export:
      _require(fv.export_dir, "export_dir", "base directory of exported versions")
    for flag in ("train_batch_size", "eval_batch_size", "predict_batch_size", "learning_rate",
                 "max_seq_length", "save_checkpoints_steps", "keep_checkpoint_max",
                 "temperature"):
      _positive(getattr(fv, flag), flag)
    if fv.do_train and fv.num_train_steps <= 0:
      _positive(fv.num_train_epochs, "num_train_epochs")
    if not 0.0 <= fv.warmup_proportion <= 1.0:
      raise UsageError("--warmup_proportion: must be in [0, 1], got %s" % fv.warmup_proportion)
    if fv.max_seq_length < 3:
      raise UsageError("--max_seq_length: must be at least 3 ([CLS] text [SEP]), got %d" %
                       fv.max_seq_length)

  def model_signature(self):
    """What must match for a checkpoint in output_dir to be resumed or evaluated."""
    return {"bert_config": self.bert_config.architecture(), "labels": self.label_list}

  @property
  def train_temperature(self):
    """Temperature of the hard-label loss and of the export (teacher trained with --do_distill)."""
    return self.flags.temperature if self.flags.do_distill else 1.0

  # -- features --------------------------------------------------------------------------------

  def features(self, split):
    """The split's TFRecord in output_dir, rebuilt only when its inputs changed. Returns (path, info)."""
    fv = self.flags
    data_file = self.processor.data_file(fv.data_dir, split)
    if not os.path.isfile(data_file):
      raise UsageError("data file %s: not found (needed by --do_%s)" %
                       (data_file, {"train": "train", "dev": "eval", "test": "predict"}[split]))
    fingerprint = classifier_data.features_fingerprint(
        data_file, fv.vocab_file, fv.max_seq_length, fv.do_lower_case, self.label_list,
        self.processor.options())
    record_file = os.path.join(fv.output_dir, "%s.tf_record" % split)
    info = classifier_data.cached_record_info(record_file, fingerprint)
    if info:
      log("Reusing %s (%d examples)" % (record_file, info["num_examples"]))
      return record_file, info
    examples = self.processor.get_examples(fv.data_dir, split)
    features = classifier_data.convert_examples_to_features(
        examples, self.label_list, fv.max_seq_length, self.tokenizer)
    truncated = sum(f.truncated for f in features)
    lengths = [len(f.input_ids) for f in features]
    info = classifier_data.write_records(
        record_file, (classifier_data.feature_to_example(f) for f in features), fingerprint,
        {"num_truncated": truncated, "median_length": float(np.median(lengths)),
         "max_length": max(lengths)})
    log("Wrote %s: %d examples, median length %d tokens, %d truncated to max_seq_length %d" %
        (record_file, info["num_examples"], info["median_length"], truncated, fv.max_seq_length))
    return record_file, info

  def input_fn(self, record_file, is_training):
    fv = self.flags
    return classifier_data.input_fn_builder(
        record_file, is_training, fv.max_seq_length, padding=fv.padding,
        num_labels=len(self.label_list), seed=fv.seed)

  # -- model -----------------------------------------------------------------------------------

  def loss_builder(self):
    return classifier.hard_label_loss(self.train_temperature)

  def model_fn(self):
    fv = self.flags
    return classifier.model_fn_builder(
        self.bert_config, self.label_list, init_checkpoint=fv.init_checkpoint,
        learning_rate=fv.learning_rate, num_train_steps=self.num_train_steps,
        num_warmup_steps=self.num_warmup_steps, temperature=self.train_temperature,
        precision=fv.precision, init_layer_map=self.layer_map,
        loss_builder=self.loss_builder())

  def model_fn_for_run(self, features, labels, mode, params):
    return self.model_fn()(features, labels, mode, params)

  # -- steps -----------------------------------------------------------------------------------

  def run(self):
    fv = self.flags
    # Refuse before anything is written to output_dir: features, checkpoints or results.
    self.trainer._check_signature()
    if not fv.do_train and not self.trainer.latest_checkpoint():
      raise UsageError("--output_dir %s: no checkpoint to %s (train first with --do_train)" %
                       (fv.output_dir, "evaluate" if fv.do_eval else
                        "predict with" if fv.do_predict else "export"))
    if fv.do_train and fv.init_checkpoint:
      self.check_init_checkpoint()
    if self.flags.do_train:
      self.train()
    if self.flags.do_eval:
      self.evaluate()
    if self.flags.do_predict:
      self.predict()
    if self.flags.do_export:
      self.export()

  def check_init_checkpoint(self):
    """--init_checkpoint against this model's variables (names, shapes, --init_layer_map), in a
    throwaway graph: the training graph would find a mismatch only after building features."""
    with tf.Graph().as_default():
      ids = tf.compat.v1.placeholder(tf.int32, [None, None])
      classifier.classifier_logits(self.bert_config, False, ids, ids, ids, len(self.label_list))
      checkpoint_init.check_init_checkpoint(self.flags.init_checkpoint,
                                            tf.compat.v1.trainable_variables(), self.layer_map)

  def train(self):
    fv = self.flags
    record_file, info = self.train_features()
    if fv.num_train_steps > 0:
      self.num_train_steps = fv.num_train_steps
    else:
      self.num_train_steps = max(1, int(math.ceil(
          info["num_examples"] * fv.num_train_epochs / fv.train_batch_size)))
    self.num_warmup_steps = int(self.num_train_steps * fv.warmup_proportion)
    log("Training %d steps (batch %d, %d examples, %d warmup steps)" %
        (self.num_train_steps, fv.train_batch_size, info["num_examples"], self.num_warmup_steps))
    self.trainer.train(self.input_fn(record_file, True), self.num_train_steps,
                       fv.train_batch_size)

  def train_features(self):
    return self.features("train")

  def eval_features(self):
    return self.features("dev")

  def evaluate(self):
    record_file, _ = self.eval_features()
    metrics = self.trainer.evaluate(self.input_fn(record_file, False), self.flags.eval_batch_size)
    log("***** Eval results (%s) *****" % os.path.join(self.flags.output_dir, "eval_results.txt"))
    for key in sorted(metrics):
      log("  %s = %s" % (key, metrics[key]))
    return metrics

  def predict(self):
    fv = self.flags
    record_file, info = self.features("test")
    path = os.path.join(fv.output_dir, "test_results.tsv")
    rows = 0
    with open(path + ".tmp", "w", encoding="utf-8") as writer:
      for prediction in self.trainer.predict(self.input_fn(record_file, False),
                                             fv.predict_batch_size):
        writer.write("\t".join("%.8f" % p for p in prediction["probabilities"]) + "\n")
        rows += 1
    if rows != info["num_examples"]:
      raise UsageError("predicted %d rows for %d examples" % (rows, info["num_examples"]))
    os.replace(path + ".tmp", path)
    log("Wrote %s (%d rows)" % (path, rows))

  def export(self):
    fv = self.flags
    checkpoint = self.trainer.latest_checkpoint()
    if not checkpoint:
      raise UsageError("--output_dir %s: no checkpoint to export (train first with --do_train)" %
                       fv.output_dir)
    self.trainer._check_signature()
    vocab = self.tokenizer.vocab
    warmup = export.default_warmup_inputs(fv.max_seq_length, vocab["[CLS]"], vocab["[SEP]"],
                                          vocab["[UNK]"])
    return export.export_saved_model(
        fv.export_dir, checkpoint, self.bert_config, self.label_list, fv.vocab_file,
        fv.do_lower_case, fv.max_seq_length, temperature=self.train_temperature,
        extra_info={"task_name": fv.task_name}, warmup_inputs=warmup)
