"""Reliability: every bad input exits 1 with one line naming what is wrong and loses nothing;
kill -9 during training or export is safe; a NaN loss or a failed checkpoint write keeps the
last good checkpoint.

One module-scoped `world` trains a tiny 1-layer model in-process (checkpoints at steps 2 and 4,
features cached) and exports it; each bad input then runs against that output_dir and export
dir, whose files (hashes and mtimes) must be unchanged afterwards. The bad inputs run
in-process through errors.run_main (exit status and stderr as the entry points give them);
two run as real entry-point subprocesses to show the same one line reaches the terminal with no
traceback. The fault tests SIGKILL a real training run after its first checkpoint and a real
export just before it renames its version into place (tests/fault_helpers.py pauses it there).
All four subprocesses start together when the world is built, so their TensorFlow imports
overlap the in-process tests.
"""

import glob
import hashlib
import os
import random
import re
import shutil
import signal
import threading
import time

import pytest
import tensorflow as tf

from bert import classifier, classifier_data, classifier_run, export
from bert.errors import UsageError, run_main
from bert.distill_run import DistillRun
from bert.run_config import RunConfig

import conftest

tf1 = tf.compat.v1

ENTRY = "bert/run_classifier.py"
DISTILL_ENTRY = "bert/run_classifier_distill.py"
FAULT_HELPERS = "tests/fault_helpers.py"
MAX_SEQ_LENGTH = 24
TRAINED_STEPS = 4
QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "3"}
# TensorFlow's own start-up lines, which it writes to stderr before absl logging is set up
# (TF_CPP_MIN_LOG_LEVEL does not silence them); every other stderr line must be ours.
TF_STARTUP_LINE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|"
                             r"[IWE]\d{4} [\d:. ]+\d+ \S+\.cc:\d+\]|To enable the following "
                             r"instructions)")


# -- the world: data, vocab, config, a trained output_dir and its export -----------------------

def write_bytes(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)
  return path


def snapshot(directory):
  """{relative path: (sha256, mtime_ns)} of every file under directory but the run lock (each
  run writes its pid there)."""
  files = {}
  for parent, _, names in os.walk(directory):
    for name in names:
      if name == ".lock":
        continue
      path = os.path.join(parent, name)
      with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
      files[os.path.relpath(path, directory)] = (digest, os.stat(path).st_mtime_ns)
  return files


