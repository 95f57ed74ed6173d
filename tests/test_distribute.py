"""tf.distribute (issue 18): mirrored over two logical CPU devices equals one device at the same
global batch; two workers on 127.0.0.1 train to identical weights and resume after the chief dies;
online distillation under mirrored gives the same soft losses; the flag checks.

The CPU is split into logical devices before TensorFlow starts, so the mirrored runs happen in a
subprocess (tests/distribute_helper.py); the workers are entry-point subprocesses. Every process
is bounded in time and killed at the end.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest

import conftest
from bert import distribute
from bert.errors import UsageError

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distribute_helper.py")


def run_helper(mode, root, *args, timeout=300):
  result = subprocess.run([sys.executable, HELPER, mode, str(root)] + list(args),
                          env=conftest._entry_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=timeout)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_mirrored_two_devices_equal_one_device_at_the_same_global_batch(tmp_path):
  # 27 examples, batches of 8 in length buckets: the epoch's last batches are uneven, and split
  # unevenly over the replicas.
  result = run_helper("mirrored", tmp_path)
  assert result["replicas"] == 2
  assert len(result["one"]) == len(result["two"]) == 6
  np.testing.assert_allclose(result["two"], result["one"], atol=1e-5, rtol=0)
  assert result["names"] == []  # the same variables, slots included
  assert result["max_weight_diff"] <= 1e-5


def test_mirrored_composes_with_fp16_loss_scaling(tmp_path):
  # The loss scale is a mirrored variable moved once per step from the summed gradients. Casts
  # to fp16 round slices of another shape differently: equal to about 1e-5, not bit for bit.
  # (bf16, measured the same way: losses within 3e-5, weights within 6e-4.)
  result = run_helper("mirrored", tmp_path, "fp16")
  np.testing.assert_allclose(result["two"], result["one"], atol=1e-4, rtol=0)
  assert result["names"] == []  # loss_scale and loss_scale_good_steps on both
  assert result["max_weight_diff"] <= 1e-4


def test_online_distillation_under_mirrored_gives_the_same_soft_losses(tmp_path):
  result = run_helper("distill", tmp_path)
  assert len(result["one"]) == len(result["two"]) == 4
  assert min(result["one"]) > 0.1  # a confident teacher: not a comparison of zeros
  np.testing.assert_allclose(result["two"], result["one"], atol=1e-5, rtol=0)


# -- two workers on 127.0.0.1 ----------------------------------------------------------------

def free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  try:
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


class Cluster(object):
  """Two run_classifier.py workers (worker 0 the chief) sharing one output_dir."""

  def __init__(self, root, steps, save_every):
    self.root = str(root)
    self.data_dir = conftest.write_emotion_dataset(os.path.join(self.root, "data"), num_train=48)
    self.vocab_file = conftest.write_vocab(os.path.join(self.root, "vocab.txt"))
    self.config = conftest.write_config(os.path.join(self.root, "config.json"),
                                        num_hidden_layers=1)
    self.output_dir = os.path.join(self.root, "out")
    self.steps, self.save_every = steps, save_every
    self.processes = []
    self.extra = []

  def start(self):
    ports = free_ports(2)
    cluster = {"worker": ["127.0.0.1:%d" % port for port in ports]}
    self.processes = []
    for index in range(2):
      tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
      self.processes.append(conftest.start_entry(
          ["bert/run_classifier.py", "--task_name=emotion", "--data_dir=" + self.data_dir,
           "--vocab_file=" + self.vocab_file, "--bert_config_file=" + self.config,
           "--output_dir=" + self.output_dir, "--do_train", "--max_seq_length=24",
           "--train_batch_size=8", "--num_train_steps=%d" % self.steps, "--learning_rate=1e-3",
           "--save_checkpoints_steps=%d" % self.save_every, "--log_every_n_steps=1",
           "--distribution=multi_worker"] + self.extra, env={"TF_CONFIG": tf_config}))

  def wait(self, timeout):
    """(returncode, stdout + stderr) of each worker; kills them all past timeout."""
    deadline = time.time() + timeout
    outputs = []
    try:
      for process in self.processes:
        out, err = process.communicate(timeout=max(deadline - time.time(), 1))
        outputs.append((process.returncode, out + err))
    finally:
      self.kill()
    return outputs

  def kill(self):
    for process in self.processes:
      if process.poll() is None:
        process.kill()
      process.communicate()

  def weights(self, directory):
    import tensorflow as tf
    checkpoint = tf.train.latest_checkpoint(directory)
    return checkpoint, {name: tf.train.load_variable(checkpoint, name)
                        for name, _ in tf.train.list_variables(checkpoint)}


def assert_identical_workers(cluster, outputs):
  for code, output in outputs:
    assert code == 0, output[-3000:]
    assert "Trained to step %d" % cluster.steps in output, output[-3000:]
  chief, chief_weights = cluster.weights(cluster.output_dir)
  other, other_weights = cluster.weights(os.path.join(cluster.output_dir, "worker-1"))
  assert os.path.basename(chief) == os.path.basename(other) == "model.ckpt-%d" % cluster.steps
  assert sorted(chief_weights) == sorted(other_weights)
  for name in chief_weights:
    np.testing.assert_array_equal(chief_weights[name], other_weights[name], err_msg=name)
  # Only the chief writes in output_dir: no checkpoint, summary or lock of worker 1 there.
  assert "Distribution multi_worker: 2 replicas over 2 workers" in outputs[0][1]
  assert not [n for n in os.listdir(os.path.join(cluster.output_dir, "worker-1"))
              if n.startswith("events.out")]


def test_two_workers_train_to_identical_weights(tmp_path):
  cluster = Cluster(tmp_path, steps=6, save_every=1000)
  cluster.extra = ["--do_eval"]
  cluster.start()
  outputs = cluster.wait(timeout=240)
  assert_identical_workers(cluster, outputs)
  # Eval runs on the chief alone, on one device, from the chief's last checkpoint.
  assert os.path.isfile(os.path.join(cluster.output_dir, "eval_results.txt"))
  assert "global_step = 6" in open(os.path.join(cluster.output_dir, "eval_results.txt")).read()
  assert not os.path.exists(os.path.join(cluster.output_dir, "worker-1", "eval_results.txt"))
  assert "eval, predict and export are left to worker 0" in outputs[1][1]


def recorded_step(output_dir):
  """The step of the checkpoint output_dir's `checkpoint` state file names (0: none yet)."""
  try:
    with open(os.path.join(output_dir, "checkpoint"), encoding="utf-8") as f:
      found = re.search(r'^model_checkpoint_path: ".*-(\d+)"', f.read(), re.M)
  except OSError:
    return 0
  return int(found.group(1)) if found else 0


