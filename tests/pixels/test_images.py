import itertools

import numpy as np
import pytest

from pipeline.pixels import images


def test_float_conversion_is_in_one_place():
    x = np.array([[[0] * 28] * 27 + [[255] * 28]], dtype=np.uint8)
    raw = images.to_float(x, normalise=False)
    assert raw.shape == (1, 1, 28, 28) and raw.dtype == np.float32
    assert raw.min() == 0.0 and raw.max() == 1.0
    norm = images.to_float(x)
    assert np.isclose(norm.min(), -images.MEAN / images.STD)
    with pytest.raises(ValueError, match=r"expected \(n, rows, columns\) uint8 images, got \(1, 28, 28\) float32"):
        images.to_float(x.astype(np.float32))
    with pytest.raises(ValueError, match=r"expected \(n, 784\) uint8 pixel rows, got \(2, 783\) uint8"):
        images.to_images(np.zeros((2, 783), np.uint8))


def test_pixel_rows_become_row_major_images_of_any_shape():
    flat = np.arange(12, dtype=np.uint8).reshape(2, 6)
    out = images.to_images(flat, (2, 3))
    assert out.shape == (2, 2, 3) and out[1].tolist() == [[6, 7, 8], [9, 10, 11]]
    assert np.shares_memory(out, flat)  # a view, no copy


def test_flat_inputs_scale_images_and_pass_tables():
    imgs = np.full((2, 2, 2), 255, np.uint8)
    flat = images.flat_inputs(imgs)
    assert flat.shape == (2, 4) and flat.dtype == np.float32
    assert np.allclose(flat, (1 - images.MEAN) / images.STD)
    table = np.array([[1.5, -2.0]], np.float64)
    assert images.flat_inputs(table).tolist() == [[1.5, -2.0]]


def test_long_class_names_in_a_contact_sheet_do_not_overlap():
    from pipeline.core.figures import pyplot

    names = ["Scentless Mayweed", "Small-flowered Cranesbill", "Common wheat", "Loose Silky-bent", "Black-grass",
             "Shepherds Purse", "Fat Hen", "Cleavers"]
    fig = images.sheet_figure(np.zeros((8, 32, 32), np.uint8), names, cols=8)
    renderer = fig.canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes]
    for left, right in itertools.pairwise(boxes):
        assert left.x1 <= right.x0, "neighbouring captions overlap"
    assert all(box.x0 >= 0 and box.x1 <= fig.bbox.x1 for box in boxes)
    assert images.caption_lines("Small-flowered Cranesbill") == "Small-flowered\nCranesbill"
    assert images.caption_lines("x" * 40).endswith("…") and images.caption_lines("Fat Hen") == "Fat Hen"
    pyplot().close(fig)