class World(object):

  def __init__(self, root):
    self.root = root
    self.data_dir = conftest.write_emotion_dataset(os.path.join(root, "data"), num_train=64,
                                                   num_dev=16, num_test=8)
    self.vocab = conftest.write_vocab(os.path.join(root, "vocab.txt"))
    self.config = conftest.write_config(os.path.join(root, "bert_config.json"),
                                        num_hidden_layers=1)
    self.trained = os.path.join(root, "trained")
    self.export_dir = os.path.join(root, "export")
    run = classifier_run.ClassifierRun(self.run_config(
        do_train=True, num_train_steps=TRAINED_STEPS, save_checkpoints_steps=2, do_export=True,
        export_dir=self.export_dir))
    run.run()
    self.version_dir = export.resolve_version_dir(self.export_dir)
    # A checkpoint of a model whose intermediate layer is 48 wide, not 64.
    self.other_checkpoint = self.untrained_checkpoint("other", intermediate_size=48)

  def values(self, **overrides):
    values = dict(task_name="emotion", data_dir=self.data_dir, vocab_file=self.vocab,
                  bert_config_file=self.config, output_dir=self.trained,
                  max_seq_length=MAX_SEQ_LENGTH, train_batch_size=8, learning_rate=1e-3,
                  warmup_proportion=0.0, log_every_n_steps=1000, save_checkpoints_steps=1000)
    values.update(overrides)
    return values

  def flags(self, **overrides):
    """run_classifier's flags, parsed as on its command line."""
    return conftest.classifier_flags(**self.values(**overrides))

  def run_config(self, **overrides):
    """The RunConfig of those flags, as run_classifier.py builds it."""
    return RunConfig.from_flags(self.flags(**overrides))

  def distill_run_config(self, teacher_model=None, alpha=0.5, **overrides):
    """The RunConfig of distill_flags, as run_classifier_distill.py builds it."""
    return RunConfig.from_flags(self.distill_flags(teacher_model, alpha, **overrides))

  def distill_flags(self, teacher_model=None, alpha=0.5, **overrides):
    """run_classifier_distill's flags (every one, defaults included), parsed as on its command
    line into a private FlagValues."""
    from absl import flags as absl_flags
    from bert import classifier_flags
    parsed = absl_flags.FlagValues()
    classifier_flags.define_distill_flags(parsed)
    values = self.values(temperature=overrides.pop("temperature", 2.0),
                         teacher_model=teacher_model or self.export_dir, alpha=alpha,
                         teacher_logits="online", **overrides)
    parsed(["run_classifier_distill"] + ["--%s=%s" % item for item in values.items()])
    return parsed

  def args(self, entry=ENTRY, **overrides):
    """The command line of an entry point with these flags."""
    args = [entry]
    for name, value in self.values(**overrides).items():
      if isinstance(value, bool):
        args.append("--%s%s" % ("" if value else "no", name))
      else:
        args.append("--%s=%s" % (name, value))
    return args

  def path(self, *parts):
    return os.path.join(self.root, *parts)

  def data(self, name, train_bytes):
    """A data dir whose train.csv holds train_bytes (dev and test copied from the good one)."""
    data_dir = self.path("bad_data", name)
    for split in ("dev", "test"):
      os.makedirs(data_dir, exist_ok=True)
      shutil.copy(os.path.join(self.data_dir, split + ".csv"), data_dir)
    if train_bytes is not None:
      write_bytes(os.path.join(data_dir, "train.csv"), train_bytes)
    return data_dir

  def vocab_file(self, name, tokens):
    os.makedirs(self.path("vocabs"), exist_ok=True)
    return conftest.write_vocab(self.path("vocabs", name), tokens)

  def config_file(self, name, **overrides):
    os.makedirs(self.path("configs"), exist_ok=True)
    overrides.setdefault("num_hidden_layers", 1)
    return conftest.write_config(self.path("configs", name), **overrides)

  # -- the subprocesses, started together once the world exists: each spends most of its time
  # importing TensorFlow, and their imports overlap the in-process tests.

  def launch(self):
    self.procs = {}
    # Two bad inputs through the real entry points; the distillation one with --verbosity=1.
    self.procs["bad_label"] = conftest.start_entry(
        self.args(**CASES["unknown_label"][2](self)), env=QUIET_TF)
    self.procs["bad_alpha"] = conftest.start_entry(
        self.args(DISTILL_ENTRY, do_train=True, teacher_model=self.export_dir) +
        ["--alpha=1.5", "--verbosity=1"], env=QUIET_TF)
    # A training run, SIGKILLed by a watcher thread soon after its first checkpoint appears:
    # 64 examples × 20 epochs / batch 8 = 160 steps, a checkpoint every 20.
    self.killed_output = self.path("killed_training")
    self.train_overrides = dict(do_train=True, output_dir=self.killed_output,
                                num_train_epochs=20, save_checkpoints_steps=20,
                                log_every_n_steps=20)
    self.procs["train"] = conftest.start_entry(self.args(**self.train_overrides), env=QUIET_TF)
    self.train_killed = threading.Event()
    threading.Thread(target=self._kill_after_first_checkpoint, daemon=True).start()
    # An export that stops just before renaming its finished temp dir (tests/fault_helpers.py).
    # It exports from a copy of the trained output_dir: it holds that directory's run lock while
    # paused, and the bad-input runs need the original's.
    self.killed_export = self.path("killed_export")
    shutil.copytree(self.export_dir, self.killed_export)
    self.killed_export_output = self.path("killed_export_output")
    shutil.copytree(self.trained, self.killed_export_output)
    self.procs["export"] = conftest.start_entry(
        [FAULT_HELPERS, "export_pause"] + self.args(do_export=True, export_dir=self.killed_export,
                                                    output_dir=self.killed_export_output),
        env=QUIET_TF)

  def _kill_after_first_checkpoint(self):
    proc = self.procs["train"]
    state_file = os.path.join(self.killed_output, "checkpoint")
    if wait_for(lambda: os.path.isfile(state_file), proc):
      time.sleep(random.uniform(0.0, 0.1))  # somewhere in the steps (or saves) that follow
      proc.send_signal(signal.SIGKILL)
    self.train_killed.set()

  def finish(self, name, timeout=300):
    """(returncode, stdout, stderr) of a launched subprocess."""
    proc = self.procs[name]
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err

  def stop(self):
    for proc in self.procs.values():
      if proc.poll() is None:
        proc.kill()
      proc.communicate()

  def untrained_checkpoint(self, name, **config_overrides):
    config = conftest.tiny_config(num_hidden_layers=1, **config_overrides)
    prefix = self.path(name, "model.ckpt")
    with tf.Graph().as_default():
      ids = tf1.placeholder(tf.int32, [None, None])
      classifier.classifier_logits(config, False, ids, ids, ids, 2)
      with tf1.Session() as session:
        session.run(tf1.global_variables_initializer())
        return tf1.train.Saver().save(session, prefix)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  world = World(str(tmp_path_factory.mktemp("reliability")))
  world.launch()
  yield world
  world.stop()


