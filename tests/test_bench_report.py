"""bench/run.py --render: the kept benchmark figures render to the kept reports, failures too."""

import json
import os

import pytest

import conftest
from bench import markdown, perf_report

BENCH = os.path.join(conftest.REPO_ROOT, "bench")


@pytest.mark.parametrize("name", ["perf-cpu", "perf-cpu-all"])
def test_kept_figures_render_to_the_kept_report(name):
  with open(os.path.join(BENCH, name + ".json"), encoding="utf-8") as f:
    data = json.load(f)
  with open(os.path.join(BENCH, name + ".md"), encoding="utf-8") as f:
    assert perf_report.format_report(data) == f.read()


def test_failed_runs_are_rows_not_crashes():
  with open(os.path.join(BENCH, "perf-cpu.json"), encoding="utf-8") as f:
    data = json.load(f)
  data["gemm_runs"].append({"error": "exit 1: out | of memory"})
  data["runs"][0][1] = [{"error": "exit 1: train failed"}]
  data["serving"].append({"error": "exit 1: serve failed"})
  data["serving_extra"] = [{"error": "exit 1"}]
  report = perf_report.format_report(data)
  assert "| 3 | failed: exit 1: out / of memory | | | | |" in report
  assert "| teacher | fixed | fp32 | off | failed: exit 1: train failed |" in report
  assert "Serving run failed: exit 1: serve failed" in report
  assert "students of other shapes" not in report


def test_markdown_table():
  assert markdown.table(["a", "b"], [[1, ""], ["x"]]) == [
      "| a | b |", "|---|---|", "| 1 | |", "| x | |"]
  assert markdown.pct(0.5) == "50 %" and markdown.ratio_pct(1.0, 0) == "-"
