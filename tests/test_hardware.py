"""--precision=auto: bf16 where the hardware has it, fp32 elsewhere (a pure function)."""

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
