"""Command-line flags of both entry points and the checks that need only their values.

No TensorFlow here: the entry points check their flags before importing it, so a bad flag is
reported at once.
"""

import math

from absl import flags

from bert.errors import UsageError


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
  f.DEFINE_string("task_name", None, "Task: emotion, csv, sst2, mrpc, cola, mnli or xnli.")
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
  f.DEFINE_bool("export_row_blocks", True, "Exports split a small request's rows into two blocks "
                "that run side by side on a CPU (README: Row blocks); --noexport_row_blocks "
                "leaves them whole, e.g. for GPU serving.")
  f.DEFINE_integer("serving_l2_kib", 0, "L2 cache per core (KiB) of the CPU that serves the "
                   "export, which decides which requests' rows split (README: Row blocks); "
                   "0: this machine's.")
  f.DEFINE_integer("serving_cores", 0, "Cores of the CPU that serves the export: on 2 cores "
                   "small models are served with one thread per op (README: Row blocks); "
                   "0: this machine's.")
  f.DEFINE_integer("train_batch_size", 32, "Training batch size.")
  f.DEFINE_integer("eval_batch_size", 8, "Eval batch size.")
  f.DEFINE_integer("predict_batch_size", 8, "Predict batch size.")
  f.DEFINE_float("learning_rate", 5e-5, "Peak learning rate of Adam.")
  f.DEFINE_float("num_train_epochs", 3.0, "Epochs of training.")
  f.DEFINE_integer("num_train_steps", 0, "Train this many steps instead of num_train_epochs.")
  f.DEFINE_bool("adam_bias_correction", True, "Adam's bias correction (as Hugging Face's AdamW). "
                "--noadam_bias_correction reproduces Google's TF1 optimizer exactly, whose first "
                "steps are ~3x larger than the learning rate.")
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
  f.DEFINE_enum("precision", "auto", ["auto", "fp32", "fp16", "bf16"], "Compute precision; "
                "weights, checkpoints and exports stay fp32. auto: bf16 where the hardware has "
                "native bf16 (CPU avx512_bf16/amx_bf16, GPU compute capability >= 8.0), else fp32.")
  f.DEFINE_bool("use_xla", False, "Compile the graph with XLA JIT.")
  f.DEFINE_enum("xla_elementwise", "auto", ["auto", "on", "off"], "Compile the training step's "
                "elementwise ops (GELU, dropout, layer norm, Adam's updates) with XLA, leaving the "
                "matmuls to oneDNN. auto: on when training in bf16 or fp32 on a CPU with "
                "--padding=fixed (bf16 1.23-1.26x, fp32 1.03-1.06x faster there); off with "
                "dynamic padding (each batch length compiles again), in fp16 and on GPUs (see "
                "--use_xla).")
  f.DEFINE_enum("distribution", "none", ["none", "mirrored", "multi_worker"], "Training on "
                "several devices (tf.distribute): mirrored: the devices of this machine "
                "(--num_devices); multi_worker: the machines in TF_CONFIG. --train_batch_size is "
                "the global batch, split over the replicas.")
  f.DEFINE_integer("num_devices", 0, "--distribution=mirrored: use the first N GPUs (0: all); "
                   "on a machine without GPUs, N logical CPU devices (for testing).")
  f.DEFINE_bool("verbose", False, "Show TensorFlow's own log lines and tracebacks of errors "
                "(same as the environment variable BERT_VERBOSE=1).")
  f.DEFINE_integer("seed", 12345, "Random seed of initialisation, dropout and shuffling.")
  f.DEFINE_string("labels", None, "csv task: comma-separated label list (default: read from the "
                  "training file, sorted).")
  f.DEFINE_string("text_column", "0", "csv task: text column (index, or name with --csv_header).")
  f.DEFINE_string("text_b_column", "", "csv task: second text column for sentence pairs.")
  f.DEFINE_string("label_column", "1", "csv task: label column.")
  f.DEFINE_string("csv_delimiter", "", "csv task: delimiter (default: ',' for .csv, tab else).")
  f.DEFINE_bool("csv_header", False, "csv task: the first row names the columns.")


def require(value, flag, what):
  if value is None or value == "":
    raise UsageError("--%s: required (%s)" % (flag, what))


