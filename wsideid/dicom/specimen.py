"""Specimen identity: consistent replacement IDs and the kinds of preparation content items.

A slide's specimen IDs appear in SpecimenDescriptionSequence and again,
as text, in the preparation steps (the specimen and its parents). Each
original ID gets one replacement, the same everywhere in every instance, so
the description and the steps still match after de-identification.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from .uids import UidMapper

# Content-item concepts (DCM) whose TEXT value is an identifier to replace, not free text.
SPECIMEN_ID_CONCEPTS = {"121041", "111705"}  # Specimen Identifier, Parent Specimen Identifier
CONTAINER_ID_CONCEPTS = {"111700"}  # Specimen Container Identifier
CONTENT_ITEMS = "SpecimenPreparationStepContentItemSequence"
# Sequences whose items are content items (Content Item Macro): each is judged by content_kind.
CONTENT_SEQUENCES = {CONTENT_ITEMS, "AcquisitionContextSequence"}
STRUCTURED_TYPES = {"CODE", "NUM", "DATETIME", "DATE", "TIME", "UIDREF", "CONTAINER"}


class SpecimenIds:
    """Original specimen ID -> replacement: ``new-id``, ``new-id-2``, ... in order of
    first appearance, or keyed pseudonyms when there is no research ID."""

    def __init__(self, new_id: str | None, uids: UidMapper):
        self.new_id = new_id
        self.uids = uids
        self.mapping: dict[str, str] = {}

    def replace(self, value: str) -> str:
        v = value.strip()
        if v not in self.mapping:
            if self.new_id:
                n = len(self.mapping)
                self.mapping[v] = self.new_id if n == 0 else f"{self.new_id}-{n + 1}"
            else:
                self.mapping[v] = self.uids.pseudonym("dicom-specimen", v)
        return self.mapping[v]

    def collect(self, datasets: list[Dataset]) -> None:
        """Number the described specimens first, the same way whatever the instance order."""
        for ds in datasets:
            for item in ds.get("SpecimenDescriptionSequence", []) or []:
                v = item.get("SpecimenIdentifier")
                if v is not None and str(v).strip():
                    self.replace(str(v))


def content_kind(item: Dataset) -> str:
    """specimen / container (identifier items), drop (free text or unknown type) or walk."""
    vtype = str(item.get("ValueType", "")).upper()
    concept = ""
    try:
        concept = str(item.ConceptNameCodeSequence[0].CodeValue)
    except (AttributeError, IndexError, KeyError, TypeError):
        pass
    if vtype == "TEXT" and concept in SPECIMEN_ID_CONCEPTS:
        return "specimen"
    if vtype == "TEXT" and concept in CONTAINER_ID_CONCEPTS:
        return "container"
    return "walk" if vtype in STRUCTURED_TYPES else "drop"
