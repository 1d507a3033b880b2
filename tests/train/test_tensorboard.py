"""Training writes its traversal grids as TensorBoard images and the quick metrics as scalars."""
import io
import json

import numpy as np
from PIL import Image

from semistylegan.cli import main


def test_tensorboard_has_traversal_images_and_quick_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    # tiny: 16 images per step; a grid and the quick metrics every step, two steps
    assert main(["train", "--preset", "tiny", "--kimg", "0.032", "--grid-kimg", "0.016", "--metrics-kimg", "0.016",
                 "--out", str(run), "--quiet"]) == 0
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    assert "traversal" in tags["images"]
    images = events.Images("traversal")
    assert [e.step for e in images] == [16, 32]  # images seen when each grid was drawn
    last = np.asarray(Image.open(io.BytesIO(images[-1].encoded_image_string)).convert("RGB"))
    on_disk = np.asarray(Image.open(run / "traversal.png").convert("RGB"))
    np.testing.assert_array_equal(last, on_disk)  # the same picture as the run's traversal.png

    # the quick metrics (metrics-train.jsonl) as scalars, at the same steps and values
    lines = [json.loads(x) for x in (run / "metrics-train.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    for name in ("mig", "l2"):
        scalars = events.Scalars(f"metrics/{name}")
        assert [s.step for s in scalars] == [16, 32]
        np.testing.assert_allclose([s.value for s in scalars], [x[name] for x in lines], rtol=1e-6)
    assert "metrics/kimg" not in tags["scalars"]
    assert any(t.startswith("G/") for t in tags["scalars"]) and "img_per_s" in tags["scalars"]