def finite(value, flag):
  """Floats accept nan and inf from the command line: no check below would catch them."""
  if isinstance(value, float) and not math.isfinite(value):
    raise UsageError("--%s: must be a finite number, got %s" % (flag, value))


def positive(value, flag):
  finite(value, flag)
  if value is None or value <= 0:
    raise UsageError("--%s: must be > 0, got %s" % (flag, value))


def check_float_flags(values):
  """Every float flag (learning_rate, temperature, alpha, any added later) is finite.

  values: {flag name: value}.
  """
  for name in sorted(values):
    if isinstance(values[name], float):
      finite(values[name], name)


def check_flags(fv):
  """The checks that need only the flags' values (no file read, no TensorFlow)."""
  if not (fv.do_train or fv.do_eval or fv.do_predict or fv.do_export):
    raise UsageError("nothing to do: give at least one of --do_train, --do_eval, --do_predict, "
                     "--do_export")
  if fv.use_tpu:
    raise UsageError("--use_tpu: TPUs are not supported by this toolkit (use GPU or CPU)")
  for flag, what in (("task_name", "the task"), ("vocab_file", "vocab.txt"),
                     ("bert_config_file", "bert_config.json"),
                     ("output_dir", "where checkpoints go")):
    require(getattr(fv, flag), flag, what)
  if fv.do_train or fv.do_eval or fv.do_predict:
    require(fv.data_dir, "data_dir", "directory of the task's data files")
  if fv.do_export:
    require(fv.export_dir, "export_dir", "base directory of exported versions")
  for flag in ("train_batch_size", "eval_batch_size", "predict_batch_size", "learning_rate",
               "max_seq_length", "save_checkpoints_steps", "keep_checkpoint_max",
               "temperature"):
    positive(getattr(fv, flag), flag)
  # absl FlagValues, or a namespace of a RunConfig's settings
  check_float_flags(fv.flag_values_dict() if hasattr(fv, "flag_values_dict") else vars(fv))
  if getattr(fv, "serving_l2_kib", 0) < 0:
    raise UsageError("--serving_l2_kib: must be >= 0 (0: this machine's L2 cache), got %d" %
                     fv.serving_l2_kib)
  if getattr(fv, "serving_cores", 0) < 0:
    raise UsageError("--serving_cores: must be >= 0 (0: this machine's cores), got %d" %
                     fv.serving_cores)
  if fv.num_train_steps < 0:
    raise UsageError("--num_train_steps: must be >= 0 (0: train for --num_train_epochs), got %d" %
                     fv.num_train_steps)
  if fv.do_train and fv.num_train_steps <= 0:
    positive(fv.num_train_epochs, "num_train_epochs")
  finite(fv.warmup_proportion, "warmup_proportion")
  if fv.labels is not None:
    labels = [label.strip() for label in fv.labels.split(",")]
    if len(labels) < 2 or "" in labels or len(set(labels)) != len(labels):
      raise UsageError("--labels: expected at least two distinct, non-empty comma-separated "
                       "labels, got %r" % fv.labels)
  if not 0.0 <= fv.warmup_proportion <= 1.0:
    raise UsageError("--warmup_proportion: must be in [0, 1], got %s" % fv.warmup_proportion)
  if hasattr(fv, "distribution"):
    from bert import distribute  # pylint: disable=import-outside-toplevel
    distribute.check_flags(fv)
  if fv.max_seq_length < 3:
    raise UsageError("--max_seq_length: must be at least 3 ([CLS] text [SEP]), got %d" %
                     fv.max_seq_length)


