"""Start the recommendation service on the model the pipeline made (run ``dvc repro`` first).

    python src/serve.py [--host HOST] [--port PORT] [--workers N]   # serve.* in params.yaml; flags override
"""

import argparse
import logging

import uvicorn

from sessionrec import paths
from sessionrec.cli import run
from sessionrec.params import load_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host")
    ap.add_argument("--port", type=int)
    ap.add_argument("--workers", type=int, help="uvicorn worker processes (serve.workers)")
    args = ap.parse_args()
    sp = load_params(paths.PARAMS).serve
    if not paths.MODEL.exists():
        raise FileNotFoundError(f"{paths.MODEL}: no trained model (run `dvc repro` first)")
    host, port, workers = args.host or sp.host, args.port or sp.port, args.workers or sp.workers
    if workers < 1:
        raise ValueError(f"--workers: {workers} is out of range; allowed [1, 64]")
    logging.info("serve: %s on http://%s:%d (%d worker(s))", paths.MODEL, host, port, workers)
    uvicorn.run("sessionrec.serving.app:from_pipeline", factory=True, host=host, port=port, workers=workers,
                log_level="info")


if __name__ == "__main__":
    run(main)
