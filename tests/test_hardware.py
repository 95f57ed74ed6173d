"""--precision=auto: bf16 where the hardware has it, fp32 elsewhere (a pure function); and
--xla_elementwise: when the training step's elementwise ops are compiled, and that they train the
same."""

import os

import numpy as np
import tensorflow as tf

from bert import hardware


def test_auto_picks_bf16_on_cpus_with_native_bf16():
  for flags in ({"avx2", "avx512f", "avx512_bf16"}, {"avx2", "amx_bf16", "amx_tile"}):
    precision, reason = hardware.choose_precision("auto", flags)
    assert precision == "bf16" and reason.startswith("auto: this CPU has")


def test_auto_picks_fp32_without_bf16_instructions():
  for flags in (set(), {"avx2", "fma"}, {"avx2", "avx512f", "avx512_vnni"}):
    precision, reason = hardware.choose_precision("auto", flags)
    assert precision == "fp32" and "no bf16" in reason


def test_auto_on_gpus_follows_compute_capability_not_the_host_cpu():
  assert hardware.choose_precision("auto", {"amx_bf16"}, [(7, 0)])[0] == "fp32"  # V100
  assert hardware.choose_precision("auto", set(), [(8, 0)])[0] == "bf16"         # A100
  assert hardware.choose_precision("auto", set(), [(9, 0), (9, 0)])[0] == "bf16"  # H100 ×2
  assert hardware.choose_precision("auto", set(), [(8, 6), (7, 5)])[0] == "fp32"  # mixed


def test_explicit_precision_is_kept():
  for requested in ("fp32", "fp16", "bf16"):
    assert hardware.choose_precision(requested, {"amx_bf16"}, [(9, 0)]) == (
        requested, "--precision=%s" % requested)


def test_cpu_flags_reads_cpuinfo(tmp_path):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
  assert hardware.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512_bf16"}
  assert hardware.cpu_flags(str(tmp_path / "absent")) == frozenset()


def test_a_model_trained_under_auto_exports_fp32_that_loads_in_a_fresh_process(tmp_path):
  import json

  import conftest
  conftest.write_emotion_dataset(tmp_path / "data", num_train=64, num_dev=16)
  vocab = conftest.write_vocab(tmp_path / "vocab.txt")
  config = conftest.write_config(tmp_path / "config.json")
  train = conftest.run_entry([
      "bert/run_classifier.py", "--task_name=emotion", "--data_dir=%s" % (tmp_path / "data"),
      "--vocab_file=%s" % vocab, "--bert_config_file=%s" % config,
      "--output_dir=%s" % (tmp_path / "out"), "--do_train", "--do_export",
      "--export_dir=%s" % (tmp_path / "export"), "--num_train_steps=3", "--max_seq_length=24"])
  assert train.returncode == 0, train.stderr
  expected = hardware.choose_precision("auto", hardware.cpu_flags())[0]  # no GPU in CI
  assert "Compute precision %s (auto: " % expected in train.stdout
  check = ("import json, sys, numpy as np, tensorflow as tf\n"
           "from bert.loaded_export import LoadedExport\n"
           "loaded = LoadedExport(sys.argv[1])\n"
           "dtypes = sorted({v.dtype.base_dtype.name for v in loaded.graph.get_collection("
           "'variables')})\n"
           "ids = np.array([[2, 7, 9, 3]], np.int32)\n"
           "out = loaded.run({'input_ids': ids, 'input_mask': np.ones_like(ids), "
           "'segment_ids': np.zeros_like(ids)})\n"
           "print(json.dumps({'dtypes': dtypes, 'logits': out['logits'].dtype.name, "
           "'sum': float(out['probabilities'].sum())}))\n")
  loaded = conftest.run_entry(["-c", check, str(tmp_path / "export")])
  assert loaded.returncode == 0, loaded.stderr
  result = json.loads(loaded.stdout.strip().splitlines()[-1])
  assert result["dtypes"] == ["float32"] and result["logits"] == "float32"
  assert abs(result["sum"] - 1.0) < 1e-5


