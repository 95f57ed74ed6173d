#!/usr/bin/env python3
"""Probe of bad inputs and faults (issue #12): each case's verdict, counted. Not part of the suite.

  python bench/probe_reliability.py [--markdown]

Builds tests/test_reliability.py's World (a tiny 1-layer model trained 4 steps and exported, in a
temporary directory), then runs every case in-process the way the entry points do
(errors.run_main) and classifies it:
  clean      exit 1, one `error:` line on stderr, no traceback;
  defined    a documented behaviour that the case checks (one row per line, rebuilt cache...), or
             a valid input accepted with the reading it states;
  SILENT     exit 0 where an error was due, or a defined behaviour that does not hold;
  TRACEBACK  anything else (an exception that is not a one-line error, or a messy stderr).
Takes about a minute on 2 cores.
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO_ROOT, os.path.join(REPO_ROOT, "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import conftest  # noqa: E402
import test_reliability as tr  # noqa: E402
from bert import classifier_flags, classifier_run  # noqa: E402
from bert.distill_run import DistillRun  # noqa: E402
from bert.errors import run_main  # noqa: E402


def outcome(thunk):
  """(verdict, message) of running thunk() as an entry point's main."""
  out, err = io.StringIO(), io.StringIO()
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      result = run_main(lambda argv: thunk(), [])
  except SystemExit as e:
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    if e.code == 1 and len(lines) == 1 and "error:" in lines[0] and "Traceback" not in lines[0]:
      return "clean", lines[0]
    return "TRACEBACK", " | ".join(lines)[-300:]
  except Exception as e:  # pylint: disable=broad-except
    return "TRACEBACK", "%s: %s" % (type(e).__name__, str(e)[:200])
  if result is False:
    return "SILENT", "the defined behaviour does not hold"
  return ("defined", str(result)[:160]) if result not in (None, 0) else ("SILENT", "exit 0")


