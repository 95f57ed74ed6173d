#!/usr/bin/env python3
"""Convert a Hugging Face BERT directory (safetensors) into a Google BERT checkpoint directory.

  python scripts/convert_hf_checkpoint.py --hf_dir HF_DIR --output_dir OUT [--overwrite]

HF_DIR needs config.json, model.safetensors (or model.safetensors.index.json and its shards)
and vocab.txt. OUT receives bert_config.json, vocab.txt and bert_model.ckpt.{index,data-*},
which BertModel loads with tf.compat.v1.train.init_from_checkpoint(OUT/bert_model.ckpt,
{"bert/": "bert/"}). Task heads in the HF file are skipped and listed.

Bad input prints one line on stderr and exits with status 1.
"""

import argparse
import logging
import os
import sys
import time

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO_ROOT not in sys.path:
  sys.path.insert(0, _REPO_ROOT)

if __name__ == "__main__":  # before TensorFlow loads (BERT_VERBOSE=1 keeps its notices)
  from bert import quiet  # noqa: E402
  quiet.configure()
from bert import hf_convert  # pylint: disable=wrong-import-position

_PROG = "convert_hf_checkpoint"


class _ArgumentParser(argparse.ArgumentParser):
  """Usage errors are bad input too: one line, exit status 1."""

  def error(self, message):
    sys.stderr.write("%s: error: %s\n" % (_PROG, message))
    sys.exit(1)


def _parse_args(argv):
  parser = _ArgumentParser(prog=_PROG, description=__doc__.split("\n\n")[0])
  parser.add_argument("--hf_dir",
                      required=True,
                      help="Hugging Face BERT directory (config.json, model.safetensors, "
                      "vocab.txt).")
  parser.add_argument("--output_dir",
                      required=True,
                      help="Directory for bert_config.json, vocab.txt, bert_model.ckpt.*.")
  parser.add_argument("--overwrite",
                      action="store_true",
                      help="Replace an existing checkpoint, bert_config.json or vocab.txt in "
                      "--output_dir.")
  return parser.parse_args(argv)


def main(argv=None):
  args = _parse_args(sys.argv[1:] if argv is None else argv)
  # The library logs its warnings; here they are printed once, below, with the summary.
  logging.getLogger(hf_convert.__name__).setLevel(logging.ERROR)
  start = time.time()
  try:
    result = hf_convert.convert_hf_directory(args.hf_dir, args.output_dir, overwrite=args.overwrite)
  except (ValueError, OSError) as e:
    message = " ".join(str(e).split())
    sys.stderr.write("%s: error: %s\n" % (_PROG, message))
    return 1
  elapsed = time.time() - start

  print("Converted %s -> %s" % (args.hf_dir, args.output_dir))
  for path in result.files:
    print("  wrote %s" % path)
  print("variables: %d (%d parameters)" % (result.num_variables, result.num_parameters))
  if result.skipped:
    print("skipped tensors: %d" % len(result.skipped))
    for name, reason in result.skipped:
      print("  %s: %s" % (name, reason))
  else:
    print("skipped tensors: 0")
  for message in result.warnings:
    sys.stderr.write("%s: warning: %s\n" % (_PROG, message))
  print("init checkpoint: %s" % result.checkpoint)
  print("time: %.2f s" % elapsed)
  return 0


if __name__ == "__main__":
  sys.exit(main())
