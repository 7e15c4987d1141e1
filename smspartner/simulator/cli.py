"""``python -m smspartner.simulator --port 8765`` (see ``--help``): the simulator in the
foreground until SIGTERM or Ctrl-C. Every fault is a flag, e.g. ``--status-lag-s 30
--hide-scheduled --slow-send-s 5 --slow-send-rate 0.1 --garbage-rate 0.1 --garbage-kinds
html200,truncated --garbage-before-rate 0.05``.

The first line on stdout says where it listens (``start_process`` waits for it).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from smspartner.simulator.faults import GARBAGE_KINDS, FaultConfig
from smspartner.simulator.server import SimulatorServer
from smspartner.simulator.state import DEFAULT_API_KEY, SimulatorState

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m smspartner.simulator", description="Local SMS Partner API simulator."
    )
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"accepted API key (repeatable; default {DEFAULT_API_KEY!r})",
    )
    parser.add_argument("--credits", type=float, default=100.0, help="balance in EUR")
    parser.add_argument("--cost-per-sms", type=float, default=0.045)
    parser.add_argument("--stop", action="append", default=[], metavar="NUMBER")
    parser.add_argument("--delivery-delay-s", type=float, default=2.0)
    parser.add_argument("--status-page-size", type=int, default=1000)
    _fault_options(parser)
    return parser


def _fault_options(parser: argparse.ArgumentParser) -> None:
    defaults = FaultConfig()
    parser.add_argument("--latency-ms", type=float, default=defaults.latency_ms)
    parser.add_argument("--error-5xx-rate", type=float, default=defaults.error_5xx_rate)
    parser.add_argument("--rate-limit-rate", type=float, default=defaults.rate_limit_rate)
    parser.add_argument("--retry-after", type=float, default=defaults.retry_after)
    parser.add_argument("--reset-rate", type=float, default=defaults.reset_rate)
    parser.add_argument(
        "--drop-after-accept-rate", type=float, default=defaults.drop_after_accept_rate
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--status-lag-s", type=float, default=defaults.status_lag_s)
    parser.add_argument("--hide-scheduled", action="store_true")
    parser.add_argument("--slow-send-s", type=float, default=defaults.slow_send_s)
    parser.add_argument("--slow-send-rate", type=float, default=defaults.slow_send_rate)
    parser.add_argument("--garbage-rate", type=float, default=defaults.garbage_rate)
    parser.add_argument(
        "--garbage-kinds",
        type=_kinds,
        default=defaults.garbage_kinds,
        metavar="KIND,...",
        help=f"comma list of {','.join(GARBAGE_KINDS)} (default all)",
    )
    parser.add_argument("--garbage-before-rate", type=float, default=defaults.garbage_before_rate)


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    try:
        FaultConfig(garbage_kinds=kinds)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return kinds


def _faults(args: argparse.Namespace) -> FaultConfig:
    return FaultConfig(
        latency_ms=args.latency_ms,
        error_5xx_rate=args.error_5xx_rate,
        rate_limit_rate=args.rate_limit_rate,
        retry_after=args.retry_after,
        reset_rate=args.reset_rate,
        drop_after_accept_rate=args.drop_after_accept_rate,
        seed=args.seed,
        status_lag_s=args.status_lag_s,
        hide_scheduled=args.hide_scheduled,
        slow_send_s=args.slow_send_s,
        slow_send_rate=args.slow_send_rate,
        garbage_rate=args.garbage_rate,
        garbage_kinds=args.garbage_kinds,
        garbage_before_rate=args.garbage_before_rate,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    state = SimulatorState(
        api_keys=args.api_keys or (DEFAULT_API_KEY,),
        credits=args.credits,
        cost_per_sms=args.cost_per_sms,
        stop_list=args.stop,
        faults=_faults(args),
        delivery_delay_s=args.delivery_delay_s,
        status_page_size=args.status_page_size,
    )
    stopping = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with SimulatorServer(state, host=args.host, port=args.port) as server:
        print(f"SMS Partner simulator listening on {server.url}", flush=True)
        if not args.api_keys:
            print(f"Using the default API key {DEFAULT_API_KEY!r}", file=sys.stderr, flush=True)
        while not stopping.wait(0.5):
            pass
    return 0
