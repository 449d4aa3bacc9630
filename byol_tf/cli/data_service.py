"""Starts a tf.data service dispatcher or worker for `data.service_address`.

  # On the dispatcher machine (one per cluster):
  byol-data-service --role=dispatcher --port=5050 [--work_dir=/shared/dispatcher]
  # On each CPU machine that should run decode and augmentation:
  byol-data-service --role=worker --dispatcher=dispatcher-host:5050 --port=5051 \
      --worker_address=$(hostname):5051
  # Then train with:  --config.data.service_address=grpc://dispatcher-host:5050

The process serves until it is stopped (Ctrl-C or SIGTERM). Workers need the same TensorFlow
version as the trainers and must see the training data at the same paths.
"""

import signal
import threading

from absl import app, flags

from byol_tf import cli
from byol_tf.data import service

_ROLE = flags.DEFINE_enum("role", None, ["dispatcher", "worker"], "What to start.")
_PORT = flags.DEFINE_integer("port", 0, "Port to listen on (0: any free port).")
_DISPATCHER = flags.DEFINE_string("dispatcher", "", "Worker: the dispatcher's host:port.")
_WORKER_ADDRESS = flags.DEFINE_string(
    "worker_address", "", "Worker: host:port the trainers use to reach it (default localhost)."
)
_WORK_DIR = flags.DEFINE_string(
    "work_dir", "", "Dispatcher: journal its state here to recover after a restart."
)
flags.mark_flag_as_required("role")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _ROLE.value == "dispatcher":
        server = service.start_dispatcher(_PORT.value, _WORK_DIR.value or None)
        print(f"tf.data service dispatcher at {server.target}", flush=True)
    else:
        if not _DISPATCHER.value:
            raise app.UsageError("--role=worker needs --dispatcher=host:port.")
        server = service.start_worker(_DISPATCHER.value, _PORT.value, _WORKER_ADDRESS.value or None)
        port = server._address.rsplit(":", 1)[1]  # noqa: SLF001  (no public accessor)
        print(f"tf.data service worker on port {port}, serving {_DISPATCHER.value}", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    server.stop()


def run() -> None:
    """The `byol-data-service` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
