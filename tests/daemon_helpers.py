"""The tests' daemon helpers, shared with the soak bench: see ``nst_daemon.testing``."""

from __future__ import annotations

from nst_daemon.testing import (
    DaemonProcess,
    dealer,
    environment,
    free_endpoint,
    free_port,
    noise_image,
    pipeline,
    random_net,
    reference_results,
    request_pool,
    rss_kb,
    save_random_style,
    stylize_request,
    wait_until,
)

__all__ = [
    "DaemonProcess",
    "dealer",
    "environment",
    "free_endpoint",
    "free_port",
    "noise_image",
    "pipeline",
    "random_net",
    "reference_results",
    "request_pool",
    "rss_kb",
    "save_random_style",
    "stylize_request",
    "wait_until",
]
