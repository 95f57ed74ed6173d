#!/usr/bin/env bash
# Serves the student's SavedModel exports with tensorflow_model_server (REST and gRPC).
#
#   bash scripts/serve.sh [--dry-run] [EXPORT_BASE_DIR] [-- extra tensorflow_model_server flags]
#
# EXPORT_BASE_DIR (default ${EXPORT_DIR:-export/student}) holds numeric version directories
# (<unix time>/saved_model.pb, as bert/export.py writes them); the server loads the newest and
# picks up a newer one when it appears. A relative path is taken from the current directory,
# else from the repository root.
#
# Environment:
#   MODEL_NAME (student)  REST_PORT (8501)  GRPC_PORT (8500)
#   SERVING_OUTPUT_DIR (<repo>/output/serving): where the generated config files go
#   TF_SERVING_BIN (tensorflow_model_server): the server binary
#   ENABLE_BATCHING=1: server-side batching, with MAX_BATCH_SIZE (32), BATCH_TIMEOUT_MICROS
#     (5000), NUM_BATCH_THREADS (number of CPUs), MAX_ENQUEUED_BATCHES (100); variable-length
#     inputs are padded (pad_variable_length_inputs: true), as the client pads each request
#     only to its own longest text.
#   INTRA_OP_THREADS: the server's --tensorflow_intra_op_parallelism; default: what the export
#     records (bert_export.json "serving_intra_op_threads": 1 for a small model exported for a
#     2-core CPU, each op on one thread and --tensorflow_inter_op_parallelism the number of CPUs,
#     as its row blocks expect; 0: TensorFlow's default; an export built for another CPU count
#     than this machine's gets the default, with a warning). Server flags after -- take precedence.
#   XLA=1: compile the served graph with XLA (CPU auto-clustering: TF_XLA_FLAGS gets
#     "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit", the server --xla_cpu_compilation_enabled=true;
#     bert/export_layout.py XLA_SERVING_FLAGS). On the 2-core CPU measured it is no faster than
#     the plain graph at most shapes (README, Performance): time it on your server first. Each
#     new input shape (batch size x padded length) is compiled once, on one of its first requests.
#
# --dry-run writes the config files and prints them and the command without starting anything.
# Query the server with: python scripts/predict_client.py --server http://localhost:8501 "text"
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROG=serve.sh

die() {
  echo "$PROG: error: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

DRY_RUN=0
BASE_ARG=""
EXTRA_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run|--dry_run) DRY_RUN=1 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA_ARGS=("$@"); break ;;
    -*) die "unknown option $1 (expected --dry-run, --help, EXPORT_BASE_DIR, -- server flags)" ;;
    *)
      [ -z "$BASE_ARG" ] || die "more than one EXPORT_BASE_DIR given ($BASE_ARG, $1)"
      BASE_ARG=$1 ;;
  esac
  shift
done

BASE_ARG=${BASE_ARG:-${EXPORT_DIR:-export/student}}
MODEL_NAME=${MODEL_NAME:-student}
REST_PORT=${REST_PORT:-8501}
GRPC_PORT=${GRPC_PORT:-8500}
SERVING_OUTPUT_DIR=${SERVING_OUTPUT_DIR:-$REPO_ROOT/output/serving}
TF_SERVING_BIN=${TF_SERVING_BIN:-tensorflow_model_server}
ENABLE_BATCHING=${ENABLE_BATCHING:-0}
XLA=${XLA:-0}
XLA_SERVING_FLAGS="--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"

is_uint() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }
for var in REST_PORT GRPC_PORT; do
  is_uint "${!var}" || die "$var=${!var}: expected a port number"
done
[ "$REST_PORT" != "$GRPC_PORT" ] || die "REST_PORT and GRPC_PORT are both $REST_PORT"
case "$MODEL_NAME" in
  ''|*[!A-Za-z0-9_.-]*) die "MODEL_NAME=$MODEL_NAME: use letters, digits, '_', '-', '.' only" ;;
esac

# -- the export: an existing base dir with a numeric version holding saved_model.pb ------------

BASE_DIR=$BASE_ARG
if [ ! -d "$BASE_DIR" ] && [ "${BASE_DIR#/}" = "$BASE_DIR" ] && [ -d "$REPO_ROOT/$BASE_DIR" ]; then
  BASE_DIR=$REPO_ROOT/$BASE_DIR
