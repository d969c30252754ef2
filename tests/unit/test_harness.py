"""The test harness itself: subprocesses import this checkout's code and cannot hang a test."""

from __future__ import annotations

from tests.conftest import stages_ran


def test_stages_ran_reads_the_stages_own_log_lines():
    class Result:
        stdout = "Running stage 'split':\n> python -m catsdogs.stages split\n"
        stderr = (
            "12:00:01 INFO split: wrote data/train\n"
            "12:00:02 WARNING catsdogs.sources.http: retry\n"
            "12:00:03 INFO notastage: x\n"
            "I0000 00:00:1796142251.876682    7033 cpu_feature_guard.cc:227] TensorFlow\n"
        )

    assert stages_ran(Result()) == {"split"}
