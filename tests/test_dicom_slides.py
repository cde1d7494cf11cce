"""wsideid.dicom.slides: which instances of a folder make one slide (by content, per the WSI IOD)."""

from __future__ import annotations

import pytest

pytest.importorskip("pydicom")
from pydicom.dataset import Dataset  # noqa: E402

from wsideid.dicom.slides import group, select, series_token  # noqa: E402
from wsideid.dicom.source import DicomSource, Instance  # noqa: E402
from wsideid.errors import WsideidError  # noqa: E402

ROLES = {"level": "VOLUME", "thumbnail": "THUMBNAIL", "label": "LABEL", "overview": "OVERVIEW"}


def inst(index: int, role: str, study: str, series: str, frame: str = "", container: str = "",
         size: tuple[float, float] | None = (10.0, 8.0)) -> Instance:
    ds = Dataset()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    if frame:
        ds.FrameOfReferenceUID = frame
    if container:
        ds.ContainerIdentifier = container
    if size and role in ("level", "thumbnail"):
        ds.ImagedVolumeWidth, ds.ImagedVolumeHeight = size
    ds.ImageType = ["ORIGINAL", "PRIMARY", ROLES.get(role, "OTHER"), "NONE"]
    return Instance(index, f"/nowhere/{index}", ds, None, role, False)


def series_of(found) -> dict[str, list[int]]:
    return {s.series_uid: [i.index for i in s.instances] for s in found.slides}


def test_each_volume_series_is_a_slide_with_its_own_images():
    found = group([inst(0, "level", "1.1", "1.1.1", "9.1"), inst(1, "label", "1.1", "1.1.1", "9.1"),
                   inst(2, "level", "1.1", "1.1.2", "9.2"), inst(3, "thumbnail", "1.1", "1.1.2", "9.2"),
                   inst(4, "level", "1.1", "1.1.1", "9.1", size=(10.2, 8.1))])  # a reduced level, rounded
    assert series_of(found) == {"1.1.1": [0, 1, 4], "1.1.2": [2, 3]} and not found.orphans
    assert all(s.problem is None for s in found.slides)


def test_a_label_in_a_series_of_its_own_joins_the_slide_it_shares_a_frame_or_container_with():
    found = group([inst(0, "level", "1.1", "1.1.1", "9.1", "SLIDE-A"), inst(1, "level", "1.1", "1.1.2", "9.2", "SLIDE-B"),
                   inst(2, "label", "1.1", "1.1.7", "9.2"),  # Frame of Reference of slide B
                   inst(3, "overview", "1.1", "1.1.8", "", "SLIDE-A"),  # container of slide A
                   inst(4, "label", "1.1", "1.1.9", "9.1", "SLIDE-B"),  # contradicts both: orphan
                   inst(5, "label", "2.2", "2.2.1", "9.1"),  # another study: orphan
                   inst(6, "label", "1.1", "1.1.2", "9.9")])  # in B's series, another Frame of Reference: orphan
    assert series_of(found) == {"1.1.1": [0, 3], "1.1.2": [1, 2]}
    assert [o.index for o in found.orphans] == [4, 5, 6]


def test_a_label_matching_two_slides_is_an_orphan():
    found = group([inst(0, "level", "1.1", "1.1.1", "", "SLIDE-A"), inst(1, "level", "1.1", "1.1.2", "", "SLIDE-A"),
                   inst(2, "label", "1.1", "1.1.3", "", "SLIDE-A")])
    assert [o.index for o in found.orphans] == [2] and "matches 2 slides" in found.orphans[0].reason


@pytest.mark.parametrize("other, why", [
    (dict(size=(20.0, 8.0)), "mixed sizes"),
    (dict(frame="9.8"), "Frames of Reference"),
    (dict(container="SLIDE-Z"), "Container Identifiers"),
])
def test_a_series_whose_volumes_disagree_is_not_one_slide(other, why):
    base = dict(frame="9.1", container="SLIDE-A")
    found = group([inst(0, "level", "1.1", "1.1.1", **base), inst(1, "level", "1.1", "1.1.1", **{**base, **other})])
    assert why in found.slides[0].problem
    src = DicomSource("/nowhere", True, [inst(0, "level", "1.1", "1.1.1", **base),
                                         inst(1, "level", "1.1", "1.1.1", **{**base, **other})], 0)
    with pytest.raises(WsideidError, match="is not one slide"):
        select(src, None)


def test_select_picks_one_slide_and_refuses_to_guess():
    insts = [inst(0, "level", "1.1", "1.1.1", "9.1"), inst(1, "level", "1.1", "1.1.2", "9.2"),
             inst(2, "label", "3.3", "3.3.1", "9.3")]
    src = DicomSource("/nowhere", True, insts, 0)
    with pytest.raises(WsideidError, match="holds 2 slides: series-[0-9a-f]{12} .*series-[0-9a-f]{12}") as err:
        select(src, None)
    assert "1.1.1" not in str(err.value) and "1.1.2" not in str(err.value)  # no source UID in a message
    with pytest.raises(WsideidError, match="no slide with the --series given") as err:
        select(src, "1.1.5")
    assert "1.1.5" not in str(err.value)
    one = select(src, "1.1.2")
    assert [i.index for i in select(src, series_token("1.1.2")).instances] == [1]  # the token names it too
    assert [i.index for i in one.instances] == [1] and one.other_slides == 1 and [o.index for o in one.orphans] == [2]
    with pytest.raises(WsideidError, match="no slide"):
        select(DicomSource("/nowhere", True, [insts[2]], 0), None)


def test_messages_name_slides_by_token_and_file_never_by_source_uid():
    """Error lines reach batch records and logs that may be shared: no Study or Series UID in them."""
    one = DicomSource("/nowhere/a.dcm", False, [inst(0, "level", "1.2.840.77", "1.2.840.77.1")], 0)
    with pytest.raises(WsideidError) as err:
        select(one, "1.2.840.77.9")
    assert "1.2.840.77" not in str(err.value) and series_token("1.2.840.77.1") in str(err.value)
    assert select(one, series_token("1.2.840.77.1")) is one
    bad = DicomSource("/nowhere", True, [inst(0, "level", "1.2.840.77", "1.2.840.77.1", "9.1"),
                                         inst(1, "level", "1.2.840.77", "1.2.840.77.1", "9.2")], 0)
    with pytest.raises(WsideidError, match="is not one slide") as err:
        select(bad, None)
    assert "1.2.840.77" not in str(err.value) and "\n" not in str(err.value)
    listing = group(bad.instances).listing()
    assert "/nowhere/0" not in listing and "0 and 1 more file(s)" in listing  # the file's name, not its folder
