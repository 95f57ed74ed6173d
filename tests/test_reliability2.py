"""Reliability II: nothing silently wrong (issue #12).

A rerun with another vocab, two runs in one output_dir, one-class training data, blank test lines,
the client's line splitting and blank texts, a negative --num_train_steps: each is a one-line
error or a defined row, never a silently wrong result. Then the faults that used to end in a
traceback: duplicate vocab lines, NaN/inf flags, a full disk while writing summaries or an export,
truncated checkpoints, teacher files and feature caches.

Each test asserts the exit code, the one-line `error:` message naming the file or flag, no
traceback, and that the trained output_dir and export are unchanged. They share test_reliability's
World (one tiny 1-layer model trained for 4 steps and exported), built once here.
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from bert import classifier_run, export, training, vocab
from bert.distill_run import DistillRun

import conftest
from test_reliability import (MAX_SEQ_LENGTH, TRAINED_STEPS, World, assert_one_line_error,
                              run_in_process, snapshot)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  return World(str(tmp_path_factory.mktemp("reliability2")))


def run_classifier(world, capsys, **overrides):
  return run_in_process(lambda: classifier_run.ClassifierRun(world.run_config(**overrides)), capsys)


def run_ok(world, capsys, **overrides):
  """A run that must succeed: its stdout."""
  capsys.readouterr()
  classifier_run.ClassifierRun(world.run_config(**overrides)).run()
  return capsys.readouterr().out


def run_distill(world, capsys, **overrides):
  return run_in_process(lambda: DistillRun(world.distill_run_config(**overrides)), capsys)


def expect_error(world, capsys, words, entry="classifier", keep=None, **overrides):
  """Runs an entry point's run in-process; asserts exit 1, one `error:` line holding every word,
  no traceback, and that the trained output_dir, the export and `keep` dirs are unchanged."""
  dirs = [world.trained, world.export_dir] + list(keep or [])
  before = {d: snapshot(d) for d in dirs}
  run = run_distill if entry == "distill" else run_classifier
  code, out, err = run(world, capsys, **overrides)
  assert code == 1, (out, err)
  assert "Traceback" not in err
  line = assert_one_line_error(err, words, world)
  print(line)
  for directory, files in before.items():
    after = snapshot(directory)
    if directory in (world.trained, world.export_dir):
      assert after == files, directory
    else:  # a copy: what it held is unchanged (a dev feature cache may be added)
      assert {k: v for k, v in after.items() if k in files} == files, directory
  return line, out


def copy_of(world, name, source=None):
  target = world.path(name)
  shutil.copytree(source or world.trained, target)
  return target


def swapped_vocab(world):
  """Same size as the trained vocab, two tokens exchanged: a different model input."""
  tokens = list(conftest.VOCAB_TOKENS)
  tokens[5], tokens[6] = tokens[6], tokens[5]
  return world.vocab_file("swapped_same_size.txt", tokens)


# -- 1. a rerun with another vocab of the same size --------------------------------------------

def test_rerun_with_another_vocab_of_the_same_size_is_refused(world, capsys):
  recorded = vocab.vocab_fingerprint(world.vocab)
  other = swapped_vocab(world)
  line, _ = expect_error(world, capsys, [
      "--output_dir {trained}:", "different model", "vocab_sha256: %s recorded" % recorded,
      "%s now" % vocab.vocab_fingerprint(other)], do_eval=True, vocab_file=other)
  # The export too would carry the wrong vocab: refused the same way.
  expect_error(world, capsys, ["vocab_sha256"], do_export=True, export_dir=world.export_dir,
               vocab_file=other)
  # Casing and max_seq_length are recorded as well.
  expect_error(world, capsys, ["do_lower_case: True recorded, False now"], do_eval=True,
               do_lower_case=False)
  expect_error(world, capsys, ["max_seq_length: %d recorded, 16 now" % MAX_SEQ_LENGTH],
               do_eval=True, max_seq_length=16)


def test_output_dir_of_an_older_version_is_accepted_and_its_signature_completed(world, capsys):
  """An output_dir whose signature lacks the vocab, casing and length (written before they were
  recorded) evaluates and exports as before; the keys are recorded then, and checked after."""
  output_dir = copy_of(world, "legacy")
  path = os.path.join(output_dir, training.SIGNATURE_FILE)
  with open(path, encoding="utf-8") as f:
    signature = json.load(f)
  legacy = {key: signature[key] for key in ("bert_config", "labels")}
  with open(path, "w", encoding="utf-8") as f:
    json.dump(legacy, f)
  run_ok(world, capsys, do_eval=True, output_dir=output_dir)
  with open(path, encoding="utf-8") as f:
    assert json.load(f) == signature
  expect_error(world, capsys, ["vocab_sha256"], do_eval=True, output_dir=output_dir,
               vocab_file=swapped_vocab(world))


# -- 2. two runs in one output_dir ---------------------------------------------------------------

HOLD_LOCK = ("import sys, time; sys.path.insert(0, %r); from bert.run_lock import RunLock; "
             "lock = RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)"
             % conftest.REPO_ROOT)


def test_second_run_in_a_locked_output_dir_is_refused_and_a_dead_holder_taken_over(world, capsys):
  output_dir = copy_of(world, "locked")
  holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, output_dir], stdout=subprocess.PIPE,
                            universal_newlines=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    expect_error(world, capsys, [
        "--output_dir %s: in use by another run (pid %d holds %s/.lock)" %
        (output_dir, holder.pid, output_dir), "wait for it to end"],
        keep=[output_dir], do_eval=True, output_dir=output_dir)
    assert not os.path.exists(os.path.join(output_dir, "eval_results.txt"))
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # kill -9 left its pid in the lock file; the kernel released the lock: the next run takes over.
  out = run_ok(world, capsys, do_eval=True, output_dir=output_dir)
  assert "Took over %s/.lock from pid %d" % (output_dir, holder.pid) in out
  assert os.path.isfile(os.path.join(output_dir, "eval_results.txt"))
  with open(os.path.join(output_dir, ".lock")) as f:
    assert f.read() == ""  # released: no holder


# -- 3, 4. one class in the training data --------------------------------------------------------

def test_emotion_training_data_with_one_class_is_an_error(world, capsys):
  lines = "".join("%s&1\n" % text for text, _ in conftest.review_lines(8, seed=2))
  data_dir = world.data("one_class", lines.encode())
  expect_error(world, capsys, [
      "data file %s/train.csv:" % data_dir, "every training example has label '1'", "one class"],
      do_train=True, data_dir=data_dir, output_dir=world.path("one_class_out"))


def test_csv_training_data_with_one_class_is_an_error(world, capsys):
  data_dir = world.path("csv_one_class")
  os.makedirs(data_dir)
  with open(os.path.join(data_dir, "train.tsv"), "w", encoding="utf-8") as f:
    f.write("".join("%s\tpos\n" % text for text, _ in conftest.review_lines(8, seed=2)))
  for flags in (dict(do_train=True), dict(do_train=True, do_eval=True)):
    expect_error(world, capsys, [
        "data file %s/train.tsv:" % data_dir, "every row has label 'pos' in column 1",
        "one class"], task_name="csv", data_dir=data_dir,
        output_dir=world.path("csv_one_class_out"), **flags)
  expect_error(world, capsys, ["--labels:", "at least two", "'pos'"], task_name="csv",
               data_dir=data_dir, do_train=True, labels="pos")


# -- 5. blank lines in the test file --------------------------------------------------------------

def read_rows(path):
  with open(path, encoding="utf-8") as f:
    return [line.rstrip("\n").split("\t") for line in f]


def test_blank_test_lines_get_rows_of_nan_and_the_rest_stay_aligned(world, capsys):
  output_dir = copy_of(world, "predict_blank")
  run_ok(world, capsys, do_predict=True, output_dir=output_dir)
  with open(os.path.join(world.data_dir, "test.csv"), encoding="utf-8") as f:
    lines = f.read().splitlines()
  expected = read_rows(os.path.join(output_dir, "test_results.tsv"))
  assert len(expected) == len(lines)

  data_dir = world.data("blank_test", None)
  with open(os.path.join(data_dir, "test.csv"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines[:2] + ["", "   "] + lines[2:] + [""]) + "\n")  # a blank last line too
  out = run_ok(world, capsys, do_predict=True, output_dir=output_dir, data_dir=data_dir)
  rows = read_rows(os.path.join(output_dir, "test_results.tsv"))
  assert len(rows) == len(lines) + 3  # one row per line of the file
  nan_row = ["nan", "nan"]
  assert rows == expected[:2] + [nan_row, nan_row] + expected[2:] + [nan_row]
  assert "blank lines 3, 4, %d got rows of nan" % (len(lines) + 3) in out


# -- 6, 7. the client: lines split on \n only, blank texts get a defined row --------------------

def test_client_keeps_one_output_line_per_input_line(world, tmp_path):
  client = conftest.load_script("predict_client")
  texts = ["味道很好", "", "   ", "\x01\x02", "送餐\x0c太慢", "好\x1c差", "很\u2028好", "香\x85辣"]
  input_file = tmp_path / "texts.txt"
  input_file.write_bytes(("\r\n".join(texts) + "\n").encode("utf-8"))
  for args in (["--input", str(input_file)], texts):
    stdout, stderr = io.StringIO(), io.StringIO()
    old_stderr, sys.stderr = sys.stderr, stderr
    try:
      code = client.run(["--local", "--export_dir", world.export_dir, "--json"] + list(args),
                        stdout)
    finally:
      sys.stderr = old_stderr
    assert code == 0, stderr.getvalue()
    records = [json.loads(line) for line in stdout.getvalue().split("\n")[:-1]]
    assert [r["text"] for r in records] == texts
    blank = [r.get("blank", False) for r in records]
    assert blank == [False, True, True, True, False, False, False, False]
    assert all(r["label"] is None and r["probabilities"] is None for r in records if r.get(
        "blank"))
    assert all(r["label"] in ("0", "1") for r in records if not r.get("blank"))
    assert "3 of 8 texts are blank" in stderr.getvalue()
  # The plain format: control characters shown escaped, so each output line is one line.
  stdout = io.StringIO()
  assert client.run(["--local", "--export_dir", world.export_dir] + texts, stdout) == 0
  lines = stdout.getvalue().split("\n")[:-1]
  assert len(lines) == len(texts)
  assert lines[3] == "-\t0:nan 1:nan\t\\x01\\x02" and lines[6].endswith("\t很\\u2028好")


# -- 8. and the other flags ------------------------------------------------------------------------

@pytest.mark.parametrize("flag, value, words", [
    ("num_train_steps", -5, ["--num_train_steps: must be >= 0", "got -5"]),
    ("learning_rate", "nan", ["--learning_rate: must be a finite number, got nan"]),
    ("learning_rate", "inf", ["--learning_rate: must be a finite number, got inf"]),
    ("num_train_epochs", "inf", ["--num_train_epochs: must be a finite number, got inf"]),
    ("num_train_epochs", "nan", ["--num_train_epochs: must be a finite number, got nan"]),
    ("warmup_proportion", "nan", ["--warmup_proportion: must be a finite number, got nan"]),
    ("temperature", "nan", ["--temperature: must be a finite number, got nan"]),
    ("temperature", "-inf", ["--temperature: must be a finite number, got -inf"]),
])
def test_bad_number_flags_are_one_line_errors(world, capsys, flag, value, words):
  from bert import classifier_flags
  from bert.errors import run_main
  fv = world.flags(do_train=True, **{flag: value})
  capsys.readouterr()
  with pytest.raises(SystemExit) as info:
    run_main(lambda argv: classifier_flags.check_flags(fv), [])
  assert info.value.code == 1
  assert_one_line_error(capsys.readouterr().err, words, world)


def test_alpha_nan_is_a_one_line_error(world, capsys):
  expect_error(world, capsys, ["--alpha: must be a finite number, got nan"], entry="distill",
               do_train=True, alpha="nan")


# -- the former tracebacks and unclear messages ----------------------------------------------------

def test_duplicate_vocab_lines_are_named(world, capsys):
  tokens = list(conftest.VOCAB_TOKENS)
  tokens[-1] = tokens[7]  # 40 lines, 39 distinct tokens
  vocab = world.vocab_file("duplicates.txt", tokens)
  words = ["--vocab_file %s:" % vocab, "has %d lines but %d distinct tokens" %
           (len(tokens), len(tokens) - 1), "%r (lines 8, %d)" % (tokens[7], len(tokens))]
  expect_error(world, capsys, words, do_train=True, vocab_file=vocab)
  # vocab_size equal to the distinct count: the same message, not an id-out-of-range error.
  config = world.config_file("dedup.json", vocab_size=len(tokens) - 1)
  expect_error(world, capsys, words, do_train=True, vocab_file=vocab, bert_config_file=config,
               output_dir=world.path("dedup_out"))


def test_output_dir_that_is_a_file_is_named_as_the_flag(world, capsys):
  expect_error(world, capsys, ["--output_dir %s: is a file, not a directory" % world.vocab],
               do_train=True, output_dir=world.vocab)


def truncate(path, fraction=0.5):
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(int(size * fraction))


def test_truncated_checkpoint_then_eval_names_the_checkpoint(world, capsys):
  output_dir = copy_of(world, "truncated_checkpoint")
  checkpoint = os.path.join(output_dir, "model.ckpt-%d" % TRAINED_STEPS)
  truncate(checkpoint + ".data-00000-of-00001")
  expect_error(world, capsys, ["checkpoint %s: cannot be read" % checkpoint, "damaged"],
               keep=[output_dir], do_eval=True, output_dir=output_dir)
  assert not os.path.exists(os.path.join(output_dir, "eval_results.txt"))


def test_truncated_teacher_variables_name_the_teacher(world, capsys):
  teacher = copy_of(world, "truncated_teacher", world.version_dir)
  truncate(os.path.join(teacher, "variables", "variables.data-00000-of-00001"))
  expect_error(world, capsys, ["--teacher_model %s: cannot be loaded" % teacher, "damaged",
                               "export the teacher again"], entry="distill", keep=[teacher],
               do_train=True, teacher_model=teacher, output_dir=world.path("student_of_truncated"))


def test_teacher_export_info_cut_short_is_named(world, capsys):
  teacher = copy_of(world, "cut_info_teacher", world.version_dir)
  info = os.path.join(teacher, "assets.extra", export.INFO_FILE)
  truncate(info, 0.3)
  expect_error(world, capsys, ["--teacher_model %s: %s is damaged (not valid JSON" %
                               (teacher, info), "export it again"], entry="distill",
               keep=[teacher], do_train=True, teacher_model=teacher,
               output_dir=world.path("student_of_cut"))


@pytest.mark.parametrize("old_sidecar", [False, True], ids=["sized", "older_sidecar"])
def test_truncated_feature_cache_is_rebuilt(world, capsys, old_sidecar):
  output_dir = copy_of(world, "truncated_cache_%s" % old_sidecar)
  record = os.path.join(output_dir, "train.tf_record")
  good_size = os.path.getsize(record)
  if old_sidecar:  # a sidecar written before record_bytes was recorded: records are counted
    with open(record + ".json", encoding="utf-8") as f:
      info = json.load(f)
    del info["record_bytes"]
    with open(record + ".json", "w", encoding="utf-8") as f:
      json.dump(info, f)
  truncate(record, 0.6)
  out = run_ok(world, capsys, do_train=True, output_dir=output_dir, num_train_steps=TRAINED_STEPS)
  assert "%s: " % record in out and "rebuilding it from its unchanged sources" in out, out
  assert "Wrote %s" % record in out
  assert os.path.getsize(record) == good_size


# -- a full disk (a small tmpfs; needs root, skipped elsewhere) ------------------------------------

@pytest.fixture
def full_disk(tmp_path):
  """A 2 MiB tmpfs; fill() then takes all its free space."""
  mount_point = tmp_path / "disk"
  mount_point.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                    stderr=subprocess.DEVNULL).returncode != 0:
    pytest.skip("cannot mount a tmpfs here (needs root)")

  def fill():
    with open(str(mount_point / "filler"), "wb", buffering=0) as f:
      try:
        while True:
          f.write(b"\0" * 4096)
      except OSError:
        pass

  try:
    yield str(mount_point), fill
  finally:
    subprocess.run(["umount", "-l", str(mount_point)])


def test_full_disk_while_writing_summaries_is_one_line(world, capsys, full_disk):
  mount_point, fill = full_disk
  output_dir = os.path.join(mount_point, "out")
  shutil.copytree(world.trained, output_dir)
  before = snapshot(output_dir)
  fill()
  code, out, err = run_classifier(world, capsys, do_train=True, output_dir=output_dir,
                                  num_train_steps=TRAINED_STEPS + 4, log_every_n_steps=1)
  assert code == 1, (out, err)
  assert "Traceback" not in err
  assert_one_line_error(err, ["--output_dir %s" % output_dir, "No space left on device"], world)
  after = snapshot(output_dir)
  assert {k: v for k, v in after.items() if k in before} == before


def test_full_disk_during_export_is_one_line_and_leaves_nothing(world, capsys, full_disk):
  mount_point, fill = full_disk
  export_dir = os.path.join(mount_point, "export")
  os.makedirs(export_dir)
  fill()
  line, _ = expect_error(world, capsys, ["export to --export_dir %s failed" % export_dir,
                                         "No space left on device", "nothing of it is left"],
                         do_export=True, export_dir=export_dir)
  assert "Hint" not in line
  assert os.listdir(export_dir) == []
