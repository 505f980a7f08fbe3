"""`import epick.runtime` and picking with an ONNX model never import torch."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from _models import blob_micrograph, make_onnx


def test_import_and_pick_without_torch(tmp_path):
    model = make_onnx(tmp_path / "m.onnx", target_width=256)
    from epick.runtime.io.micrograph import write_mrc

    write_mrc(tmp_path / "a.mrc", blob_micrograph(seed=0)[0])
    code = f"""
import sys
import epick.runtime
assert 'torch' not in sys.modules, 'import epick.runtime imported torch'
from epick.runtime import Picker
from epick.runtime.cli import main
picks = Picker({str(model)!r}).pick({str(tmp_path / 'a.mrc')!r})
assert len(picks) > 0
rc = main(['pick', {str(tmp_path / 'a.mrc')!r}, '--model', {str(model)!r}, '--out', {str(tmp_path / 'out')!r},
           '--quiet', '--format', 'star,box,csv,cs', '--preview', '1'])
assert rc == 0, rc
bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))
print('TORCH_MODULES', bad)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "TORCH_MODULES []" in out.stdout, out.stdout
    assert (tmp_path / "out" / "a_autopick.star").is_file()
    assert np.load(tmp_path / "out" / "a.cs", allow_pickle=False).size > 0
