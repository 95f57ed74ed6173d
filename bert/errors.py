"""One-line errors for bad input, and the entry points' main wrapper that prints them."""

import sys
import traceback


class UsageError(ValueError):
  """Bad input from the user: a flag, a file or a line.

  Its message names which and what was expected.
  """


class TrainingError(RuntimeError):
  """A run that cannot go on (non-finite loss, unwritable checkpoint); what is on disk is kept."""


# tf.errors raised by the file system (a missing, unreadable or full path), recognised by name so
# that this module needs no TensorFlow.
_TF_IO_ERRORS = frozenset(["NotFoundError", "PermissionDeniedError", "FailedPreconditionError",
                           "AlreadyExistsError", "DataLossError", "ResourceExhaustedError"])


def is_input_error(e):
  """Whether `e` is about the input or the environment (one-line error) rather than a bug."""
  if isinstance(e, (UsageError, TrainingError, ValueError, OSError)):
    return True
  return type(e).__name__ in _TF_IO_ERRORS and type(e).__module__.startswith("tensorflow")


def one_line_message(e):
  """The exception's message on one line.

  A tf.errors.OpError from session.run reads "Graph execution error: Detected at node 'x'
  defined at (most recent call last): <Python stack> Node: 'x' <cause> [[{{node x}}]]": only
  the cause is kept (the stack is in --verbosity=1's traceback).
  """
  text = str(getattr(e, "message", None) or e)  # tf.errors' str() may add the op's stack too
  if text.startswith("Graph execution error:"):
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Node: ")]
    if starts:
      lines = lines[starts[-1] + 1:]
    text = "\n".join(line for line in lines if not line.strip().startswith("[[{{node"))
  return " ".join(text.split()) or type(e).__name__


def run_main(main, argv, verbose=False):
  """Runs main(argv); an input error (is_input_error) exits 1 with its message on one line.

  A traceback is printed only when `verbose` (the entry points pass --verbosity ≥ 1).
  """
  try:
    return main(argv)
  except KeyboardInterrupt:
    print("error: interrupted", file=sys.stderr)
    sys.exit(130)
  except Exception as e:  # pylint: disable=broad-except
    if not is_input_error(e):
      raise  # a bug: its traceback is the useful report
    if verbose:
      traceback.print_exc()
    message = one_line_message(e)
    sys.stdout.flush()
    print("error: %s" % message, file=sys.stderr, flush=True)
    sys.exit(1)