def replaced(tokens, old, new):
  return [new if t == old else t for t in tokens]


def good_lines(count=6):
  return "".join("%s&%s\n" % line for line in conftest.review_lines(count, seed=9))


# -- bad inputs --------------------------------------------------------------------------------
# (id, entry, flags(world) → overrides, words the one-line message must hold). Paths in the words
# are formatted with the world: {data}, {trained}, {root}.

def _bad(name, train_bytes):
  return lambda w: dict(do_train=True, data_dir=w.data(name, train_bytes))


BAD_INPUTS = [
    # 1. data file missing; empty data file
    ("data_missing", "classifier", _bad("missing", None),
     ["data file {root}/bad_data/missing/train.csv: not found", "--do_train"]),
    ("data_empty", "classifier", _bad("empty", b"\n  \n"),
     ["data file {root}/bad_data/empty/train.csv: empty", "expected one example per line"]),
    # 2. no separator; no label; a label not in the label list
    ("no_separator", "classifier", _bad("nosep", (good_lines() + "味道一般\n").encode()),
     ["{root}/bad_data/nosep/train.csv:7:", "expected 'text&label'", "味道一般"]),
    ("no_label", "classifier", _bad("nolabel", (good_lines() + "味道一般&\n").encode()),
     ["{root}/bad_data/nolabel/train.csv:7:", "expected 'text&label'"]),
    ("unknown_label", "classifier", _bad("label", (good_lines() + "味道一般&2\n").encode()),
     ["{root}/bad_data/label/train.csv:7:", "label '2' is not in the label list [0, 1]"]),
    # 3. an empty text; bytes that are not UTF-8
    ("empty_text", "classifier", _bad("emptytext", (good_lines() + "  &1\n").encode()),
     ["{root}/bad_data/emptytext/train.csv:7:", "empty text", "expected 'text&label'"]),
    ("not_utf8", "classifier",
     _bad("latin1", good_lines().encode() + "caf\xe9&1\n".encode("latin-1")),
     ["{root}/bad_data/latin1/train.csv:7:", "not valid UTF-8 at byte 4 of the line", "expected"]),
    # 5. vocab missing [CLS], [SEP] or [UNK]; vocab size differing from bert_config's
    ("vocab_no_cls", "classifier", lambda w: dict(do_train=True, vocab_file=w.vocab_file(
        "no_cls.txt", replaced(conftest.VOCAB_TOKENS, "[CLS]", "[CLX]"))),
     ["--vocab_file {root}/vocabs/no_cls.txt:", "has no [CLS] token", "[CLS] [SEP] [UNK]"]),
    ("vocab_no_sep", "classifier", lambda w: dict(do_train=True, vocab_file=w.vocab_file(
        "no_sep.txt", replaced(conftest.VOCAB_TOKENS, "[SEP]", "[SEQ]"))),
     ["--vocab_file {root}/vocabs/no_sep.txt:", "has no [SEP] token"]),
    ("vocab_no_unk", "classifier", lambda w: dict(do_train=True, vocab_file=w.vocab_file(
        "no_unk.txt", replaced(conftest.VOCAB_TOKENS, "[UNK]", "[UNKNOWN]"))),
     ["--vocab_file {root}/vocabs/no_unk.txt:", "has no [UNK] token"]),
    ("vocab_size", "classifier", lambda w: dict(do_train=True, vocab_file=w.vocab_file(
        "short.txt", conftest.VOCAB_TOKENS[:-1])),
     ["--vocab_file {root}/vocabs/short.txt:", "has %d tokens" % (len(conftest.VOCAB_TOKENS) - 1),
      "vocab_size %d" % len(conftest.VOCAB_TOKENS)]),
    # 6. hidden size not divisible by the number of heads; unknown activation
    ("heads", "classifier", lambda w: dict(do_train=True, bert_config_file=w.config_file(
        "heads.json", hidden_size=30, num_attention_heads=4)),
     ["bert_config_file {root}/configs/heads.json:",
      "hidden_size 30 is not divisible by num_attention_heads 4"]),
    ("activation", "classifier", lambda w: dict(do_train=True, bert_config_file=w.config_file(
        "act.json", hidden_act="gelu_fancy")),
     ["bert_config_file {root}/configs/act.json:", "unknown hidden_act 'gelu_fancy'",
      "expected one of gelu"]),
    # 7. init_checkpoint whose variable shapes differ from the config
    ("init_shapes", "classifier",
     lambda w: dict(do_train=True, init_checkpoint=w.other_checkpoint),
     ["--init_checkpoint {root}/other/model.ckpt:",
      "variable bert/encoder/layer_0/intermediate/dense/bias has shape [48]",
      "the model expects [64]"]),
    # 8. max_seq_length larger than max_position_embeddings
    ("max_seq_length", "classifier", lambda w: dict(do_train=True, max_seq_length=65),
     ["--max_seq_length 65:", "larger than max_position_embeddings 64", "bert_config.json"]),
    # 9. --teacher_model not a SavedModel; a base dir without a numeric version
    ("teacher_not_saved_model", "distill", lambda w: dict(do_train=True, teacher_model=w.trained),
     ["--teacher_model {trained}:", "not a SavedModel (no saved_model.pb)"]),
    ("teacher_no_version", "distill", lambda w: dict(do_train=True, teacher_model=w.unversioned()),
     ["--teacher_model {root}/unversioned:", "no numeric version directory"]),
    # 10. teacher with another label list, vocab or lower-casing than the student
    ("teacher_labels", "distill", lambda w: dict(do_train=True, task_name="csv", labels="1,0"),
     ["--teacher_model {root}/export/", "label list [0, 1] differs from the task's [1, 0]"]),
    ("teacher_vocab", "distill", lambda w: dict(do_train=True, vocab_file=w.vocab_file(
        "swapped.txt", conftest.VOCAB_TOKENS[:5] + conftest.VOCAB_TOKENS[6:7] +
        conftest.VOCAB_TOKENS[5:6] + conftest.VOCAB_TOKENS[7:])),
     ["--teacher_model {root}/export/", "vocab differs from --vocab_file",
      "first difference at line 6"]),
    ("teacher_lower_case", "distill", lambda w: dict(do_train=True, do_lower_case=False),
     ["--teacher_model {root}/export/", "do_lower_case=True but --do_lower_case=False"]),
    # 11. temperature ≤ 0; alpha outside [0, 1]; batch size ≤ 0; learning rate ≤ 0
    ("temperature", "distill", lambda w: dict(do_train=True, temperature=0.0),
     ["--temperature: must be > 0, got 0.0"]),
    ("alpha", "distill", lambda w: dict(do_train=True, alpha=1.5),
     ["--alpha: must be in [0, 1], got 1.5"]),
    ("batch_size", "classifier", lambda w: dict(do_train=True, train_batch_size=0),
     ["--train_batch_size: must be > 0, got 0"]),
    ("learning_rate", "classifier", lambda w: dict(do_train=True, learning_rate=-1e-3),
     ["--learning_rate: must be > 0, got -0.001"]),
    # 12. output_dir holding checkpoints of a different model config
    ("other_model", "classifier", lambda w: dict(do_train=True, bert_config_file=w.config_file(
        "deeper.json", num_hidden_layers=2)),
     ["--output_dir {trained}:", "different model",
      "bert_config.num_hidden_layers: 1 recorded, 2 now", "new --output_dir"]),
    # 13. export_dir not writable (a parent is a file: root ignores permissions)
    ("export_dir", "classifier",
     lambda w: dict(do_export=True, export_dir=os.path.join(w.vocab, "export")),
     ["--export_dir {root}/vocab.txt/export: not writable", "not a directory"]),
    # 14. an eval / predict run with no checkpoint to load
    ("eval_no_checkpoint", "classifier",
     lambda w: dict(do_eval=True, output_dir=w.path("never_trained")),
     ["--output_dir {root}/never_trained: no checkpoint to evaluate", "--do_train"]),
    ("predict_no_checkpoint", "classifier",
     lambda w: dict(do_predict=True, output_dir=w.path("never_trained")),
     ["--output_dir {root}/never_trained: no checkpoint to predict with"]),
]


