#!/usr/bin/env python3
"""The `text` signature (raw strings, tokenized in the graph) against FullTokenizer, and its cost.

  python bench/text_signature_bench.py [--quick] [--output output/bench/text_signature.md]

Parity: the ids, segment ids and mask the export's text signature computes (read from its graph,
text/input_ids:0 ...) against tokenization.FullTokenizer + features.convert_single_example on
  * all of ../shared/data/waimai/dev.csv (a Chinese character vocab built with
    scripts/build_vocab.py from waimai train, lower-cased), single texts and, at
    max_seq_length 32, consecutive lines as pairs;
  * all of ../shared/data/sst2/dev.tsv with the MiniLM vocab (output/sst2/minilm/vocab.txt,
    uncased), single texts and pairs at max_seq_length 32;
  * odd Unicode (emoji, private use, control and zero-width characters, accents, full-width
    forms, mixed scripts, 10,000-character inputs, invalid UTF-8), and every code point
    U+0000..U+10FFFF (surrogates excepted) alone between two letters, with both vocabs, cased
    and uncased.
Every differing row is listed. Latency: a student-size export (output/sst2/student_config.json:
2 layers, 384 wide; random weights, which do not change the cost) at max_seq_length 128 on SST-2
dev sentences, batch 1 and 8, in one process: the text signature vs Python tokenization + the
id signature (session.run of each, as a server runs them; no network).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from bert import quiet  # noqa: E402

quiet.configure()  # before TensorFlow: its C++ start-up notices

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bert import classifier, export, features, modeling, text_signature, tokenization  # noqa
from bert.loaded_export import LoadedExport  # noqa: E402
from bert.training import log  # noqa: E402

tf1 = tf.compat.v1
DATA = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")
MINILM_VOCAB = os.path.join(REPO_ROOT, "output", "sst2", "minilm", "vocab.txt")
STUDENT_CONFIG = os.path.join(REPO_ROOT, "output", "sst2", "student_config.json")

ODD_TEXTS = [
    "", " ", "\t\n\r", "\u3000", "\u3000味道\u3000很好\u3000", "\u00a0a\u00a0b", "a\u2028b\u2029c",
    "a\u200bb", "a\u200db\u200cc", "\ufeffhello", "a\u00adb", "x\u0000y\u0001z\u007f\u0085w",
    "a\x0bb\x0cc\x1cd\x1fe", "a\ufffdb", "😀👍🏽👨‍👩‍👧 好吃", "\ue000\uf8ff\U000f0000 private",
    "Café naïve résumé Ångström ÉCOLE", "e\u0301 a\u0300\u0323", "ǅungla ﬁne ẞ İstanbul ΟΔΟΣ ΣΑ",
    "ＦＵＬＬ　ｗｉｄｔｈ，１２３！？", "全角，标点。“引号”【括号】",
    "ｶﾀｶﾅ カタカナ ひらがな 한국어",
    "mixed中文English混合123数字", "Русский текст, Ελληνικά; עברית: العربية", "ไทย ภาษา",
    "\U00020000\U0002a6d6\U0002b734 ext", "⼀⼆ ㊀ ㍻ ㈱", "don't stop—ever… «quote» ¿qué?",
    "$100 ^_^ `tick` ~tilde~ |pipe|", "a" * 199 + " " + "b" * 200 + " " + "c" * 201,
    "é" * 201, "好" * 10000, "word " * 2000, "x" * 10000, "a,b.c!d?e;f:g", "##suffix [UNK] [CLS]",
]


def build_waimai_vocab(path):
  subprocess.run([sys.executable, os.path.join(REPO_ROOT, "scripts", "build_vocab.py"), "--input",
                  os.path.join(DATA, "waimai", "train.csv"), "--output", path], check=True,
                 stdout=subprocess.DEVNULL)
  return path


def read_waimai(split):
  with open(os.path.join(DATA, "waimai", "%s.csv" % split), encoding="utf-8") as f:
    return [line.rstrip("\n").rsplit("&", 1)[0] for line in f if line.strip()]


def read_sst2(split):
  with open(os.path.join(DATA, "sst2", "%s.tsv" % split), encoding="utf-8") as f:
    return [line.rstrip("\n").split("\t")[0] for line in list(f)[1:]]


def random_export(root, config, vocab_file, do_lower_case, max_seq_length, labels=("0", "1")):
  """A randomly initialised classifier exported with both signatures; its version dir."""
  graph = tf.Graph()
  with graph.as_default():
    ids = tf1.placeholder(tf.int32, [None, None])
    classifier.classifier_logits(config, False, ids, ids, ids, len(labels))
    with tf1.Session() as session:
      session.run(tf1.global_variables_initializer())
      checkpoint = tf1.train.Saver().save(session, os.path.join(root, "model.ckpt"))
  return export.export_saved_model(os.path.join(root, "export"), checkpoint, config,
                                   list(labels), vocab_file, do_lower_case, max_seq_length)


class Loaded(LoadedExport):
  """An export loaded as everywhere else (bert.loaded_export), plus the text signature's inner
  token ids, which parity compares."""

  def text_ids(self, texts_a, texts_b=None):
    feed = {"text/text_a:0": [t.encode("utf-8", "surrogatepass") if isinstance(t, str) else t
                              for t in texts_a]}
    if texts_b is not None:
      feed["text/text_b:0"] = [t.encode("utf-8") for t in texts_b]
    names = ["input_ids", "segment_ids", "input_mask", "num_tokens", "truncated"]
    return dict(zip(names, self.session.run(["text/%s:0" % n for n in names], feed)))

  def run_output(self, key, feed, output="probabilities"):
    return self.run(feed, signature=key, outputs=[output])[output]


def python_rows(tokenizer, max_seq_length, texts_a, texts_b=None):
  texts_b = texts_b or [None] * len(texts_a)
  return [features.convert_single_example(features.InputExample("x", a, b or None), {},
                                          max_seq_length, tokenizer)
          for a, b in zip(texts_a, texts_b)]


def compare(loaded, tokenizer, max_seq_length, texts_a, texts_b=None, batch=256, shown=None):
  """Rows whose graph ids differ from FullTokenizer's: [(index, python ids, graph ids)]."""
  differences = []
  for start in range(0, len(texts_a), batch):
    chunk_a = texts_a[start:start + batch]
    chunk_b = texts_b[start:start + batch] if texts_b else None
    graph = loaded.text_ids(chunk_a, chunk_b)
    for row, feature in enumerate(python_rows(tokenizer, max_seq_length, chunk_a, chunk_b)):
      n = int(graph["input_mask"][row].sum())
      got = (graph["input_ids"][row, :n].tolist(), graph["segment_ids"][row, :n].tolist())
      if got != (feature.input_ids, feature.segment_ids) or \
              bool(graph["truncated"][row]) != feature.truncated:
        differences.append((start + row, feature.input_ids, got[0]))
  return differences


