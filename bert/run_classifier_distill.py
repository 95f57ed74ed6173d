"""Distils a teacher export into a student: run_classifier.py plus the teacher and Hinton's loss.

The teacher SavedModel (an export of run_classifier.py) runs frozen inside the student's graph
on the same batch (--teacher_logits=online), or once over the training set with its logits
stored in the features (--teacher_logits=cached). The student is evaluated and exported at T=1.
"""

import os
import sys

if __package__ in (None, ""):  # run as `python bert/run_classifier_distill.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

from bert import classifier_flags, quiet, run_config
from bert.errors import run_main

FLAGS = flags.FLAGS
classifier_flags.define_distill_flags()


def main(argv):
  del argv
  quiet.configure(FLAGS.verbose)  # before TensorFlow loads: its notices are filtered
  config = run_config.RunConfig.from_flags(FLAGS)  # flags checked before TensorFlow loads
  from bert import distill_run  # pylint: disable=import-outside-toplevel
  distill_run.DistillRun(config).run()


if __name__ == "__main__":
  app.run(lambda argv: run_main(main, argv, verbose=FLAGS.verbose or FLAGS.verbosity >= 1))