CASES = {case[0]: case for case in BAD_INPUTS}


def _unversioned(self):
  """A base dir holding an export under a non-numeric name only."""
  base = self.path("unversioned")
  if not os.path.isdir(base):
    shutil.copytree(self.version_dir, os.path.join(base, "latest"))
  return base


World.unversioned = _unversioned


def run_in_process(make_run, capsys):
  """Runs make_run().run() through errors.run_main as the entry points do: (exit code, out, err)."""
  capsys.readouterr()
  with pytest.raises(SystemExit) as info:
    run_main(lambda argv: make_run().run(), [])
  captured = capsys.readouterr()
  return info.value.code, captured.out, captured.err


def make_run(world, entry, overrides):
  if entry == "distill":
    return lambda: DistillRun(world.distill_run_config(**overrides))
  return lambda: classifier_run.ClassifierRun(world.run_config(**overrides))


def assert_one_line_error(err, words, world):
  lines = [line for line in err.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), err
  for word in words:
    word = word.format(root=world.root, trained=world.trained, data=world.data_dir)
    assert word in lines[0], (word, lines[0])
  return lines[0]


@pytest.mark.parametrize("name, entry, overrides_of, words", BAD_INPUTS,
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_exits_1_with_one_line_and_keeps_files(world, capsys, name, entry,
                                                         overrides_of, words):
  overrides = overrides_of(world)
  before = {d: snapshot(d) for d in (world.trained, world.export_dir)}
  code, out, err = run_in_process(make_run(world, entry, overrides), capsys)
  assert code == 1, (out, err)
  line = assert_one_line_error(err, words, world)
  assert "Traceback" not in err
  print("%s: %s" % (name, line))  # shown with pytest -s: the exact messages
  for directory, files in before.items():
    assert snapshot(directory) == files, directory
  leftovers = glob.glob(os.path.join(world.trained, "*.tmp*"))
  assert not leftovers, leftovers
  if "output_dir" in overrides:
    assert not os.path.exists(overrides["output_dir"])  # refused before creating anything


def test_features_failing_part_way_leave_no_partial_file_and_keep_the_cache(world):
  record_file = world.path("cache_copy", "train.tf_record")
  shutil.copytree(world.trained, os.path.dirname(record_file))
  before = snapshot(os.path.dirname(record_file))

  def examples():
    reader = tf1.io.tf_record_iterator(record_file)
    for index, record in enumerate(reader):
      if index == 3:
        raise UsageError("train.csv:4: bad line")
      yield tf.train.Example.FromString(record)

  with pytest.raises(UsageError):
    classifier_data.write_records(record_file, examples(), {"new": True}, {})
  assert snapshot(os.path.dirname(record_file)) == before  # no .tmp- file, cache unchanged


def test_os_and_tf_errors_print_one_line(capsys):
  import errno

  def permission_denied(argv):
    raise PermissionError(errno.EACCES, "Permission denied", "/data/out/model.ckpt-6.index")

  def graph_error(argv):
    raise tf.errors.ResourceExhaustedError(None, None, (
        "Graph execution error:\n\nDetected at node 'save/SaveV2' defined at (most recent call "
        "last):\n  File \"x.py\", line 1, in <module>\nNode: 'save/SaveV2'\n/data/out/x; No space "
        "left on device\n\t [[{{node save/SaveV2}}]]"))

  expected = ["error: [Errno 13] Permission denied: '/data/out/model.ckpt-6.index'",
              "error: /data/out/x; No space left on device"]
  for main, line in zip((permission_denied, graph_error), expected):
    with pytest.raises(SystemExit) as info:
      run_main(main, [])
    assert info.value.code == 1
    assert capsys.readouterr().err == line + "\n"
  # Anything else is a bug: its traceback is kept.
  with pytest.raises(KeyError):
    run_main(lambda argv: {}["missing"], [])


def test_long_text_is_truncated_and_counted_not_an_error(world, capsys):
  long_text = "很" * 40  # 40 tokens: over max_seq_length 24 with [CLS] and [SEP]
  data_dir = world.data("long", (good_lines() + "%s好&1\n好%s&1\n" % (long_text, long_text))
                        .encode())
  output_dir = world.path("long_output")
  run = classifier_run.ClassifierRun(world.run_config(do_train=True, data_dir=data_dir,
                                                      output_dir=output_dir))
  capsys.readouterr()
  record_file, info = run.features("train")
  out = capsys.readouterr().out
  assert info["num_examples"] == 8 and info["num_truncated"] == 2
  assert info["max_length"] == MAX_SEQ_LENGTH
  assert "8 examples" in out and "2 truncated to max_seq_length 24" in out, out


# -- faults ------------------------------------------------------------------------------------

def checkpoint_steps(output_dir):
  state = tf.train.get_checkpoint_state(output_dir)
  if state is None:
    return []
  return [int(path.rsplit("-", 1)[1]) for path in state.all_model_checkpoint_paths]


def assert_checkpoints_readable(output_dir):
  """Every checkpoint the state file lists loads, every tensor included."""
  state = tf.train.get_checkpoint_state(output_dir)
  for path in state.all_model_checkpoint_paths:
    reader = tf.train.load_checkpoint(path)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  return state


def wait_for(predicate, proc, timeout=240, interval=0.02):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return True
    if proc.poll() is not None:
      return False
    time.sleep(interval)
  return False


def complete_versions(export_dir):
  """Numeric version dirs, each asserted complete: what a server would load."""
  versions = sorted(d for d in os.listdir(export_dir) if d.isdigit())
  for version in versions:
    version_dir = os.path.join(export_dir, version)
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb")), version_dir
    assert os.path.isfile(os.path.join(version_dir, "variables", "variables.index")), version_dir
    assert glob.glob(os.path.join(version_dir, "variables", "variables.data-*")), version_dir
    assert os.path.isfile(os.path.join(version_dir, "assets.extra", export.INFO_FILE))
  return versions


def test_nan_loss_stops_training_naming_the_step_and_keeps_the_checkpoint(world, capsys):
  output_dir = world.path("nan")
  shutil.copytree(world.trained, output_dir)
  before = snapshot(output_dir)
  # Adam moves each weight by about the learning rate per step: 1e38 overflows float32 within a
  # step or two, and the loss turns NaN or Inf.
  code, out, err = run_in_process(make_run(world, "classifier", dict(
      do_train=True, output_dir=output_dir, num_train_steps=TRAINED_STEPS + 10,
      learning_rate=1e38)), capsys)
  assert code == 1, (out, err)
  line = assert_one_line_error(err, [], world)
  print(line)
  match = re.search(r"loss is (nan|inf|-inf) at step (\d+)|weights are not finite after step "
                    r"(\d+)", line)
  assert match, line
  step = int(match.group(2) or match.group(3))
  assert TRAINED_STEPS < step <= TRAINED_STEPS + 10
  assert "model.ckpt-%d is kept" % TRAINED_STEPS in line
  after = snapshot(output_dir)
  assert {k: v for k, v in after.items() if k in before} == before  # byte-identical
  assert all(k.startswith("events.out.tfevents.") for k in set(after) - set(before))
  assert checkpoint_steps(output_dir) == [2, TRAINED_STEPS]


def test_non_finite_weights_are_never_saved(world):
  """A step whose loss is still finite but whose update overflows the weights must not become
  the latest checkpoint: a one-weight model multiplied by 1e30 each step, saved every step."""
  from bert.errors import TrainingError
  from bert.training import ModelSpec, Trainer

  def model_fn(features, labels, mode, params):
    del labels, params
    w = tf1.get_variable("w", [], initializer=tf1.ones_initializer())
    loss = w * tf.reduce_mean(tf.cast(features["input_ids"], tf.float32))
    with tf.control_dependencies([loss]):  # the loss is read before the update
      train_op = tf.group(w.assign(w * 1e30), tf1.train.get_global_step().assign_add(1))
    return ModelSpec(mode, loss=loss, train_op=train_op, summaries={"loss": loss})

  output_dir = world.path("non_finite")
  trainer = Trainer(model_fn, output_dir, save_checkpoints_steps=1, log_every_n_steps=1000)
  input_fn = classifier_data.input_fn_builder(os.path.join(world.trained, "train.tf_record"),
                                              True, MAX_SEQ_LENGTH)
  with pytest.raises(TrainingError) as info:
    trainer.train(input_fn, max_steps=10, batch_size=8)
  # Step 1: w 1 → 1e30, saved. Step 2: loss 1e30·x is finite, w → inf: not saved.
  assert str(info.value) == (
      "weights are not finite after step 2; training stopped without saving: the last good "
      "checkpoint %s is kept" % os.path.join(output_dir, "model.ckpt-1"))
  assert tf.train.latest_checkpoint(output_dir) == os.path.join(output_dir, "model.ckpt-1")
  saved_w = tf.train.load_variable(os.path.join(output_dir, "model.ckpt-1"), "w")
  assert saved_w == pytest.approx(1e30)
  assert not glob.glob(os.path.join(output_dir, "model.ckpt-2*"))


def test_checkpoint_write_failure_is_one_line_and_keeps_the_previous(world, capsys):
  output_dir = world.path("unwritable")
  shutil.copytree(world.trained, output_dir)
  before = snapshot(output_dir)
  # The saver writes model.ckpt-6.index under a temporary name and renames it into place: a
  # directory in the way makes that write fail, as a full or read-only disk would (root, as
  # tests often run, ignores permissions).
  blocker = os.path.join(output_dir, "model.ckpt-%d.index" % (TRAINED_STEPS + 2))
  os.makedirs(blocker)
  code, out, err = run_in_process(make_run(world, "classifier", dict(
      do_train=True, output_dir=output_dir, num_train_steps=TRAINED_STEPS + 4,
      save_checkpoints_steps=2)), capsys)
  assert code == 1, (out, err)
  line = assert_one_line_error(err, [
      "cannot write checkpoint %s/model.ckpt-%d" % (output_dir, TRAINED_STEPS + 2),
      "Is a directory", "the previous checkpoint %s/model.ckpt-%d is kept" %
      (output_dir, TRAINED_STEPS)], world)
  print(line)
  assert "Traceback" not in err and "Graph execution error" not in line  # the cause only
  after = snapshot(output_dir)
  assert {k: v for k, v in after.items() if k in before} == before
  # Nothing of the failed save is left (the directory in the way is not ours to remove).
  assert [os.path.basename(p) for p in glob.glob(blocker[:-len("index")] + "*")] == [
      os.path.basename(blocker)]
  assert tf.train.latest_checkpoint(output_dir) == os.path.join(output_dir, "model.ckpt-4")
  assert_checkpoints_readable(output_dir)


# -- the subprocesses launched with the world (last: their TensorFlow imports overlap the tests
# above) ---------------------------------------------------------------------------------------

def test_entry_points_print_the_same_one_line_with_no_traceback(world):
  """The real entry points as subprocesses: exit status 1, the last stderr line is the error,
  the other stderr lines are TensorFlow's start-up lines and there is no traceback; with
  --verbosity=1 the traceback comes first and the error is still the last line."""
  before = {d: snapshot(d) for d in (world.trained, world.export_dir)}
  for name, words, verbose in (("bad_label", CASES["unknown_label"][3], False),
                               ("bad_alpha", CASES["alpha"][3], True)):
    code, out, err = world.finish(name)
    assert code == 1, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err[-3000:]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]
    print("%s (subprocess): %s" % (name, lines[-1]))
    assert_one_line_error(lines[-1], words, world)
    if verbose:
      assert "Traceback" in err and "UsageError" in err
    else:
      assert "Traceback" not in err
      ours = [line for line in lines[:-1] if not TF_STARTUP_LINE.match(line)]
      assert not ours, ours
  for directory, files in before.items():
    assert snapshot(directory) == files, directory