fi
[ -d "$BASE_DIR" ] || die "export base dir $BASE_ARG not found (export the student first, e.g. bash scripts/distill.sh, or give its --export_dir)"
BASE_DIR=$(cd "$BASE_DIR" && pwd)
if [ -f "$BASE_DIR/saved_model.pb" ] && is_uint "$(basename "$BASE_DIR")"; then
  die "$BASE_ARG is a version directory; give its parent, the export base dir: $(dirname "$BASE_DIR")"
fi
LATEST=""
for dir in "$BASE_DIR"/*/; do
  version=$(basename "$dir")
  if is_uint "$version" && [ -f "$BASE_DIR/$version/saved_model.pb" ]; then
    if [ -z "$LATEST" ] || [ "$((10#$version))" -gt "$((10#$LATEST))" ]; then LATEST=$version; fi
  fi
done
[ -n "$LATEST" ] || die "$BASE_DIR has no numeric version directory with a saved_model.pb (expected $BASE_DIR/<version>/saved_model.pb, as written by --do_export)"

# -- generated config files ---------------------------------------------------------------------

mkdir -p "$SERVING_OUTPUT_DIR" || die "cannot create $SERVING_OUTPUT_DIR"
SERVING_OUTPUT_DIR=$(cd "$SERVING_OUTPUT_DIR" && pwd)
CONFIG_FILE=$SERVING_OUTPUT_DIR/$MODEL_NAME.models.config
BATCHING_FILE=$SERVING_OUTPUT_DIR/$MODEL_NAME.batching.config

proto_string() {  # a protobuf text-format string literal
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}

cat > "$CONFIG_FILE" <<EOF
model_config_list {
  config {
    name: $(proto_string "$MODEL_NAME")
    base_path: $(proto_string "$BASE_DIR")
    model_platform: "tensorflow"
    model_version_policy {
      latest {
        num_versions: 1
      }
    }
  }
}
EOF

COMMAND=("$TF_SERVING_BIN" "--port=$GRPC_PORT" "--rest_api_port=$REST_PORT"
         "--model_config_file=$CONFIG_FILE")
BATCHING=0
if [ "$ENABLE_BATCHING" = "1" ] || [ "$ENABLE_BATCHING" = "true" ]; then
  BATCHING=1
  MAX_BATCH_SIZE=${MAX_BATCH_SIZE:-32}
  BATCH_TIMEOUT_MICROS=${BATCH_TIMEOUT_MICROS:-5000}
  NUM_BATCH_THREADS=${NUM_BATCH_THREADS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 4)}
  MAX_ENQUEUED_BATCHES=${MAX_ENQUEUED_BATCHES:-100}
  for var in MAX_BATCH_SIZE BATCH_TIMEOUT_MICROS NUM_BATCH_THREADS MAX_ENQUEUED_BATCHES; do
    is_uint "${!var}" || die "$var=${!var}: expected a non-negative integer"
  done
  cat > "$BATCHING_FILE" <<EOF
max_batch_size { value: $MAX_BATCH_SIZE }
batch_timeout_micros { value: $BATCH_TIMEOUT_MICROS }
max_enqueued_batches { value: $MAX_ENQUEUED_BATCHES }
num_batch_threads { value: $NUM_BATCH_THREADS }
pad_variable_length_inputs: true
EOF
  COMMAND+=("--enable_batching=true" "--batching_parameters_file=$BATCHING_FILE")
elif [ "$ENABLE_BATCHING" != "0" ] && [ "$ENABLE_BATCHING" != "false" ]; then
  die "ENABLE_BATCHING=$ENABLE_BATCHING: expected 1 or 0"
fi
USE_XLA=0
case "$XLA" in
  1|true)
    USE_XLA=1
    COMMAND+=("--xla_cpu_compilation_enabled=true")
    export TF_XLA_FLAGS="$XLA_SERVING_FLAGS${TF_XLA_FLAGS:+ $TF_XLA_FLAGS}" ;;
  0|false) ;;
  *) die "XLA=$XLA: expected 1 or 0" ;;
esac
# Threads per op, as the export was built for (bert/serving_cpu.py), unless set here or by flags.
EXPORT_INFO=$BASE_DIR/$LATEST/assets.extra/bert_export.json
CPUS=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)
recorded() {  # a number the export records under key $1 (empty if none; older exports lack them)
  [ -f "$EXPORT_INFO" ] || return 0
  sed -n "s/.*\"$1\": *\([0-9][0-9]*\).*/\1/p" "$EXPORT_INFO" | head -n 1
}
if [ -z "${INTRA_OP_THREADS:-}" ]; then
  INTRA_OP_THREADS=$(recorded serving_intra_op_threads)
  INTRA_OP_THREADS=${INTRA_OP_THREADS:-0}
  BUILT_FOR=$(recorded cores)
  if [ "$INTRA_OP_THREADS" != "0" ] && [ -n "$BUILT_FOR" ] && [ "$BUILT_FOR" != "$CPUS" ]; then
    echo "$PROG: warning: the export was built for a $BUILT_FOR-CPU server with one thread per op, this machine has $CPUS CPUs: serving with TensorFlow's default threads (export again here, or with --serving_cores=$CPUS, for the graph meant for this machine; INTRA_OP_THREADS=1 keeps one thread per op)" >&2
    INTRA_OP_THREADS=0
  fi
