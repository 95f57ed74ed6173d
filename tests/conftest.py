"""Shared helpers of the classifier tests: a tiny vocab and config, tiny datasets, feature
records, a tiny trained model (session-scoped, shared by the trainer and export tests) and
`run_entry`, which runs an entry point in a subprocess.
"""

import contextlib
import io
import json
import os
import random
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What TensorFlow prints of its own (start-up notices, deprecations): a quiet run shows none.
TF_NOTICE_MARKERS = ("oneDNN", "cuInit", "cuda", "absl::InitializeLog", "Instructions for updating",
                     "is deprecated", "cpu_feature_guard", "tensorflow/", "I0000", "W0000")
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)


def use_exact_float32():
  """Turns TensorFloat-32 matmuls off: on Ampere+ GPUs they would break the 1e-5 comparisons
  between graphs, paddings and the (CPU-only) subprocesses. No effect on CPU."""
  import tensorflow as tf
  tf.config.experimental.enable_tensor_float_32_execution(False)


SERVING_API_MISSING = ("tensorflow-serving-api is not installed (`make test` installs it, or: pip "
                       "install --no-deps tensorflow-serving-api)")

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Chinese characters (one token each after BERT's CJK splitting) and a few English words.
CHARS = list("好差很不错太慢快吃饭菜送餐味道一般贵便宜香辣冷热服务态度外卖包装干净")
WORDS = ["good", "bad", "food", "very", "not", "slow", "fast", "service", "##s", "&"]
VOCAB_TOKENS = SPECIAL_TOKENS + CHARS + WORDS

POSITIVE = list("好错快香热干净便宜")
NEGATIVE = list("差慢贵冷辣")
NEUTRAL = list("很不太吃饭菜送餐味道一般服务态度外卖包装")


def write_vocab(path, tokens=None):
  tokens = list(tokens or VOCAB_TOKENS)
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(tokens) + "\n")
  return str(path)


def tiny_config_dict(vocab_size=len(VOCAB_TOKENS), **overrides):
  config = {"vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02}
  config.update(overrides)
  return config


def tiny_config(vocab_size=len(VOCAB_TOKENS), **overrides):
  from bert import modeling
  return modeling.BertConfig.from_dict(tiny_config_dict(vocab_size, **overrides))


def write_config(path, **overrides):
  with open(path, "w", encoding="utf-8") as f:
    json.dump(tiny_config_dict(**overrides), f, indent=1)
  return str(path)


def review_lines(count, seed=0, min_len=3, max_len=14, ampersand_every=0):
  """`text&label` lines: label 1 when the review has more positive than negative characters.

  ampersand_every: every n-th line has a `&` inside its text (the split must use the last one).
  """
  rng = random.Random(seed)
  lines = []
  for index in range(count):
    label = index % 2
    length = rng.randint(min_len, max_len)
    body = [rng.choice(NEUTRAL) for _ in range(length)]
    marks = POSITIVE if label else NEGATIVE
    for _ in range(rng.randint(1, 3)):
      body.insert(rng.randrange(len(body) + 1), rng.choice(marks))
    text = "".join(body)
    if ampersand_every and index % ampersand_every == 0:
      text = text[:2] + "&" + text[2:]
    lines.append((text, str(label)))
  return lines


def write_emotion_dataset(data_dir, num_train=64, num_dev=16, num_test=12, seed=0):
  """train.csv, dev.csv, test.csv in the takeaway format (`text&label`, split on the last `&`)."""
  os.makedirs(str(data_dir), exist_ok=True)
  sizes = {"train": num_train, "dev": num_dev, "test": num_test}
  for offset, (split, count) in enumerate(sizes.items()):
    lines = review_lines(count, seed=seed + offset, ampersand_every=7)
    with open(os.path.join(str(data_dir), split + ".csv"), "w", encoding="utf-8") as f:
      for text, label in lines:
        f.write("%s&%s\n" % (text, label))
  return str(data_dir)


def make_examples(lines, split="train"):
  from bert import classifier_data
  return [classifier_data.InputExample("%s-%d" % (split, i), text, None, label)
          for i, (text, label) in enumerate(lines)]


def write_feature_records(record_file, examples, label_list, vocab_file, max_seq_length,
                          do_lower_case=True):
  """Examples → unpadded TFRecord (with its sidecar JSON); returns the InputFeatures."""
  from bert import classifier_data, tokenization
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case)
  features = classifier_data.convert_examples_to_features(examples, label_list, max_seq_length,
                                                          tokenizer)
  classifier_data.write_records(
      str(record_file), (classifier_data.feature_to_example(f) for f in features),
      {"test": True}, {"num_truncated": sum(f.truncated for f in features)})
  return features


