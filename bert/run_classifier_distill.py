"""Distils a teacher export into a student: run_classifier.py plus the teacher and Hinton's loss.

The teacher SavedModel (an export of run_classifier.py) runs frozen inside the student's graph
on the same batch (--teacher_logits=online), or once over the training set with its logits
stored in the features (--teacher_logits=cached). The student is evaluated and exported at T=1.
"""

import os
import sys

if __package__ in (None, ""):  # run as `python bert/run_classifier_distill.py`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bert import classifier_flags, entry_point

classifier_flags.define_distill_flags()  # on import too: both entry points can share one process

if __name__ == "__main__":
  entry_point.run("distill_run.DistillRun")
