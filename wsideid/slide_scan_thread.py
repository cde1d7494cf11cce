"""The residual detectors, run beside the write and the verification instead of after them.

The images the residual scan reads (thumbnail, small levels, kept macro,
generated label: ``Driver.residual_images``) are small. Every driver's are
scanned on a thread of their own, so the detectors use the other core while
the main thread writes:

- images that reach the output with the same pixels (``Driver.residual_early``:
  final as soon as the plan is) are scanned from the *source* while the output
  is written. A TIFF-family slide has them (the stream rule drops only segments
  that do not decode and unused tables, and verification checks that the
  decodings match), so they are read while the kernel copies the pyramid
  (copy_file_range and numpy release the GIL);
- the rest (``Driver.residual_images`` less the early ones: a blanked region on
  a level or thumbnail, a macro with its label blanked, a generated label, and
  whatever a driver can only name once written) is scanned from the written
  output once verification is done.

The early scans wait for ``go`` (``pipeline._WriteEvents``: the TIFF writer's
stream check beside the copy is done, or the write returned): before that the
main thread runs the tile-header scan, Python that the detectors' Python would
slow by half (GIL hand-offs) on the path every run waits for, then the stream
check reads every tile through buffers whose memory and the detectors' added
up to over 100 MB at 2 GB.

The scans never run beside the verification (issue 17): the detectors' peak
(a kept level decoded at up to 4 MP, its grey and float copies: 30-45 MB)
and the verifier's (two decodings of an edited stream, a region read through
OpenSlide: 20-30 MB) added up to 110-120 MB on real slides, over the 100 MB
a run may use. The runner waits for the early scans (``wait_early``) before
it verifies, and hands the output over (``written``) once verified.

The runner joins the thread before it decides published or flagged, so
nothing is published unscanned. Scans come back in the order of
``residual_images`` with the output's image indices: the same scans, findings
and order as a scan run after verification.
"""

from __future__ import annotations

import threading
from typing import Sequence

from .drivers.base import Driver, Opened, Written
from .model import Plan


class ResidualScan(threading.Thread):
    """Scans of the kept images, as ``slide_scan.scan_refs`` gives them, indexed as in the output."""

    def __init__(self, driver: Driver, opened: Opened, plan: Plan, identifiers: Sequence[str], ocr: bool,
                 new_id: str | None):
        super().__init__(daemon=True)
        self.driver, self.plan = driver, plan
        self.early = driver.residual_early(opened, plan)  # read from the source, during the write
        self.identifiers, self.ocr, self.new_id = identifiers, ocr, new_id
        self.output: Written | None = None
        self._written = threading.Event()
        self._go = threading.Event()
        self._early_done = threading.Event()
        self._cancelled = False
        self.scans: list = []
        self.error: BaseException | None = None

    def go(self) -> None:
        """The write's own check is done (or the write returned): the early images may be read now."""
        self._go.set()

    def written(self, written: Written) -> None:
        """The output is on disk (under its temporary name): the late images can be read."""
        self.output = written
        self._go.set()
        self._written.set()

    def wait_early(self) -> None:
        """Until the images read from the source are scanned (or the scan failed)."""
        self._go.set()
        self._early_done.wait()

    def cancel(self) -> None:
        self._cancelled = True
        self._go.set()
        self._written.set()

    def run(self) -> None:
        from .publish import drop_research_id
        from .slide_scan import scan_refs
        try:
            self._go.wait()
            if self._cancelled:
                return
            early = {(sc.role, sc.index): sc for sc in scan_refs(self.early, "output", self.identifiers, self.ocr)}
            self._early_done.set()
            self._written.wait()
            if self._cancelled or self.output is None:
                return
            refs = self.driver.residual_images(self.plan, self.output)
            late = iter(scan_refs([r for r in refs if (r.role, r.index) not in early], "output", self.identifiers,
                                  self.ocr))  # one scan per image, in order
            ordered = [early.get((r.role, r.index)) or next(late) for r in refs]
            listed = {(r.role, r.index) for r in refs}
            ordered += [sc for key, sc in early.items() if key not in listed]  # a driver's extra early image
            # the generated label shows the research ID on purpose
            self.scans = drop_research_id(ordered, self.new_id)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the pipeline's thread
            self.error = exc
        finally:
            self._early_done.set()

    def result(self) -> list:
        self.join()
        if self.error is not None:
            raise self.error
        return self.scans
