"""Test-only: with this folder on PYTHONPATH and TFLOW_TEST_SLEEP_SCALE set, `time.sleep(s)` sleeps
`max(s * scale, min(s, 1))` seconds, so a seed flow's long random sleeps (1-20 s) run in 1-4 s
while every sleep of a second or more still lasts at least one second (parallel tasks still overlap).
The flow itself is unchanged; only the Python it runs under is."""

import os
import time

_scale = os.environ.get("TFLOW_TEST_SLEEP_SCALE")
if _scale:
    _factor = float(_scale)
    _sleep = time.sleep

    def _scaled_sleep(seconds: float) -> None:
        _sleep(max(seconds * _factor, min(seconds, 1.0)))

    time.sleep = _scaled_sleep