def test_elementwise_jit_auto_is_on_for_fixed_shapes_on_a_cpu_only():
  on, reason = hardware.choose_elementwise_jit("auto", "bf16", "fixed")
  assert on is True and "bf16 on a CPU" in reason
  on, reason = hardware.choose_elementwise_jit("auto", "fp32", "fixed")
  assert on is True and "fp32 on a CPU" in reason
  on, reason = hardware.choose_elementwise_jit("auto", "bf16", "dynamic")
  assert on is False and "dynamic padding" in reason
  assert hardware.choose_elementwise_jit("auto", "fp32", "dynamic")[0] is False
  assert hardware.choose_elementwise_jit("auto", "fp16", "fixed")[0] is False
  assert hardware.choose_elementwise_jit("auto", "bf16", "fixed", [(8, 0)])[0] is False  # GPU
  assert hardware.choose_elementwise_jit("on", "fp32") == (True, "--xla_elementwise=on")
  assert hardware.choose_elementwise_jit("off", "bf16") == (False, "--xla_elementwise=off")
  # --use_xla compiles the whole step: nothing is left to cluster.
  assert hardware.choose_elementwise_jit("on", "bf16", "fixed", use_xla=True)[0] is False


def test_elementwise_jit_flags_keep_the_users_own():
  assert hardware.with_elementwise_jit_flags(None) == " ".join(hardware.ELEMENTWISE_JIT_FLAGS)
  mine = "--tf_xla_clustering_debug --tf_xla_ops_to_cluster=PW"
  merged = hardware.with_elementwise_jit_flags(mine)
  assert merged.split() == ["--tf_xla_clustering_debug", "--tf_xla_ops_to_cluster=PW",
                            "--tf_xla_cpu_global_jit"]
  assert hardware.with_elementwise_jit_flags(merged) == merged  # applied twice: no duplicates


def test_elementwise_jit_compiles_the_training_step_and_trains_as_without_it(tmp_path):
  """Entry-point runs (the flags must reach TensorFlow before it starts): with
  --xla_elementwise=on XLA compiles clusters (its dump directory fills) and the weights after
  the same steps match the run without it, fp32, dropout on (random ops stay uncompiled)."""
  import conftest
  conftest.write_emotion_dataset(tmp_path / "data", num_train=64, num_dev=16)
  vocab = conftest.write_vocab(tmp_path / "vocab.txt")
  config = conftest.write_config(tmp_path / "config.json")
  weights, dumps = {}, {}
  for mode in ("on", "off"):
    dump = tmp_path / ("xla-dump-" + mode)
    run = conftest.run_entry([
        "bert/run_classifier.py", "--task_name=emotion", "--data_dir=%s" % (tmp_path / "data"),
        "--vocab_file=%s" % vocab, "--bert_config_file=%s" % config,
        "--output_dir=%s" % (tmp_path / mode), "--do_train", "--num_train_steps=4",
        "--max_seq_length=24", "--padding=fixed", "--precision=fp32",
        "--xla_elementwise=%s" % mode], env={"XLA_FLAGS": "--xla_dump_to=%s" % dump})
    assert run.returncode == 0, run.stderr
    assert "Elementwise ops compiled with XLA: %s (--xla_elementwise=%s)" % (
        "yes" if mode == "on" else "no", mode) in run.stdout
    dumps[mode] = sorted(os.listdir(dump)) if os.path.isdir(dump) else []
    checkpoint = tf.train.latest_checkpoint(str(tmp_path / mode))
    weights[mode] = {name: tf.train.load_variable(checkpoint, name)
                     for name, _ in tf.train.list_variables(checkpoint)}
  assert dumps["on"] and not dumps["off"], dumps
  assert weights["on"].keys() == weights["off"].keys()
  assert int(weights["on"]["global_step"]) == 4
  for name, value in weights["off"].items():
    np.testing.assert_allclose(weights["on"][name], value, rtol=1e-4, atol=1e-5, err_msg=name)
