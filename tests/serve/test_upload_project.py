"""The viewer's upload with projection (`serve --project`): fitted codes, renders keep the fitted noise."""
import base64
import io

import numpy as np
from PIL import Image

from semistylegan.editing import load_editor
from semistylegan.projection import render_images
from semistylegan.serve import ViewerApp
from test_editing import tiny_run  # noqa: E402  (tests/ is on sys.path under pytest)


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img[0]).save(buf, format="PNG")
    return buf.getvalue()


def _decoded(data_url: str) -> np.ndarray:
    img = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    return np.asarray(img)


def test_upload_projects_and_renders_keep_the_fitted_noise(tmp_path_factory):
    from semistylegan.data import make_dataset

    editor = load_editor(tiny_run(tmp_path_factory, "semi", steps=100))
    image = make_dataset("dsprites", 16).images(np.asarray([123457]))
    plain, projected = ViewerApp(editor), ViewerApp(editor, project_steps=20)
    up_plain, up_proj = plain.upload(_png(image[0])), projected.upload(_png(image[0]))
    fit = editor.project(image, 20)
    assert up_plain["codes"] == [round(float(v), 4) for v in editor.encode(image)[0]]
    assert up_proj["codes"] == [round(float(v), 4) for v in fit.codes[0]]
    # a render of the uploaded image's codes is the projection's reconstruction (the fitted noise)
    codes = fit.codes[0].tolist()
    got = projected.render({"codes": codes, "image_id": up_proj["image_id"]})
    scale = 128 // editor.resolution
    expect = np.kron(render_images(editor, fit.codes, fit.noise)[0, 0], np.ones((scale, scale), dtype=np.uint8))
    assert np.array_equal(_decoded(got["image"]), expect)
    # without an image_id (or without --project) the seed's z is used, as before
    seeded = np.kron(editor.generate(fit.codes, seed=0)[0, 0], np.ones((scale, scale), dtype=np.uint8))
    assert np.array_equal(_decoded(projected.render({"codes": codes})["image"]), seeded)
    assert np.array_equal(_decoded(plain.render({"codes": codes, "image_id": up_plain["image_id"]})["image"]), seeded)
