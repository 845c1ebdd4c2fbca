"""release_arrow_pages drops the scanned pages of memory-mapped Arrow files from RSS and leaves the data intact."""

import sys

import datasets
import numpy as np
import pyarrow.compute as pc
import pytest

from albert_recipes.mapped_pages import release_arrow_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RssFile is read from /proc (Linux)")


def _rss_file_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("RssFile:"))
    return int(line.split()[1]) / 1024  # kB -> MB


def test_scanned_arrow_pages_leave_rss_and_data_stays_readable(tmp_path):
    values = np.arange(4_000_000, dtype=np.int64)  # 32 MB of Arrow data
    datasets.Dataset.from_dict({"x": values}).save_to_disk(tmp_path / "ds")
    mapped = datasets.load_from_disk(str(tmp_path / "ds"))  # memory-mapped, as every cached `datasets` file
    column = mapped.data.table.column("x")

    release_arrow_pages()
    before = _rss_file_mb()
    total = pc.sum(column).as_py()  # reads every page of the mapping, copies nothing
    scanned = _rss_file_mb()
    assert total == int(values.sum())
    assert scanned - before > 25, (before, scanned)  # the scan made ~32 MB resident in this process

    assert release_arrow_pages() >= 32e6  # the mapping was advised
    after = _rss_file_mb()
    assert scanned - after > 25, (scanned, after)  # ... and its pages left RSS
    assert pc.sum(column).as_py() == total  # read back from the page cache, unchanged
    assert mapped[123_456]["x"] == 123_456