def test_killed_chief_and_restarted_workers_resume_from_the_last_checkpoint(tmp_path):
  cluster = Cluster(tmp_path, steps=30, save_every=4)
  cluster.start()
  try:
    deadline = time.time() + 240
    # The checkpoint state file, not the index file: a save writes the index first and names
    # it in `checkpoint` last, so a kill in between leaves the previous checkpoint the latest.
    while recorded_step(cluster.output_dir) < 8:
      assert time.time() < deadline, "no checkpoint 8 within 240 s"
      assert cluster.processes[0].poll() is None, cluster.processes[0].communicate()
      time.sleep(0.2)
    cluster.processes[0].kill()  # the chief dies mid-run; the other worker is stopped too
    time.sleep(1)
  finally:
    cluster.kill()
  import tensorflow as tf
  last = tf.train.latest_checkpoint(cluster.output_dir)
  last_step = int(last.rsplit("-", 1)[1])
  assert 8 <= last_step < 30
  cluster.start()  # both again, the same command
  outputs = cluster.wait(timeout=240)
  assert "Resuming from %s" % last in outputs[0][1], outputs[0][1][-3000:]
  assert "Resuming from %s" % last in outputs[1][1], outputs[1][1][-3000:]
  assert "step %d/30" % (last_step + 1) in outputs[0][1]
  assert_identical_workers(cluster, outputs)


# -- flags -----------------------------------------------------------------------------------

def flags(**values):
  defaults = {"distribution": "none", "num_devices": 0}
  defaults.update(values)
  return types.SimpleNamespace(**defaults)


def test_flag_checks_are_one_line_errors():
  distribute.check_flags(flags(distribution="mirrored", num_devices=2), environ={})
  with pytest.raises(UsageError, match="--num_devices: applies to --distribution=mirrored"):
    distribute.check_flags(flags(num_devices=2), environ={})
  with pytest.raises(UsageError, match="needs the TF_CONFIG environment variable"):
    distribute.check_flags(flags(distribution="multi_worker"), environ={})
  with pytest.raises(UsageError, match="task index 2 out of range"):
    distribute.check_flags(flags(distribution="multi_worker"), environ={"TF_CONFIG": json.dumps(
        {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}})})
  with pytest.raises(UsageError, match="TF_CONFIG: expected"):
    distribute.check_flags(flags(distribution="multi_worker"), environ={"TF_CONFIG": "{"})
  assert distribute.parse_tf_config(json.dumps(
      {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}})) == (
          ["a:1", "b:2"], 1, False)
  assert distribute.parse_tf_config(json.dumps(
      {"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief"}}))[2]