def every_codepoint():
  return ["a%sb" % chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]


def parity(root, quick):
  results, listed = [], []
  waimai_vocab = build_waimai_vocab(os.path.join(root, "waimai_vocab.txt"))
  sets = {"waimai": read_waimai("dev"), "sst2": read_sst2("dev")}
  vocabs = {"waimai": waimai_vocab, "sst2": MINILM_VOCAB}
  for name in ("waimai", "sst2"):
    for lower in (True, False):
      config = modeling.BertConfig.from_dict(dict(
          vocab_size=len(tokenization.load_vocab(vocabs[name])), hidden_size=16,
          num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
          max_position_embeddings=512))
      for max_seq_length in (128, 32):
        version_dir = random_export(tempfile.mkdtemp(dir=root), config, vocabs[name], lower,
                                    max_seq_length)
        loaded = Loaded(version_dir)
        tokenizer = tokenization.FullTokenizer(vocabs[name], lower)
        texts = sets[name][:200] if quick else sets[name]
        cases = []
        if lower:
          cases.append(("%s dev" % name, texts, None))
          cases.append(("%s dev pairs (line i, line i+1)" % name, texts[:-1], texts[1:]))
        cases.append(("odd Unicode", ODD_TEXTS, None))
        cases.append(("odd Unicode pairs", ODD_TEXTS, ODD_TEXTS[::-1]))
        if max_seq_length == 128:
          points = every_codepoint()
          cases.append(("every code point", points[::97] if quick else points, None))
        for case, a, b in cases:
          t = time.time()
          diff = compare(loaded, tokenizer, max_seq_length, a, b, batch=4096 if len(a) > 1e5
                         else 256)
          label = "%s; vocab %s, lower %s, max_seq %d" % (case, name, lower, max_seq_length)
          results.append({"case": label, "rows": len(a), "identical": len(a) - len(diff),
                          "seconds": round(time.time() - t, 1)})
          log("parity %s: %d/%d identical" % (label, len(a) - len(diff), len(a)))
          for index, want, got in diff[:50]:
            text = a[index] if b is None else (a[index], b[index])
            listed.append({"case": label, "text": repr(text)[:120], "python": want[:20],
                           "graph": got[:20]})
        loaded.session.close()
  # Invalid UTF-8 (only reachable over gRPC): the graph drops the bad bytes, as FullTokenizer's
  # convert_to_unicode(errors="ignore") does.
  version_dir = random_export(tempfile.mkdtemp(dir=root), config, MINILM_VOCAB, True, 128)
  loaded, tokenizer = Loaded(version_dir), tokenization.FullTokenizer(MINILM_VOCAB, True)
  invalid = [b"ab\xffcd", b"caf\xc3", b"\xe4\xbd", b"ok \x80\x80 fine", b"\xed\xa0\x80x"]
  graph = loaded.text_ids(invalid)
  diff = 0
  for row, raw in enumerate(invalid):
    feature = python_rows(tokenizer, 128, [raw])[0]
    n = int(graph["input_mask"][row].sum())
    if graph["input_ids"][row, :n].tolist() != feature.input_ids:
      diff += 1
      listed.append({"case": "invalid UTF-8", "text": repr(raw), "python": feature.input_ids,
                     "graph": graph["input_ids"][row, :n].tolist()})
  results.append({"case": "invalid UTF-8 bytes; vocab sst2, lower True, max_seq 128",
                  "rows": len(invalid), "identical": len(invalid) - diff, "seconds": 0})
  return results, listed


