"""The console progress bar of ``depthstyle train``: speed and time left of this run only."""

import pytest

from depthstyle.cli.train import RunSpeed, _progress_line


def test_a_resumed_run_reports_the_speed_of_its_own_steps():
    ticks = iter([5000.0, 5002.0, 5006.0])
    speed = RunSpeed(clock=lambda: next(ticks))
    assert speed(1001) is None  # resumed at step 1000: the first step only starts the clock
    assert speed(1002) == pytest.approx(0.5)
    assert speed(1004) == pytest.approx(0.5)  # 3 steps in 6 s, not 1004 steps in 6 s
    line = _progress_line(1004, 1604, speed=0.5, losses={"style": 1.25})
    assert line.endswith("1004/1604 0.50 it/s, 20.0 min left style 1.25")
    assert "-- it/s" in _progress_line(1001, 1604, speed=None, losses={})