def test_kill_9_during_export_leaves_no_loadable_partial_version(world, capsys):
  export_dir = world.killed_export
  versions = complete_versions(world.export_dir)
  before = snapshot(world.export_dir)
  proc = world.procs["export"]
  temp_dirs = lambda: glob.glob(os.path.join(export_dir, export.TEMP_PREFIX + "*"))
  paused = wait_for(lambda: temp_dirs() and os.path.isfile(
      os.path.join(temp_dirs()[0], "assets.extra", export.INFO_FILE)), proc)
  if proc.poll() is None:
    proc.send_signal(signal.SIGKILL)
  code, out, err = world.finish("export")
  assert paused and code == -signal.SIGKILL, err[-3000:]
  (stale,) = temp_dirs()
  assert os.path.isfile(os.path.join(stale, "saved_model.pb"))  # all written, never renamed
  assert complete_versions(export_dir) == versions  # no new version, complete or not
  assert {k: v for k, v in snapshot(export_dir).items()
          if not k.startswith(export.TEMP_PREFIX)} == before

  # The next export succeeds, removes the killed one's temp dir and adds a complete version.
  capsys.readouterr()
  classifier_run.ClassifierRun(world.run_config(do_export=True, export_dir=export_dir)).run()
  assert "Exported SavedModel to" in capsys.readouterr().out
  assert not temp_dirs()
  after = complete_versions(export_dir)
  assert len(after) == len(versions) + 1 and set(versions) < set(after)
  assert export.resolve_version_dir(export_dir) == os.path.join(export_dir, max(after))


def test_kill_9_during_training_then_same_command_resumes(world, capsys):
  assert world.train_killed.wait(300)
  code, out, err = world.finish("train")
  assert code == -signal.SIGKILL, "the run was not killed mid-training: %s" % err[-3000:]
  planned = 160
  output_dir = world.killed_output
  steps = checkpoint_steps(output_dir)
  assert steps and max(steps) < planned, steps
  assert_checkpoints_readable(output_dir)  # none is left corrupt

  # The same command again (in-process: the same flags through the same run_main path).
  capsys.readouterr()
  assert run_main(lambda argv: classifier_run.ClassifierRun(
      world.run_config(**world.train_overrides)).run(), []) is None
  out = capsys.readouterr().out
  latest = os.path.join(output_dir, "model.ckpt-%d" % max(steps))
  assert "Resuming from %s" % latest in out, out
  assert "Training %d steps" % planned in out
  assert "Trained to step %d" % planned in out
  assert_checkpoints_readable(output_dir)
  final = tf.train.latest_checkpoint(output_dir)
  assert final == os.path.join(output_dir, "model.ckpt-%d" % planned)
  assert tf.train.load_checkpoint(final).get_tensor("global_step") == planned