class Probe(object):

  def __init__(self, root):
    self.w = tr.World(root)
    self.client = conftest.load_script("predict_client")
    self.cases = []

  # -- ways to run ------------------------------------------------------------------------------

  def flags_case(self, name, **overrides):
    values = self.w.values(**dict(dict(do_train=True), **overrides))
    values = {k: v for k, v in values.items() if v is not None}
    self.cases.append((name, lambda: classifier_flags.check_flags(
        conftest.classifier_flags(**values))))

  def run_case(self, name, make_overrides, entry="classifier", valid=None):
    """valid: the input is valid (accepted with this defined reading); else an error is due."""
    def thunk():
      overrides = make_overrides()
      if entry == "distill":
        DistillRun(self.w.distill_run_config(**overrides)).run()
      else:
        with contextlib.redirect_stdout(io.StringIO()):
          classifier_run.ClassifierRun(self.w.run_config(**overrides)).run()
      return valid
    self.cases.append((name, thunk))

  def client_case(self, name, argv, check=None, stdin=None):
    def thunk():
      stdout, stderr = io.StringIO(), io.StringIO()
      old = sys.stderr, sys.stdin
      sys.stderr = stderr
      if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
      try:
        code = self.client.run(["--local", "--export_dir", self.w.export_dir] + argv, stdout)
      finally:
        sys.stderr, sys.stdin = old
      if code:
        print(stderr.getvalue().strip().replace("predict_client.py: error:", "error:"),
              file=sys.stderr)
        raise SystemExit(code)
      return check(stdout.getvalue(), stderr.getvalue()) if check else None
    self.cases.append((name, thunk))

  def copy(self, name, source=None):
    target = self.w.path("probe", name)
    if not os.path.exists(target):
      shutil.copytree(source or self.w.trained, target)
    return target

  # -- the cases --------------------------------------------------------------------------------

  def add_all(self):
    w = self.w
    # The bad inputs of tests/test_reliability.py (28).
    for name, entry, overrides_of, _ in tr.BAD_INPUTS:
      self.run_case("reliability:" + name, lambda o=overrides_of: o(w), entry)
    # Flags (no file read).
    for flag in ("train_batch_size", "eval_batch_size", "predict_batch_size",
                 "save_checkpoints_steps", "keep_checkpoint_max"):
      self.flags_case("%s=0" % flag, **{flag: 0})
    self.flags_case("train_batch_size=-1", train_batch_size=-1)
    self.flags_case("max_seq_length=2", max_seq_length=2)
    self.flags_case("max_seq_length=0", max_seq_length=0)
    for value in ("0", "-1", "nan", "inf", "-inf"):
      self.flags_case("learning_rate=%s" % value, learning_rate=value)
    for value in ("0", "-1", "nan", "inf"):
      self.flags_case("num_train_epochs=%s" % value, num_train_epochs=value)
    for value in ("0", "-1", "nan", "inf"):
      self.flags_case("temperature=%s" % value, temperature=value)
    for value in ("-0.1", "1.5", "nan", "inf"):
      self.flags_case("warmup_proportion=%s" % value, warmup_proportion=value)
    for value in (-1, -5):
      self.flags_case("num_train_steps=%d" % value, num_train_steps=value)
    for value in ("a", "a,a", "a,,b"):
      self.flags_case("labels=%s" % value, labels=value, task_name="csv")
    for flag in ("task_name", "vocab_file", "bert_config_file", "output_dir", "data_dir"):
      self.flags_case("missing --%s" % flag, **{flag: ""})
    self.flags_case("--do_export without --export_dir", do_export=True)
    self.flags_case("nothing to do", do_train=False)
    self.flags_case("--use_tpu", use_tpu=True)
    self.run_case("unknown --task_name", lambda: dict(do_train=True, task_name="nope"))
    for value in ("-0.5", "nan", "inf"):
      self.run_case("alpha=%s" % value, lambda v=value: dict(do_train=True, alpha=v), "distill")
    self.run_case("distill with --do_distill", lambda: dict(do_train=True, do_distill=True),
                  "distill")
    # Files: vocab, config, output_dir.
    tokens = list(conftest.VOCAB_TOKENS)
    dup = tokens[:-1] + [tokens[7]]
    self.run_case("vocab with a duplicate line", lambda: dict(
        do_train=True, vocab_file=w.vocab_file("dup.txt", dup)))
    self.run_case("vocab_size = de-duplicated count", lambda: dict(
        do_train=True, vocab_file=w.vocab_file("dup.txt", dup),
        bert_config_file=w.config_file("dedup.json", vocab_size=len(dup) - 1),
        output_dir=w.path("probe", "dedup_out")))
    self.run_case("vocab missing", lambda: dict(do_train=True, vocab_file=w.path("nope.txt")))
    self.run_case("bert_config missing", lambda: dict(do_train=True,
                                                      bert_config_file=w.path("nope.json")))
    self.run_case("bert_config not JSON", lambda: dict(
        do_train=True, bert_config_file=tr.write_bytes(w.path("configs", "broken.json"),
                                                       b'{"vocab_size": 4')))
    self.run_case("bert_config vocab_size 0", lambda: dict(
        do_train=True, bert_config_file=w.config_file("zero.json", vocab_size=0)))
    self.run_case("--output_dir is a file", lambda: dict(do_train=True, output_dir=w.vocab))
    self.run_case("model_signature.json cut short", lambda: dict(
        do_eval=True, output_dir=self.cut(self.copy("cut_signature"), "model_signature.json")))
    # Silently wrong before issue #12.
    swapped = tokens[:5] + [tokens[6], tokens[5]] + tokens[7:]
    self.run_case("rerun with another vocab of the same size (eval)", lambda: dict(
        do_eval=True, vocab_file=w.vocab_file("swapped.txt", swapped)))
    self.run_case("rerun with another vocab of the same size (export)", lambda: dict(
        do_export=True, export_dir=w.path("probe", "export_swapped"),
        vocab_file=w.vocab_file("swapped.txt", swapped)))
    self.run_case("rerun with --do_lower_case=false", lambda: dict(do_eval=True,
                                                                   do_lower_case=False))
    self.run_case("rerun with another --max_seq_length", lambda: dict(do_eval=True,
                                                                      max_seq_length=16))
    self.cases.append(("second run while output_dir is locked", self.locked_run))
    self.cases.append(("stale lock of a killed run is taken over", self.stale_lock))
    self.cases.append(("older output_dir (signature without vocab) is accepted", self.legacy))
    one_class = "".join("%s&1\n" % t for t, _ in conftest.review_lines(8, seed=2)).encode()
    self.run_case("emotion training data with one class", lambda: dict(
        do_train=True, data_dir=w.data("one_class", one_class),
        output_dir=w.path("probe", "one_class")))
    self.run_case("csv training data with one class", lambda: dict(
        do_train=True, task_name="csv", data_dir=self.csv_dir("csv_one", "pos"),
        output_dir=w.path("probe", "csv_one")))
    self.cases.append(("blank lines in test.csv with --do_predict", self.blank_test_lines))
    # Data files.
    good = tr.good_lines().encode()
    for name, data, valid in (
        ("only a BOM", b"\xef\xbb\xbf\n", None),
        ("UTF-16 file", "好&1\n差&0\n".encode("utf-16"), None),
        ("NUL bytes as a text", good + b"\0\0&1\n", "accepted: an example of [CLS] [SEP]"),
        ("CR-only line ends", good.replace(b"\n", b"\r"), "accepted: CR ends a line"),
        ("label with spaces", good + "味道 &  1 \n".encode(), "accepted: label '1'"),
        ("text of punctuation only", good + "。。。&1\n".encode(), "accepted: a real text")):
      self.run_case("train.csv: " + name, lambda n=name, d=data: dict(
          do_train=True, data_dir=w.data("probe_" + n.replace(" ", "_"), d),
          output_dir=w.path("probe", "data_" + n.replace(" ", "_")), num_train_steps=1),
          valid=valid)
    self.run_case("dev.csv missing with --do_eval", lambda: dict(
        do_eval=True, data_dir=self.without(w.data_dir, "dev.csv")))
    self.run_case("test.csv missing with --do_predict", lambda: dict(
        do_predict=True, data_dir=self.without(w.data_dir, "test.csv")))
    self.run_case("csv: text column out of range", lambda: dict(
        do_train=True, task_name="csv", text_column="5", data_dir=self.csv_dir("csv_two", None),
        output_dir=w.path("probe", "csv_col")))
    self.run_case("csv: unknown column name", lambda: dict(
        do_train=True, task_name="csv", text_column="review", csv_header=True,
        data_dir=self.csv_dir("csv_two", None), output_dir=w.path("probe", "csv_name")))
    # Faults on disk.
    self.run_case("truncated checkpoint then --do_eval", lambda: dict(
        do_eval=True, output_dir=self.cut(self.copy("cut_ckpt"),
                                          "model.ckpt-4.data-00000-of-00001")))
    self.run_case("truncated checkpoint index then --do_eval", lambda: dict(
        do_eval=True, output_dir=self.cut(self.copy("cut_index"), "model.ckpt-4.index")))
    self.run_case("checkpoint state naming a missing checkpoint", lambda: dict(
        do_eval=True, output_dir=self.remove(self.copy("gone_ckpt"),
                                             "model.ckpt-4.data-00000-of-00001")))
    self.run_case("truncated teacher variables.data", lambda: dict(
        do_train=True, output_dir=w.path("probe", "student1"), teacher_model=self.cut(
            self.copy("cut_teacher", w.version_dir), "variables/variables.data-00000-of-00001")),
        "distill")
    self.run_case("teacher bert_export.json cut short", lambda: dict(
        do_train=True, output_dir=w.path("probe", "student2"), teacher_model=self.cut(
            self.copy("cut_info", w.version_dir), "assets.extra/bert_export.json")), "distill")
    self.run_case("teacher without assets.extra", lambda: dict(
        do_train=True, output_dir=w.path("probe", "student3"), teacher_model=self.remove(
            self.copy("no_extra", w.version_dir), "assets.extra")), "distill")
    self.run_case("teacher saved_model.pb truncated", lambda: dict(
        do_train=True, output_dir=w.path("probe", "student4"), teacher_model=self.cut(
            self.copy("cut_pb", w.version_dir), "saved_model.pb")), "distill")
    self.cases.append(("truncated cached train.tf_record (rebuilt)", self.cut_cache))
    self.cases.append(("cached train.tf_record.json not JSON (rebuilt)", self.bad_sidecar))
    if self.can_mount():
      self.cases.append(("disk full while writing summaries", self.full_disk_summaries))
      self.cases.append(("disk full during export", self.full_disk_export))
    # The client (--local).
    lines_check = lambda n: lambda out, err: len(out.split("\n")) - 1 == n and "%d texts" % n
    self.client_case("client: whitespace-only argument", ["   "], lines_check(1))
    self.client_case("client: control characters only", ["\x01\x02"], lines_check(1))
    self.client_case("client: empty argument", [""], lines_check(1))
    for name, sep in (("\\f", "\f"), ("\\x1c", "\x1c"), ("\\x85", "\x85"), ("U+2028", "\u2028")):
      path = tr.write_bytes(self.w.path("probe", "client_%d.txt" % ord(sep)),
                            ("好%s差\n\n很好\n" % sep).encode())
      self.client_case("client: --input with %s and a blank line" % name, ["--input", path],
                       lines_check(3))
    self.client_case("client: --input CRLF", ["--input", tr.write_bytes(
        self.w.path("probe", "crlf.txt"), "好\r\n差\r\n".encode())], lines_check(2))
    self.client_case("client: --input missing", ["--input", self.w.path("nope.txt")])
    self.client_case("client: --input not UTF-8", ["--input", tr.write_bytes(
        self.w.path("probe", "latin1.txt"), "caf\xe9\n".encode("latin-1"))])
    self.client_case("client: --input empty file", ["--input", tr.write_bytes(
        self.w.path("probe", "empty.txt"), b"")])
    self.client_case("client: --batch_size 0", ["--batch_size", "0", "好"])
    self.client_case("client: texts and --input", ["--input", self.w.vocab, "好"])
    self.cases.append(("client: --export_dir missing", lambda: self.client_error(
        ["--export_dir", self.w.path("nope"), "好"])))

  # -- helpers of the cases ---------------------------------------------------------------------

  def cut(self, directory, name, fraction=0.5):
    path = os.path.join(directory, name)
    with open(path, "r+b") as f:
      f.truncate(int(os.path.getsize(path) * fraction))
    return directory

  def remove(self, directory, name):
    path = os.path.join(directory, name)
    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return directory

  def without(self, data_dir, name):
    target = self.w.path("probe", "without_" + name)
    if not os.path.exists(target):
      shutil.copytree(data_dir, target)
      os.remove(os.path.join(target, name))
    return target

  def csv_dir(self, name, label):
    data_dir = self.w.path("probe", name)
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "train.tsv"), "w", encoding="utf-8") as f:
      f.write("".join("%s\t%s\n" % (t, label or l) for t, l in conftest.review_lines(8, seed=2)))
    return data_dir

  def client_error(self, argv):
    stderr = io.StringIO()
    old, sys.stderr = sys.stderr, stderr
    try:
      code = self.client.run(argv, io.StringIO())
    finally:
      sys.stderr = old
    print(stderr.getvalue().strip().replace("predict_client.py: error:", "error:"),
          file=sys.stderr)
    raise SystemExit(code)

  def locked_run(self):
    from bert.run_lock import RunLock
    output_dir = self.copy("locked")
    with RunLock(output_dir):  # this process holds it: the run's own open gets refused
      classifier_run.ClassifierRun(self.w.run_config(do_eval=True, output_dir=output_dir)).run()

  def stale_lock(self):
    output_dir = self.copy("stale")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with open(os.path.join(output_dir, ".lock"), "w") as f:
      f.write("%d\n" % dead.pid)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      classifier_run.ClassifierRun(self.w.run_config(do_eval=True, output_dir=output_dir)).run()
    return "Took over" in out.getvalue() and "took over the lock of dead pid %d" % dead.pid

  def legacy(self):
    output_dir = self.copy("legacy")
    path = os.path.join(output_dir, "model_signature.json")
    with open(path) as f:
      signature = json.load(f)
    with open(path, "w") as f:
      json.dump({k: signature[k] for k in ("bert_config", "labels")}, f)
    with contextlib.redirect_stdout(io.StringIO()):
      classifier_run.ClassifierRun(self.w.run_config(do_eval=True, output_dir=output_dir)).run()
    with open(path) as f:
      return json.load(f) == signature and "accepted; vocab, casing, length recorded"

  def blank_test_lines(self):
    output_dir = self.copy("blank_predict")
    data_dir = self.w.data("probe_blank", None)
    with open(os.path.join(self.w.data_dir, "test.csv"), encoding="utf-8") as f:
      lines = f.read().splitlines()
    with open(os.path.join(data_dir, "test.csv"), "w", encoding="utf-8") as f:
      f.write("\n".join(lines[:2] + [""] + lines[2:]) + "\n")
    with contextlib.redirect_stdout(io.StringIO()):
      classifier_run.ClassifierRun(self.w.run_config(do_predict=True, output_dir=output_dir,
                                                     data_dir=data_dir)).run()
    with open(os.path.join(output_dir, "test_results.tsv")) as f:
      rows = f.read().splitlines()
    return len(rows) == len(lines) + 1 and rows[2] == "nan\tnan" and "row of nan at the blank"

  def cut_cache(self):
    output_dir = self.cut(self.copy("cut_cache"), "train.tf_record", 0.6)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      classifier_run.ClassifierRun(self.w.run_config(do_train=True, output_dir=output_dir,
                                                     num_train_steps=tr.TRAINED_STEPS)).run()
    return "rebuilding" in out.getvalue() and "named and rebuilt"

  def bad_sidecar(self):
    output_dir = self.cut(self.copy("bad_sidecar"), "train.tf_record.json", 0.5)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      classifier_run.ClassifierRun(self.w.run_config(do_train=True, output_dir=output_dir,
                                                     num_train_steps=tr.TRAINED_STEPS)).run()
    return "Wrote" in out.getvalue() and "rebuilt"

  @staticmethod
  def can_mount():
    return os.geteuid() == 0 and shutil.which("mount") is not None

  @contextlib.contextmanager
  def tmpfs(self, name):
    mount_point = self.w.path("probe", name)
    os.makedirs(mount_point)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mount_point], check=True)
    try:
      yield mount_point
    finally:
      subprocess.run(["umount", "-l", mount_point])

  @staticmethod
  def fill(mount_point):
    with open(os.path.join(mount_point, "filler"), "wb", buffering=0) as f:
      try:
        while True:
          f.write(b"\0" * 4096)
      except OSError:
        pass

  def full_disk_summaries(self):
    with self.tmpfs("full1") as mount_point:
      output_dir = os.path.join(mount_point, "out")
      shutil.copytree(self.w.trained, output_dir)
      self.fill(mount_point)
      classifier_run.ClassifierRun(self.w.run_config(
          do_train=True, output_dir=output_dir, num_train_steps=tr.TRAINED_STEPS + 4,
          log_every_n_steps=1)).run()

  def full_disk_export(self):
    with self.tmpfs("full2") as mount_point:
      self.fill(mount_point)
      classifier_run.ClassifierRun(self.w.run_config(
          do_export=True, export_dir=os.path.join(mount_point, "export"))).run()


def main():
  root = tempfile.mkdtemp(prefix="probe_reliability_")
  with contextlib.redirect_stdout(io.StringIO()):
    probe = Probe(root)
  probe.add_all()
  results = []
  for name, thunk in probe.cases:
    verdict, message = outcome(thunk)
    results.append((name, verdict, message))
    print("%-9s %s: %s" % (verdict, name, message), flush=True)
  counts = {}
  for _, verdict, _ in results:
    counts[verdict] = counts.get(verdict, 0) + 1
  print("\n%d cases: %s" % (len(results), ", ".join("%s %d" % item for item in
                                                      sorted(counts.items()))))
  if "--markdown" in sys.argv:
    print("\n| # | case | verdict | message |\n|---|---|---|---|")
    for number, (name, verdict, message) in enumerate(results, start=1):
      print("| %d | %s | %s | %s |" % (number, name, verdict, message.replace("|", "\\|")))
  shutil.rmtree(root, ignore_errors=True)
  return 1 if counts.get("SILENT") or counts.get("TRACEBACK") else 0


if __name__ == "__main__":
  sys.exit(main())
