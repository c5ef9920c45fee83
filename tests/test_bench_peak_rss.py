"""Each PeakRss block reports its own peak memory growth, not the process's lifetime high-water mark."""

import sys

import pytest
import torch

from motion_core.bench.peak_rss import PeakRss

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")

BLOCK_MIB = 64


def _touch_block() -> None:
    block = torch.ones(BLOCK_MIB * 2**20 // 4)  # float32, every page written
    del block


def test_every_block_that_allocates_reports_its_growth_even_after_an_earlier_bigger_block():
    with PeakRss() as first:
        _touch_block()
        _touch_block()
    with PeakRss() as second:
        _touch_block()
    assert first.mib is not None and second.mib is not None
    assert first.mib >= BLOCK_MIB * 0.9
    assert second.mib >= BLOCK_MIB * 0.9  # getrusage's mark would show ~0 here: it was already that high


def test_a_block_that_allocates_nothing_reports_almost_nothing():
    _touch_block()
    with PeakRss() as idle:
        sum(range(1000))
    assert idle.mib is not None and idle.mib < BLOCK_MIB / 4


def test_where_proc_cannot_be_written_the_figure_is_none(monkeypatch, tmp_path):
    from motion_core.bench import peak_rss

    monkeypatch.setattr(peak_rss, "_CLEAR_REFS", tmp_path / "missing" / "clear_refs")
    with PeakRss() as unmeasured:
        _touch_block()
    assert unmeasured.mib is None
