"""``serve-app weights``: docTR's weights for the OCR deployment (the only command that uses
the network; the image build runs it)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import httpx

from serve_app.cli.errors import CliError
from serve_app.ocr.config import DEFAULT_DET_ARCH, DEFAULT_RECO_ARCH
from serve_app.ocr.weights import WeightsError, configured_architectures
from serve_app.settings import get_settings
from serve_app.startup.config import load_config


def cmd_weights_download(args: argparse.Namespace) -> int:
    """Fetch the configured docTR weights (the image build runs this; needs the network)."""
    settings = get_settings()
    if args.det_arch or args.reco_arch:
        pairs = [(args.det_arch or DEFAULT_DET_ARCH, args.reco_arch or DEFAULT_RECO_ARCH)]
    else:
        configs = [
            load_config(Path(p), "127.0.0.1", 8000) for p in args.config or [settings.config]
        ]
        pairs = list(dict.fromkeys(pair for c in configs for pair in configured_architectures(c)))
    weights_dir = Path(args.dir) if args.dir else settings.ocr_weights_path()
    from serve_app.ocr.doctr_runtime import download  # docTR's names for its files (torch)

    try:
        saved = download(weights_dir, pairs, args.mirror or settings.ocr_weights_mirror)
    except (httpx.HTTPError, WeightsError, OSError) as exc:
        raise CliError(f"weights download failed: {exc}") from None
    except ValueError as exc:  # unknown architecture
        raise CliError(str(exc)) from None
    print(f"{len(saved)} weights files in {weights_dir}", flush=True)
    return 0


def add_parser(sub: Any) -> None:
    weights = sub.add_parser("weights", help="docTR weights for the OCR deployment")
    weights_sub = weights.add_subparsers(dest="weights_command", required=True)
    download = weights_sub.add_parser(
        "download",
        help="fetch the configured architectures' weights (the only command that uses the "
        "network; the image build runs it)",
    )
    download.add_argument(
        "--config",
        action="append",
        help="Serve config(s) whose OCR architectures to fetch (default: SERVE_APP_CONFIG); "
        "repeat for several",
    )
    download.add_argument("--det-arch", help="fetch this detection architecture instead")
    download.add_argument("--reco-arch", help="fetch this recognition architecture instead")
    download.add_argument("--dir", help="weights directory (default: SERVE_APP_OCR_WEIGHTS_DIR)")
    download.add_argument(
        "--mirror",
        help="base URL serving docTR's file names (default: SERVE_APP_OCR_WEIGHTS_MIRROR)",
    )
    download.set_defaults(func=cmd_weights_download)