def _entry_env(env=None):
  full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT,
                  CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", ""))
  full_env.update(env or {})
  return full_env


def start_entry(args, cwd=None, env=None):
  """Starts `python args...` (see run_entry) without waiting: a subprocess.Popen with pipes."""
  return subprocess.Popen([sys.executable] + [str(a) for a in args], cwd=cwd or REPO_ROOT,
                          env=_entry_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)


def load_script(name):
  """Imports scripts/<name>.py as a module (scripts/ is not a package)."""
  import importlib.util
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, "scripts",
                                                                   name + ".py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def run_entry(args, cwd=None, timeout=300, env=None):
  """Runs `python <script> args...` from the repo root with TF's C++ logging quiet.

  args: a list whose first item is the script (relative to the repo root) or `-c`.
  Returns a CompletedProcess with text stdout and stderr.
  """
  return subprocess.run([sys.executable] + [str(a) for a in args], cwd=cwd or REPO_ROOT,
                        env=_entry_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        universal_newlines=True, timeout=timeout)


def classifier_flags(**values):
  """run_classifier's flags parsed into a private FlagValues (the global FLAGS stays untouched).

  values: flag name → value, given as on the command line (`do_train=True`, `labels="a,b"`).
  """
  from absl import flags as absl_flags
  from bert import classifier_flags

  private = absl_flags.FlagValues()
  classifier_flags.define_flags(private)
  argv = ["run_classifier"]
  for name, value in values.items():
    if isinstance(value, bool):
      argv.append("--%s%s" % ("" if value else "no", name))
    else:
      argv.append("--%s=%s" % (name, value))
  private(argv)
  return private


LABELS = ["0", "1"]
MAX_SEQ_LENGTH = 24


class TinyModel(object):
  """A tiny classifier trained to overfit 32 reviews (built once per session)."""

  def __init__(self, root):
    from bert import classifier, classifier_data
    self.root = str(root)
    self.vocab_file = write_vocab(os.path.join(self.root, "vocab.txt"))
    self.config = tiny_config()
    self.labels = LABELS
    self.max_seq_length = MAX_SEQ_LENGTH
    self.output_dir = os.path.join(self.root, "model")
    self.lines = review_lines(32, seed=5)
    self.examples = make_examples(self.lines)
    self.record_file = os.path.join(self.root, "train.tf_record")
    self.features = write_feature_records(self.record_file, self.examples, LABELS,
                                          self.vocab_file, MAX_SEQ_LENGTH)
    self.train_steps = 120
    self.model_fn = classifier.model_fn_builder(self.config, LABELS, learning_rate=1e-3,
                                                num_train_steps=self.train_steps,
                                                num_warmup_steps=0)
    self.signature = {"bert_config": self.config.architecture(), "labels": LABELS}
    self.trainer = self.new_trainer()
    self.train_input_fn = classifier_data.input_fn_builder(
        self.record_file, True, MAX_SEQ_LENGTH, seed=1)
    self.eval_input_fn = classifier_data.input_fn_builder(self.record_file, False, MAX_SEQ_LENGTH)
    self.checkpoint = self.trainer.train(self.train_input_fn, self.train_steps, batch_size=16)

  def new_trainer(self, output_dir=None, model_fn=None, **kwargs):
    from bert.training import Trainer
    kwargs.setdefault("model_signature", self.signature)
    kwargs.setdefault("params", {"seed": 3})
    kwargs.setdefault("save_checkpoints_steps", 1000)
    kwargs.setdefault("log_every_n_steps", 1000)
    return Trainer(model_fn or self.model_fn, output_dir or self.output_dir, **kwargs)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
  return TinyModel(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture
def vocab_file(tmp_path):
  return write_vocab(tmp_path / "vocab.txt")


def run_config(distill=True, **values):
  """A RunConfig (RunConfig.create: checked, derived values computed) with the entry points'
  defaults, quiet logging and no intermediate checkpoints, then values by flag name.

  distill=False drops the distillation settings: a run_classifier.py config (a teacher's).
  """
  from bert import run_config as run_config_lib
  values = dict(dict(log_every_n_steps=1000, save_checkpoints_steps=100000), **values)
  if not distill:
    values = {k: v for k, v in values.items() if k not in run_config_lib.DISTILL_NAMES}
  return run_config_lib.RunConfig.create(**values)


@contextlib.contextmanager
def captured():
  """Collects what the block prints (stdout) in a StringIO."""
  buffer = io.StringIO()
  with contextlib.redirect_stdout(buffer):
    yield buffer