def define_distill_flags(flag_values=None):
  """run_classifier's flags plus the teacher's; the temperature defaults to 2."""
  flag_values = flags.FLAGS if flag_values is None else flag_values
  define_flags(flag_values)
  if "teacher_model" in flag_values:
    return
  f = _FlagDefiner(flag_values)
  f.DEFINE_string("teacher_model", None, "Teacher SavedModel: a version dir, or a base dir "
                  "(its newest numeric version); several, an ensemble: PATH[:WEIGHT],...")
  f.DEFINE_float("alpha", 0.5, "Weight of the soft (teacher) loss, in [0, 1].")
  f.DEFINE_enum("teacher_logits", "online", ["online", "cached"], "online: the teacher runs in "
                "the student's graph each step; cached: one pass of each teacher stores its logits "
                "in the training features, reused across epochs and reruns.")
  f.DEFINE_string("transfer_file", None, "Transfer set: unlabelled examples taught by the "
                  "teacher's soft targets alone (alpha=1 for them), shuffled in with the labelled "
                  "training examples; an epoch covers both. Read as --transfer_format says.")
  f.DEFINE_enum("transfer_format", "text", ["text", "task"], "text: one example per line (the "
                "whole line is the text; text_a<TAB>text_b for sentence-pair tasks); task: the "
                "task's own training-file format, its labels read and ignored.")
  f.DEFINE_integer("augment_copies", 0, "Add this many augmented variants of each training text "
                   "to the transfer set (masking, corpus-word replacement, n-gram sampling; "
                   "Tang et al. 2019), cached in output_dir/augmented.txt. Labels are not kept.")
  f.DEFINE_integer("augment_seed", 1, "Seed of the augmentation: the same seed, data and settings "
                   "give the same variants.")
  f.DEFINE_float("augment_mask_prob", 0.1, "Augmentation: probability of replacing a word (a "
                 "character in CJK text) with [MASK] ([UNK] when the vocab has no [MASK]).")
  f.DEFINE_float("augment_replace_prob", 0.1, "Augmentation: probability of replacing a word with "
                 "one drawn from the training texts (CJK characters with CJK characters).")
  f.DEFINE_float("augment_ngram_prob", 0.25, "Augmentation: probability of keeping only a random "
                 "n-gram of the variant, n uniform in [1, --augment_max_ngram].")
  f.DEFINE_integer("augment_max_ngram", 5, "Augmentation: longest n-gram kept by n-gram sampling.")
  f.DEFINE_integer("augment_min_length", 0, "Augmentation: only training texts of at least this "
                   "many words (CJK: characters) get variants, so the transfer set leans towards "
                   "texts as long as those served (SST-2: training phrases have a median of 7 "
                   "words, dev sentences 19).")
  f.DEFINE_string("augment_mlm_checkpoint", None, "Augmentation: a pre-trained Google checkpoint "
                  "with its masked-LM head (cls/predictions/*, bert_config.json beside it, the "
                  "--vocab_file vocab): replaced words that are one wordpiece are drawn from its "
                  "top --augment_mlm_top_k predictions (TinyBERT) instead of the corpus.")
  f.DEFINE_integer("augment_mlm_top_k", 15, "Augmentation: candidates per masked word.")
  from bert import distill_config  # pylint: disable=import-outside-toplevel
  distill_config.define_flags(flag_values)  # --distill_config, --distill_preset, ...
  flag_values.set_default("temperature", 2.0)


def check_distill_flags(fv):
  check_flags(fv)
  require(fv.teacher_model, "teacher_model", "the teacher's SavedModel export")
  finite(fv.alpha, "alpha")
  if not 0.0 <= fv.alpha <= 1.0:
    raise UsageError("--alpha: must be in [0, 1], got %s" % fv.alpha)
  if fv.do_distill:
    raise UsageError("--do_distill: is for training a teacher with run_classifier.py")
  from bert import distill_config  # pylint: disable=import-outside-toplevel
  distill_config.check_flags(fv)  # intermediate matches, several teachers
  check_transfer_flags(fv)


def check_transfer_flags(fv):
  """--transfer_file and --augment_* values."""
  if fv.augment_copies < 0:
    raise UsageError("--augment_copies: must be >= 0, got %d" % fv.augment_copies)
  for flag in ("augment_mask_prob", "augment_replace_prob", "augment_ngram_prob"):
    value = getattr(fv, flag)
    if not 0.0 <= value <= 1.0:  # False for nan too
      raise UsageError("--%s: must be in [0, 1], got %s" % (flag, value))
  if fv.augment_mask_prob + fv.augment_replace_prob > 1.0:
    raise UsageError("--augment_mask_prob + --augment_replace_prob: must be at most 1, got %s" %
                     (fv.augment_mask_prob + fv.augment_replace_prob))
  if fv.augment_max_ngram < 1:
    raise UsageError("--augment_max_ngram: must be >= 1, got %d" % fv.augment_max_ngram)
  if fv.augment_min_length < 0:
    raise UsageError("--augment_min_length: must be >= 0, got %d" % fv.augment_min_length)
  if fv.augment_mlm_top_k < 1:
    raise UsageError("--augment_mlm_top_k: must be >= 1, got %d" % fv.augment_mlm_top_k)

