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
