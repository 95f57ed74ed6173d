"""Fine-tunes BERT for classification (the teacher), evaluates, predicts and exports it.

Google's run_classifier.py flags, on TensorFlow 2.x graph mode with our own trainer, plus
--do_distill/--temperature (teacher trained on temperature-scaled logits) and
--do_export/--export_dir (a SavedModel for tensorflow_model_server).
"""

import os
import sys

if __package__ in (None, ""):  # run as `python bert/run_classifier.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

from bert import classifier_flags, quiet, run_config
from bert.errors import run_main

FLAGS = flags.FLAGS
classifier_flags.define_flags()


def main(argv):
  del argv
  quiet.configure(FLAGS.verbose)  # before TensorFlow loads: its notices are filtered
  config = run_config.RunConfig.from_flags(FLAGS)  # flags checked before TensorFlow loads
  from bert import classifier_run  # pylint: disable=import-outside-toplevel
  classifier_run.ClassifierRun(config).run()


if __name__ == "__main__":
  app.run(lambda argv: run_main(main, argv, verbose=FLAGS.verbose or FLAGS.verbosity >= 1))
