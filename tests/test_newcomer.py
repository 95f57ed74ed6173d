"""What a new user sees: our lines only, and a warning when training collapsed."""

import os
import re
import subprocess
import sys

import conftest
from bert import quiet


def _user_env(**extra):
  """The environment a user has: no TF_CPP_MIN_LOG_LEVEL, no BERT_VERBOSE."""
  env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "BERT_VERBOSE")}
  env.update(PYTHONPATH=conftest.REPO_ROOT, **extra)
  return env


def _train(tmp_path, name, *flags, env=None):
  data_dir = tmp_path / "data"
  if not data_dir.exists():
    conftest.write_emotion_dataset(data_dir, num_train=128, num_dev=32)
    conftest.write_vocab(tmp_path / "vocab.txt")
    conftest.write_config(tmp_path / "config.json")
  args = [sys.executable, "bert/run_classifier.py", "--task_name=emotion",
          "--data_dir=%s" % data_dir, "--vocab_file=%s" % (tmp_path / "vocab.txt"),
          "--bert_config_file=%s" % (tmp_path / "config.json"),
          "--output_dir=%s" % (tmp_path / name), "--do_train", "--do_eval", "--do_export",
          "--export_dir=%s" % (tmp_path / (name + "_export")), "--num_train_steps=150",
          "--train_batch_size=16", "--max_seq_length=24", "--log_every_n_steps=50"] + list(flags)
  return subprocess.run(args, cwd=conftest.REPO_ROOT, env=env or _user_env(), timeout=300,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)


def test_healthy_run_prints_only_our_lines_and_no_warning(tmp_path):
  result = _train(tmp_path, "healthy", "--learning_rate=3e-3")
  assert result.returncode == 0, result.stderr
  assert result.stderr == ""
  for line in result.stdout.splitlines():
    assert not any(marker in line for marker in conftest.TF_NOTICE_MARKERS), line
  assert "WARNING" not in result.stdout
  assert "eval_accuracy = 1.0" in result.stdout


def test_collapse_warning_fires_on_a_one_class_run(tmp_path):
  # Google's uncorrected Adam at 1e-2 collapses this model; the healthy run above differs in rate.
  result = _train(tmp_path, "collapsed", "--learning_rate=1e-2", "--noadam_bias_correction")
  assert result.returncode == 0, result.stderr
  assert "WARNING: the training loss stayed at 0.6" in result.stdout
  # Which class it collapses onto depends on the random draws; that it names one does not.
  assert re.search(r"WARNING: the model predicts label '[01]' for all 32 dev examples",
                   result.stdout), result.stdout
  assert "learning rate too high" in result.stdout


def test_verbose_brings_tensorflows_lines_back():
  code = ("import sys; sys.argv = ['x']; from bert import quiet; quiet.configure(); "
          "import tensorflow as tf; tf.compat.v1.logging.warning('a python-side TF warning')")
  quiet_run = subprocess.run([sys.executable, "-c", code], cwd=conftest.REPO_ROOT,
                             env=_user_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=120)
  loud_run = subprocess.run([sys.executable, "-c", code], cwd=conftest.REPO_ROOT,
                            env=_user_env(BERT_VERBOSE="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
  assert quiet_run.returncode == loud_run.returncode == 0
  assert quiet_run.stderr == ""
  assert "a python-side TF warning" in loud_run.stderr


def test_noise_filter_keeps_real_errors():
  assert quiet.is_noise("I0000 00:00:1796192454.163150    5067 port.cc:153] oneDNN custom op")
  assert quiet.is_noise("W1202 06:20:02.671167 140105799400320 deprecation.py:50] From x")
  assert quiet.is_noise("WARNING: All log messages before absl::InitializeLog() is called are "
                        "written to STDERR")
  probe = ("E0000 00:00:1796192397.966775    4528 cuda_platform.cc:52] failed call to cuInit: "
           "INTERNAL: CUDA error")
  assert quiet.is_noise(probe, gpu_driver=False)
  assert not quiet.is_noise(probe, gpu_driver=True)  # on a GPU machine it is a real problem
  assert not quiet.is_noise("E0000 00:00:17.5  12 op_kernel.cc:1] OOM when allocating tensor")
  assert not quiet.is_noise("error: --learning_rate: must be > 0, got 0.0")
  assert not quiet.is_noise("Traceback (most recent call last):")
