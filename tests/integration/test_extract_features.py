"""extract_features: shapes, row/label/file alignment, streaming to disk, the weights file, bad input.

The integration tier's share (stages in subprocesses, dvc, training for seconds); the fast
tests, and what the module covers, are in tests/unit/test_extract_features.py.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, run
from tests.unit.test_extract_features import make_project

BOUNDED_MEMORY_CHILD = """
import re, sys
import numpy as np
from catsdogs.data import features

def peak_mib():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024

class Constant:  # stands in for VGG16: 4 x 4 x 512 float32 rows (32 KiB each)
    output_shape = (None, 4, 4, 512)
    def predict_on_batch(self, batch):
        return np.full((len(batch), 4, 4, 512), 0.5, np.float32)

rows = 8000  # a 250 MiB features file
batches = (np.zeros((32, 1), np.float32) for _ in range(rows // 32))
before = peak_mib()
features.write_split(Constant(), batches, rows, sys.argv[1], "train")
print(peak_mib() - before)
"""



@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc")
def test_writing_features_keeps_memory_bounded(tmp_path):
    """A 250 MiB feature file is written with far less than 250 MiB of extra peak resident memory."""
    result = run([sys.executable, "-c", BOUNDED_MEMORY_CHILD, str(tmp_path)], ROOT)
    growth_mib = float(result.stdout.strip().splitlines()[-1])
    written = np.load(tmp_path / "train_features.npy", mmap_mode="r")
    assert written.shape == (8000, 4, 4, 512) and float(written[-1, -1, -1, -1]) == 0.5
    # Re-mapping every 64 MiB (features.REMAP_BYTES) bounds the mapped, resident part;
    # holding the rows in RAM, or one map for the whole file, would add >= 250 MiB.
    assert growth_mib < 128


@pytest.mark.slow
def test_stage_reports_a_missing_weights_file_in_one_line(tmp_path):
    project = make_project(tmp_path / "project")
    (project / "models/vgg16_notop.weights.h5").unlink()  # the weights stage has not run, nor dvc pull
    result = run([sys.executable, "-m", "catsdogs.stages", "extract_features"], project, check=False)
    assert result.returncode == 1
    assert "VGG16 weights file not found: models/vgg16_notop.weights.h5" in result.stderr
    assert "dvc repro weights" in result.stderr and "dvc pull" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "features").exists()


@pytest.mark.slow
def test_the_estimate_is_a_line_of_its_own_beside_the_progress_bar(tmp_path):
    """The estimate is logged while the bar is drawn: it goes above the bar (tqdm's logging redirect clears
    the bar's line first), not onto the end of the bar's text."""
    project = make_project(tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["common"]["batch_size"] = 1  # 14 images: the estimate after 4, while the train bar is drawn
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run([sys.executable, "-m", "catsdogs.stages", "extract_features"], project)
    [line] = [line for line in result.stderr.split("\n") if "images in, about" in line]
    drawn = line.split("\r")[-1]  # what a terminal shows on that line: the text after the last carriage return
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO extract_features: features: 4 of 14 images in, about .+ left \(.+\)",
                        drawn), repr(line)
