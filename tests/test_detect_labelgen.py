"""The replacement label reads back: zxing decodes the code, tesseract the ID."""
import pytest

from wsideid.detect import scan_image
from wsideid.label_image import make_label_image


@pytest.mark.parametrize("size", [(400, 200), (240, 300), (600, 180)])
def test_label_round_trips(size):
    img = make_label_image("RID-000123", size, ["Research Use Only"])
    assert img.size == size
    result = scan_image(img, "label")
    codes = {(f.symbology, f.value) for f in result.findings if f.kind == "barcode"}
    assert codes == {("DataMatrix", "RID-000123")}
    text = " ".join(f.value for f in result.findings if f.kind == "text")
    assert "RID-000123" in text.replace(" ", "")


def test_empty_id_is_refused():
    with pytest.raises(ValueError):
        make_label_image("", (100, 100))
