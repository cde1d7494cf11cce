"""The residual detectors, run beside the copy and the verification instead of after them.

The images the residual scan reads (thumbnail, small levels, kept macro; see
``slide_scan.residual_targets``) are small, and most of them reach the output
with the same pixels: the stream rule drops only segments that do not decode
and unused tables, and verification checks that the decodings match. Those
are final as soon as the plan is, so they are scanned from the source while
the kernel copies the pyramid (copy_file_range and numpy release the GIL;
the other core is used). An image whose pixels the run changes (a blanked
region on a level or thumbnail, a macro with its label blanked, a generated
label) is scanned from the written output, once verification is done. The
pipeline joins the thread before it decides published or flagged, so nothing
is published unscanned.

The scans never run beside the verification (issue 17): the detectors' peak
(a kept level decoded at up to 4 MP, its grey and float copies: 30-45 MB)
and the verifier's (two decodings of an edited stream, a region read through
OpenSlide: 20-30 MB) added up to 110-120 MB on real slides, over the 100 MB
a run may use. The pipeline waits for the early scans (``wait_early``)
before it verifies, and hands the output over (``written``) once verified.
"""

from __future__ import annotations

import threading

from .model import Plan

UNCHANGED = "keep"  # the only image action that leaves an image's pixels as they were


class ResidualScan(threading.Thread):
    """Scans of the kept images, as ``slide_scan.scan_images`` gives them, indexed as in the output."""

    def __init__(self, source: str, plan: Plan, identifiers, ocr: bool, new_id: str | None):
        super().__init__(daemon=True)
        from .slide_scan import residual_targets
        kept = [d.image.index for d in plan.images if d.action != "remove"]
        out_of = {src: out for out, src in enumerate(kept)}
        src_of = {out: src for src, out in out_of.items()}
        action = {d.image.index: d for d in plan.images}
        self.early: list[tuple[str, int]] = []  # (role, output index), read from the source
        self.late: list[tuple[str, int]] = []  # read from the written output
        for role, out in residual_targets(plan, out_of):
            d = action[src_of[out]]
            blanked = bool(plan.regions) and d.image.role in ("level", "thumbnail")
            (self.early if d.action == UNCHANGED and not blanked else self.late).append((role, out))
        self.src_of = src_of
        self.source, self.identifiers, self.ocr, self.new_id = source, identifiers, ocr, new_id
        self.output: str | None = None
        self._written = threading.Event()
        self._early_done = threading.Event()
        self._cancelled = False
        self.scans: list = []
        self.error: BaseException | None = None

    def written(self, path: str) -> None:
        """The output is on disk (under its temporary name): the late images can be read."""
        self.output = path
        self._written.set()

    def wait_early(self) -> None:
        """Until the images read from the source are scanned (or the scan failed)."""
        self._early_done.wait()

    def cancel(self) -> None:
        self._cancelled = True
        self._written.set()

    def run(self) -> None:
        from .slide_scan import scan_images
        try:
            early = [(role, self.src_of[out]) for role, out in self.early]
            scans = scan_images(self.source, early, "output", self.identifiers, self.ocr)
            for sc, (_, out) in zip(scans, self.early):
                sc.index = out  # the audit names images as they are in the output
            self._early_done.set()
            if self.late:
                self._written.wait()
                if self._cancelled or self.output is None:
                    return
                scans += scan_images(self.output, self.late, "output", self.identifiers, self.ocr)
            if self.new_id:  # the generated label shows the research ID on purpose
                for sc in scans:
                    if sc.result is not None:
                        sc.result.findings = [f for f in sc.result.findings if f.value.strip() != self.new_id]
            self.scans = sorted(scans, key=lambda sc: sc.index)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the pipeline's thread
            self.error = exc
        finally:
            self._early_done.set()

    def result(self) -> list:
        self.join()
        if self.error is not None:
            raise self.error
        return self.scans