def latency(root, quick):
  with open(STUDENT_CONFIG) as f:
    config = modeling.BertConfig.from_dict(json.load(f))
  version_dir = random_export(tempfile.mkdtemp(dir=root), config, MINILM_VOCAB, True, 128)
  loaded = Loaded(version_dir)
  tokenizer = tokenization.FullTokenizer(MINILM_VOCAB, True)
  texts = read_sst2("dev")
  rng = np.random.RandomState(0)
  repeats = {1: 40 if quick else 300, 8: 20 if quick else 150}
  results = []
  for batch, count in repeats.items():
    times = {"text": [], "ids": [], "tokenize": []}
    for _ in range(3):  # warm up both paths
      chunk = [texts[i] for i in rng.choice(len(texts), batch)]
      loaded.run_output("text", {"text_a": [t.encode() for t in chunk]})
      loaded.run_output("serving_default", {k: v for k, v in features.pad_features(
          python_rows(tokenizer, 128, chunk)).items()})
    for _ in range(count):  # interleaved, so a busy machine slows both alike
      chunk = [texts[i] for i in rng.choice(len(texts), batch)]
      t0 = time.perf_counter()
      text_out = loaded.run_output("text", {"text_a": [t.encode() for t in chunk]})
      t1 = time.perf_counter()
      ids = features.pad_features(python_rows(tokenizer, 128, chunk))
      t2 = time.perf_counter()
      id_out = loaded.run_output("serving_default", ids)
      t3 = time.perf_counter()
      np.testing.assert_allclose(text_out, id_out, atol=1e-5)
      times["text"].append(t1 - t0)
      times["tokenize"].append(t2 - t1)
      times["ids"].append(t3 - t1)
    row = {"batch": batch, "requests": count}
    for key, values in times.items():
      row[key + "_median_ms"] = round(1000 * float(np.median(values)), 2)
      row[key + "_p90_ms"] = round(1000 * float(np.percentile(values, 90)), 2)
    row["text_vs_ids"] = round(row["text_median_ms"] / row["ids_median_ms"], 3)
    results.append(row)
    log("latency batch %d: %s" % (batch, row))
  loaded.session.close()
  return results


def report(parity_rows, listed, latency_rows):
  lines = ["# The `text` signature: parity with FullTokenizer and latency", "",
           "`python bench/text_signature_bench.py` (%s, TensorFlow %s, tensorflow-text %s)." %
           (time.strftime("%Y-%m-%d"), tf.__version__,
            getattr(text_signature.text_ops(), "__version__", None)), "",
           "| case | rows | identical ids | seconds |", "|---|---|---|---|"]
  lines += ["| %(case)s | %(rows)d | %(identical)d | %(seconds)s |" % r for r in parity_rows]
  lines += ["", "Differences (python ids vs graph ids, first 20 of each):", ""]
  lines += ["- %(case)s: %(text)s: %(python)s vs %(graph)s" % r for r in listed] or ["none"]
  lines += ["", "Latency, student-size export (2 layers, 384 wide, max_seq_length 128), SST-2 dev "
            "sentences, ms per request (median / p90); `ids` = Python tokenization + id "
            "signature:", "",
            "| batch | requests | text signature | ids (tokenize + run) | of which tokenize | "
            "text / ids |", "|---|---|---|---|---|---|"]
  lines += ["| %(batch)d | %(requests)d | %(text_median_ms)s / %(text_p90_ms)s | "
            "%(ids_median_ms)s / %(ids_p90_ms)s | %(tokenize_median_ms)s / %(tokenize_p90_ms)s "
            "| %(text_vs_ids)sx |" % r for r in latency_rows]
  return "\n".join(lines) + "\n"


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--quick", action="store_true", help="200 lines per set, 1/97 of the "
                      "code points, fewer latency requests")
  parser.add_argument("--output", default=os.path.join(REPO_ROOT, "output", "bench",
                                                       "text_signature.md"))
  args = parser.parse_args()
  missing = [path for path in (MINILM_VOCAB, STUDENT_CONFIG) if not os.path.isfile(path)]
  if missing:
    sys.exit("text_signature_bench: %s not found (MiniLM's vocab and the SST-2 student's config,"
             " written by `python bench/sst2_distill.py`): run that first" %
             " and ".join(os.path.relpath(path, REPO_ROOT) for path in missing))
  with tempfile.TemporaryDirectory() as root:
    latency_rows = latency(root, args.quick)
    parity_rows, listed = parity(root, args.quick)
  text = report(parity_rows, listed, latency_rows)
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, "w", encoding="utf-8") as f:
    f.write(text)
  with open(os.path.splitext(args.output)[0] + ".json", "w") as f:
    json.dump({"parity": parity_rows, "differences": listed, "latency": latency_rows}, f,
              indent=1)
  print(text)


if __name__ == "__main__":
  main()