fi
is_uint "$INTRA_OP_THREADS" || die "INTRA_OP_THREADS=$INTRA_OP_THREADS: expected a non-negative integer"
case " ${EXTRA_ARGS[*]+"${EXTRA_ARGS[*]}"} " in
  *parallelism*|*--platform_config_file*) INTRA_OP_THREADS=0 ;;  # the caller's own threads
esac
THREAD_FLAGS=""
if [ "$INTRA_OP_THREADS" != "0" ]; then
  THREAD_FLAGS="--tensorflow_intra_op_parallelism=$INTRA_OP_THREADS"
  THREAD_FLAGS+=" --tensorflow_inter_op_parallelism=$CPUS"
  COMMAND+=($THREAD_FLAGS)
fi
COMMAND+=(${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"})

# The raw-text signature "text" (bert/text_signature.py), when the export has one.
raw_text_example() {
  if grep -q '"min_model_server_version"' "$BASE_DIR/$LATEST/assets.extra/bert_export.json" \
      2>/dev/null; then
    echo "# raw text (signature \"text\"; needs tensorflow_model_server >= 2.2):"
    echo "curl -s -X POST http://localhost:$REST_PORT/v1/models/$MODEL_NAME:predict -d '{\"signature_name\": \"text\", \"instances\": [{\"text_a\": \"味道很好\"}, {\"text_a\": \"送餐太慢了\"}]}'"
  fi
}

if [ "$DRY_RUN" = "1" ]; then
  echo "# model config: $CONFIG_FILE"
  cat "$CONFIG_FILE"
  if [ "$BATCHING" = "1" ]; then
    echo "# batching parameters: $BATCHING_FILE"
    cat "$BATCHING_FILE"
  fi
  echo "# serving version $LATEST of $BASE_DIR as model \"$MODEL_NAME\""
  if [ "$USE_XLA" = "1" ]; then
    echo "# environment: TF_XLA_FLAGS=$TF_XLA_FLAGS"
  fi
  echo "# command:"
  printf '%q ' "${COMMAND[@]}" | sed 's/ $//'
  echo
  raw_text_example
  if ! command -v "$TF_SERVING_BIN" >/dev/null 2>&1; then
    echo "# note: $TF_SERVING_BIN is not installed here (run without --dry-run for how to install it)"
  fi
  exit 0
fi

if ! command -v "$TF_SERVING_BIN" >/dev/null 2>&1; then
  cat >&2 <<EOF
$PROG: error: $TF_SERVING_BIN not found. It is not on PyPI or in Debian/Ubuntu; install one of:
  * the tensorflow-model-server apt package from TensorFlow Serving's apt repository:
      echo "deb [arch=amd64] http://storage.googleapis.com/tensorflow-serving-apt stable tensorflow-model-server tensorflow-model-server-universal" | sudo tee /etc/apt/sources.list.d/tensorflow-serving.list
      curl https://storage.googleapis.com/tensorflow-serving-apt/tensorflow-serving.release.pub.gpg | sudo apt-key add -
      sudo apt-get update && sudo apt-get install tensorflow-model-server
    (or set TF_SERVING_BIN to the binary), then run this script again;
  * or the Docker image tensorflow/serving, with the same ports and model name:
      docker run -p $REST_PORT:8501 -p $GRPC_PORT:8500 -v $(printf %q "$BASE_DIR"):/models/$MODEL_NAME -e MODEL_NAME=$MODEL_NAME tensorflow/serving${THREAD_FLAGS:+ $THREAD_FLAGS}
EOF
  exit 1
fi

raw_text_example >&2
echo "$PROG: serving version $LATEST of $BASE_DIR as \"$MODEL_NAME\": REST http://localhost:$REST_PORT/v1/models/$MODEL_NAME, gRPC localhost:$GRPC_PORT" >&2
echo "$PROG: config $CONFIG_FILE" >&2
[ -z "${TF_XLA_FLAGS:-}" ] || echo "$PROG: TF_XLA_FLAGS=$TF_XLA_FLAGS" >&2
exec "${COMMAND[@]}"
