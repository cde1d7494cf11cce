"""One self-contained QC page (HTML, images inline as base64, no network).

The page shows what only the review folder may hold: for every manifest row
the slide's images as they leave the lab (read from the published output)
beside the removed ones, the detector boxes drawn on them (an SVG overlay in
the scanned image's pixels) and listed with their text and category, and
the rows that produced no slide (refused rows, failures, lost workers) with
their reason, so the page accounts for the whole manifest. Everything taken
from a slide or a manifest is HTML-escaped (label text is attacker-
controlled), and a Content-Security-Policy forbids any fetch, so the file
opens offline and cannot leak what it shows. Decisions are made in the page
(mouse or keyboard) and exported as CSV by a Blob download, in the form
``wsideid review apply`` reads; nothing is sent anywhere.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import os
import time
from typing import Any

from ..batch import records
from ..checks import Check
from ..errors import WsideidError
from ..cells import unescape_row

DECISION_COLUMNS = ["new_id", "decision", "reviewer", "note", "decided_at"]
_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "connect-src 'none'; form-action 'none'; base-uri 'none'")
NO_SLIDE = ("refused", "lost", "interrupted")  # summary statuses of rows that have no finished record of this run
_STATUS_ORDER = ("flagged", "failed", "refused", "lost", "interrupted", "published", "approved", "rejected")


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def highlight(value: str, flags: list[dict]) -> str:
    """``value`` escaped, with the flagged spans in <mark> (overlapping spans merged)."""
    spans = sorted((max(0, f["span"][0]), min(len(value), f["span"][1])) for f in flags if f.get("span"))
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        elif b > a:
            merged.append([a, b])
    out, pos = [], 0
    for a, b in merged:
        out += [_e(value[pos:a]), f"<mark>{_e(value[a:b])}</mark>"]
        pos = b
    out.append(_e(value[pos:]))
    return "".join(out)


def _numbered(rec: dict) -> list[tuple[int, dict, dict]]:
    """(number, scan, finding) for every finding of the slide, numbered in the order listed."""
    out = []
    for sc in rec.get("scans", []):
        for f in sc.get("findings", []):
            out.append((len(out) + 1, sc, f))
    return out


QUIET_BELOW = 0.6  # text without a PHI category read below this confidence: tissue texture, mostly


def _quiet(f: dict) -> bool:
    """A finding the page shows faintly and lists folded away (still numbered and listed: the page
    hides nothing, but a reviewer's eye should go to the flags, not to OCR of tissue)."""
    return not f.get("phi") and f.get("kind") == "text" and float(f.get("confidence") or 0) < QUIET_BELOW


def _box_class(f: dict) -> str:
    if f.get("phi"):
        return "phi"
    return ("quiet " if _quiet(f) else "") + ("text" if f.get("kind") == "text" else "code")


def _overlay(scan: dict | None, found: list[tuple[int, dict, dict]]) -> str:
    """The scan's boxes as SVG over the preview: the viewBox is the scanned image's size, so the
    boxes land right whatever size the preview and the page give the image."""
    if not scan or not scan.get("size"):
        return ""
    w, h = (int(v) for v in scan["size"][:2])
    if w <= 0 or h <= 0:
        return ""
    font = max(w, h) / 22
    shapes = []
    for n, sc, f in found:
        if sc is not scan or len(f.get("box") or []) != 4:
            continue
        x0, y0, x1, y1 = (float(v) for v in f["box"])
        title = f'{n}: {f.get("kind")} {", ".join(f.get("phi", [])) or "no PHI category"}'
        shapes.append(f'<g class="box {_box_class(f)}" data-n="{n}" data-box="{x0:g},{y0:g},{x1:g},{y1:g}">'
                      f'<title>{_e(title)}</title>'
                      f'<rect x="{x0:g}" y="{y0:g}" width="{max(1.0, x1 - x0):g}" height="{max(1.0, y1 - y0):g}"'
                      f' vector-effect="non-scaling-stroke"/>'
                      f'<text x="{x0:g}" y="{max(font, y0 - font * 0.2):g}" font-size="{font:.1f}">{n}</text></g>')
    return (f'<svg class="boxes" viewBox="0 0 {w} {h}" preserveAspectRatio="none" data-size="{w},{h}"'
            f'>{"".join(shapes)}</svg>') if shapes else ""


def _image(review_dir: str, im: dict, rec: dict, found: list) -> str:
    from ..tables import read_table_file
    path = os.path.join(review_dir, "images", os.path.basename(im["file"]))
    try:  # a regular file of bounded size, opened without blocking (a FIFO there hung `report`)
        data = base64.b64encode(read_table_file(path, "a review image")).decode()
    except WsideidError:
        return ""
    scan = next((sc for sc in rec.get("scans", []) if "index" in im and sc.get("index") == im["index"]
                 and sc.get("stage") == im.get("stage")), None)
    kept = im["kind"] == "kept"
    what = "as it leaves (published output)" if kept else "removed from the slide"
    n = sum(1 for _, sc, _f in found if sc is scan)
    flag = ('<span class="phi">PHI</span> ' if not kept or (scan and scan.get("has_phi")) else "")
    why = not_scanned(scan, kept, (rec.get("job") or {}).get("detect"))
    return (f'<figure class="{_e(im["kind"])}" data-role="{_e(im["role"])}" data-stage="{_e(im.get("stage"))}">'
            f'<div class="frame"><img alt="{_e(im["role"])}" src="data:image/jpeg;base64,{data}">'
            f'{_overlay(scan, found)}</div>'
            f'<figcaption>{flag}{_e(im["role"])}, {what}'
            f'{f"; {n} detector box" + ("es" if n != 1 else "") if n else ""}'
            f'{f"<br><span class=notscanned>Not scanned: {_e(why)}</span>" if why else ""}</figcaption></figure>')


def not_scanned(scan: dict | None, kept: bool, detect: str | None) -> str | None:
    """Why the detectors did not read this image, or None when they did: a reviewer must not take an
    image without boxes for a clean one when nobody looked (detectors off, a removed image under
    --detect residual, a level covered by a scanned one, a detector error)."""
    if scan is not None:
        return scan.get("error") or scan.get("skipped") or None
    if detect == "off":
        return "the detectors were off (--detect off)"
    if not kept and detect == "residual":
        return "removed images are scanned with --detect all only"
    return "no detector result was recorded for this image"


def _images(review_dir: str, rec: dict, found: list) -> str:
    imgs = rec.get("images", [])
    kept = "".join(_image(review_dir, im, rec, found) for im in imgs if im["kind"] == "kept")
    removed = "".join(_image(review_dir, im, rec, found) for im in imgs if im["kind"] != "kept")
    if not rec.get("output"):
        kept = '<p class="muted">nothing leaves: no output</p>'
    return (f'<div class="images"><div class="col leaves"><h3>Leaves the lab</h3>'
            f'{kept or "<p class=muted>no thumbnail or overview image in the output</p>"}</div>'
            f'<div class="col removed"><h3>Removed (stays in the lab)</h3>'
            f'{removed or "<p class=muted>no label, macro or overview image removed</p>"}</div></div>')


def _findings(rec: dict, found: list) -> str:
    rows = []
    for sc in rec.get("scans", []):
        if sc.get("error"):
            rows.append(f'<tr class="flag"><td>-</td><td>{_e(sc["stage"])}</td><td>{_e(sc["role"])}</td><td>-</td>'
                        f'<td>not scanned: {_e(sc["error"])}</td><td>error</td><td>-</td></tr>')
    quiet = []
    for n, sc, f in found:
        cls = ' class="flag"' if f.get("phi") else ""
        kind = f["kind"] + (f" ({f['symbology']})" if f.get("symbology") else "")
        conf = f.get("confidence")
        (quiet if _quiet(f) else rows).append(f'<tr{cls} data-n="{n}"><td>{n}</td><td>{_e(sc["stage"])}</td><td>{_e(sc["role"])}</td>'
                    f'<td>{_e(kind)}</td><td class="val">{highlight(f.get("value", ""), f.get("flags", []))}</td>'
                    f'<td>{_e(", ".join(f.get("phi", [])) or "-")}</td>'
                    f'<td>{"-" if conf is None else f"{float(conf):.2f}"}</td></tr>')
    head = ('<table class="findings"><tr><th>#</th><th>stage</th><th>image</th><th>kind</th><th>text</th>'
            '<th>category</th><th>conf.</th></tr>')
    if not rows and not quiet:
        scanned = ", ".join(f'{s["stage"]} {s["role"]}' for s in rec.get("scans", []) if not s.get("skipped"))
        return f'<p class="muted">No barcode or text found{(" (scanned: " + _e(scanned) + ")") if scanned else ""}.</p>'
    out = head + "".join(rows) + "</table>" if rows else ""
    if quiet:
        out += (f'<details class="quiet"><summary>{len(quiet)} text line{"s" if len(quiet) != 1 else ""} without a'
                f' PHI category read below {QUIET_BELOW:.0%} confidence (faint dashed boxes)</summary>'
                f'{head}{"".join(quiet)}</table></details>')
    return out


def _metadata(rec: dict) -> str:
    fields = rec.get("fields", [])
    if not fields:
        return ""
    counts: dict[str, int] = {}
    for f in fields:
        counts[f["action"]] = counts.get(f["action"], 0) + 1
    items = "".join(f'<li><code>{_e(f["path"])}</code>: {_e(f["action"])}{" (unknown)" if f.get("unknown") else ""}'
                    f' <span class="muted">{_e(f.get("rule"))}</span></li>'
                    for f in fields if f["action"] != "keep")
    imgs = ", ".join(f'{_e(i["role"])}[{i["index"]}] {_e(i["action"])}'
                     + (f' ({_e(i["rule"][len("unknown image: "):])})' if str(i.get("rule", "")).startswith("unknown image")
                        else "")
                     for i in rec.get("image_actions", []))
    head = ", ".join(f"{v} {_e(k)}" for k, v in sorted(counts.items()))
    return (f'<details><summary>metadata: {head}; images: {imgs}</summary><ul class="fields">{items}</ul></details>')


_ORDER = {c.value: k for k, c in enumerate(Check)}


def _checks(rec: dict) -> str:
    """The verification as a table, one row per check name in the vocabulary's order (the same rows
    for every slide, whatever its format); open when a check failed. Records written before the
    vocabulary (``ok`` only) read as passed / failed."""
    rows = sorted(rec.get("checks") or [], key=lambda c: _ORDER.get(c.get("check"), len(_ORDER)))
    if not rows:
        return ""
    status = [c.get("status") or ("passed" if c.get("ok") else "failed") for c in rows]
    failed = [c.get("check") for c, st in zip(rows, status) if st == "failed"]
    head = f"{status.count('passed')} passed, {status.count('not-applicable')} not applicable" + \
        (f", {len(failed)} FAILED: {', '.join(map(str, failed))}" if failed else "")
    body = "".join(f'<tr class="{_e(st)}"><td><code>{_e(c.get("check"))}</code></td><td>{_e(st)}</td>'
                   f'<td>{_e(c.get("detail"))}</td></tr>' for c, st in zip(rows, status))
    return (f'<details class="checks"{" open" if failed else ""}><summary>checks: {_e(head)}</summary>'
            f'<table><tr><th>check</th><th>status</th><th>detail</th></tr>{body}</table></details>')


def _controls(rec: dict) -> str:
    nid = _e(rec["new_id"])
    if rec["status"] != "flagged":
        review = rec.get("review")
        return f'<p class="muted">{_e(review["decision"]) + " by " + _e(review["reviewer"]) if review else ""}</p>'
    return (f'<fieldset class="decide"><legend>Decision (keys: a approve, r reject, u undo)</legend>'
            f'<label><input type="radio" name="d-{nid}" value="approve" data-id="{nid}"> approve (publish to OUTDIR)</label> '
            f'<label><input type="radio" name="d-{nid}" value="reject" data-id="{nid}"> reject</label> '
            f'<input type="text" class="note" data-id="{nid}" placeholder="note (stays in the lab)"></fieldset>')


def _card(review_dir: str, rec: dict) -> str:
    st = rec["status"]
    found = _numbered(rec)
    err = f'<p class="error">{_e(rec["error"])}</p>' if rec.get("error") else ""
    ids = ", ".join(rec.get("identifiers") or []) or "-"
    s = rec.get("summary", {})
    stale = ('<p class="muted">not in the latest run of this batch (an earlier manifest row)</p>'
             if rec.get("_stale") else "")
    return (f'<section class="slide" tabindex="-1" data-status="{_e(st)}" data-id="{_e(rec["new_id"])}"'
            f' id="slide-{_e(rec["new_id"])}">'
            f'<h2>{_e(rec["new_id"])} <span class="badge {_e(st)}">{_e(st)}</span></h2>'
            f'<p class="src"><span class="phi">PHI</span> row {_e(rec.get("row"))}: <code>{_e(rec.get("origin") or rec.get("source"))}</code>'
            f' &middot; identifiers: {_e(ids)}</p>{err}{stale}'
            f'<p class="muted">format {_e(s.get("format"))}, checks {_e(s.get("checks"))}, '
            f'{_e(s.get("t_total"))} s</p>'
            f'{_images(review_dir, rec, found)}{_findings(rec, found)}{_metadata(rec)}{_checks(rec)}{_controls(rec)}</section>')


WHY_NO_SLIDE = {"lost": "the worker died before it reported; rerun the same command to finish it",
                "interrupted": "interrupted (Ctrl-C) before it finished; rerun the same command to finish it"}


def _row_card(row: dict) -> str:
    """A manifest row without a slide record of this run: refused (bad value, missing source) or lost."""
    st = row.get("status") or "refused"
    key = f"row-{row.get('row')}"
    why = row.get("message") or WHY_NO_SLIDE.get(st) or row.get("error_kind") or "no reason recorded"
    nid = row.get("new_id") or ""
    return (f'<section class="slide" tabindex="-1" data-status="{_e(st)}" data-id="{_e(key)}" id="slide-{_e(key)}">'
            f'<h2>row {_e(row.get("row"))}{" &middot; " + _e(nid) if nid else ""} '
            f'<span class="badge {_e(st)}">{_e(st)}</span></h2>'
            f'<p class="src"><span class="phi">PHI</span> source: <code>{_e(row.get("source") or "-")}</code></p>'
            f'<p class="error">{_e(why)}</p><p class="muted">no slide was written for this row</p></section>')


def _summary_rows(review_dir: str) -> list[dict] | None:
    """The review folder's full summary (every manifest row of the latest run), or None."""
    from ..tables import read_table_file
    try:
        text = read_table_file(os.path.join(review_dir, records.SUMMARY), "the batch summary").decode("utf-8")
        return [unescape_row(r) for r in csv.DictReader(io.StringIO(text, newline=""))]
    except (WsideidError, UnicodeDecodeError, csv.Error):
        return None


def entries(review_dir: str) -> list[tuple[str, dict]]:
    """("record", record) or ("row", summary row) per manifest row, in manifest order, then the records of
    earlier runs the latest manifest no longer names: the page accounts for every row and every slide."""
    recs = records.all_records(review_dir)
    by_id = {r.get("new_id"): r for r in recs}
    summary = _summary_rows(review_dir)
    if summary is None:
        return [("record", r) for r in recs]
    out: list[tuple[str, dict]] = []
    used: set[str] = set()
    for row in summary:
        rec = by_id.get(row.get("new_id") or None)
        if rec is not None and row.get("status") not in NO_SLIDE:
            out.append(("record", rec))
            used.add(rec["new_id"])
        else:
            out.append(("row", row))
            if rec is not None and rec.get("status") == "running":  # the mark a lost or interrupted job left
                used.add(rec["new_id"])
    out += [("record", {**r, "_stale": True}) for r in recs if r.get("new_id") not in used]
    return out


_STYLE = """
body{font:14px system-ui,sans-serif;margin:0 1.5em 3em;color:#222}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;padding:.5em 0;z-index:2}
header p{margin:.3em 0}
.banner{background:#b00020;color:#fff;padding:.4em .8em;font-weight:600}
.slide{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.5em 1em;scroll-margin-top:11em}
.slide.hidden{display:none}.slide.current{box-shadow:0 0 0 4px #1565c0}
.badge{font-size:.75em;padding:.1em .5em;border-radius:4px;color:#fff;background:#555}
.badge.published,.badge.approved{background:#2e7d32}.badge.flagged{background:#e65100}
.badge.failed,.badge.rejected,.badge.refused,.badge.lost,.badge.interrupted{background:#b00020}
.phi{background:#b00020;color:#fff;font-size:.7em;padding:0 .3em;border-radius:3px}
.images{display:flex;gap:2em;flex-wrap:wrap}.col{flex:1 1 300px}.col h3{font-size:1em;margin:.3em 0}
.col .muted{margin:.2em 0}
figure{margin:0 0 .8em 0;display:inline-block;vertical-align:top;margin-right:1em}
.frame{position:relative;display:inline-block;line-height:0}
.frame img{display:block;max-width:380px;max-height:260px;border:1px solid #999}
svg.boxes{position:absolute;left:1px;top:1px;width:calc(100% - 2px);height:calc(100% - 2px);overflow:visible;
 pointer-events:none}
svg.boxes rect{fill:none;stroke-width:3px}svg.boxes text{font-family:sans-serif;font-weight:700}
g.phi rect{stroke:#ff0000}g.phi text{fill:#ff0000}g.text rect{stroke:#0050ff}g.text text{fill:#0050ff}
g.code rect{stroke:#a000c0}g.code text{fill:#a000c0}
g.quiet{opacity:.45}g.quiet rect{stroke-width:1.5px;stroke-dasharray:4 3}g.quiet text{display:none}
body.noboxes svg.boxes{display:none}
figure.kept .frame img{outline:3px solid #2e7d32}figure.removed .frame img{outline:3px dashed #b00020}
table.findings{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
tr.flag{background:#fff3e0}mark{background:#ffab40;font-weight:600}.val{font-family:monospace}
.checks table{border-collapse:collapse;margin:.3em 0}.checks tr.failed{background:#fde0e0}
.checks tr.not-applicable,.checks tr.not-run{color:#777}
.error{color:#b00020;font-weight:600}.notscanned{color:#b00020}.muted{color:#777}
.slide.decided-approve{border-color:#2e7d32;border-width:3px}.slide.decided-reject{border-color:#b00020;border-width:3px}
kbd{border:1px solid #aaa;border-radius:3px;padding:0 .3em;font-size:.9em}
"""

_SCRIPT = """
(function(){
  var filter='all', current=null;
  function slides(){return Array.prototype.slice.call(document.querySelectorAll('.slide'));}
  function visible(){return slides().filter(function(s){return !s.classList.contains('hidden');});}
  function apply(){
    slides().forEach(function(s){
      var st=s.dataset.status, undecided=st==='flagged'&&!s.dataset.decision;
      var show=filter==='all'||filter===st||(filter==='undecided'&&undecided);
      s.classList.toggle('hidden',!show);
    });
    var fl=document.querySelectorAll('.slide[data-status=flagged]').length;
    var ap=document.querySelectorAll('.slide[data-decision=approve]').length;
    var rj=document.querySelectorAll('.slide[data-decision=reject]').length;
    document.getElementById('decided').textContent=ap+rj;
    document.getElementById('n-approve').textContent=ap;
    document.getElementById('n-reject').textContent=rj;
    document.getElementById('n-undecided').textContent=fl-ap-rj;
    if(current&&current.classList.contains('hidden'))select(null);
  }
  function select(s){
    if(current)current.classList.remove('current');
    current=s;
    document.getElementById('current').textContent=s?(s.querySelector('h2').firstChild.textContent.trim()):'-';
    if(s){s.classList.add('current');s.focus({preventScroll:true});s.scrollIntoView({block:'start'});}
  }
  function step(d){
    var v=visible(); if(!v.length)return;
    var i=v.indexOf(current);
    select(v[i<0?(d>0?0:v.length-1):Math.max(0,Math.min(v.length-1,i+d))]);
  }
  function decide(s,value){
    if(!s||s.dataset.status!=='flagged')return;
    s.classList.remove('decided-approve','decided-reject');
    s.querySelectorAll('.decide input[type=radio]').forEach(function(r){r.checked=(r.value===value);});
    if(value){s.dataset.decision=value;s.classList.add('decided-'+value);}else{delete s.dataset.decision;}
    apply();
  }
  document.querySelectorAll('button[data-filter]').forEach(function(b){
    b.addEventListener('click',function(){filter=b.dataset.filter;apply();});
  });
  document.querySelectorAll('.decide input[type=radio]').forEach(function(r){
    r.addEventListener('change',function(){decide(document.getElementById('slide-'+r.dataset.id),r.value);});
  });
  slides().forEach(function(s){s.addEventListener('click',function(){if(current!==s){current&&current.classList.remove('current');current=s;s.classList.add('current');document.getElementById('current').textContent=s.querySelector('h2').firstChild.textContent.trim();}});});
  document.getElementById('show-boxes').addEventListener('change',function(e){
    document.body.classList.toggle('noboxes',!e.target.checked);
  });
  document.addEventListener('keydown',function(e){
    var t=e.target.tagName;
    if(e.ctrlKey||e.metaKey||e.altKey||((t==='INPUT'||t==='TEXTAREA')&&e.target.type!=='radio'&&e.target.type!=='checkbox'))return;
    var k=e.key, handled=true;
    if(k==='j'||k==='n'||k==='ArrowDown')step(1);
    else if(k==='k'||k==='p'||k==='ArrowUp')step(-1);
    else if(k==='a')decide(current,'approve');
    else if(k==='r')decide(current,'reject');
    else if(k==='u')decide(current,null);
    else if(k==='b'){var c=document.getElementById('show-boxes');c.checked=!c.checked;document.body.classList.toggle('noboxes',!c.checked);}
    else handled=false;
    if(handled)e.preventDefault();
  });
  function cell(v){v=String(v==null?'':v);if(/^[=+\\-@\\t\\r]/.test(v)||/^'[=+\\-@\\t\\r']/.test(v))v="'"+v;return /[",\\n\\r]/.test(v)?'"'+v.replace(/"/g,'""')+'"':v;}
  document.getElementById('export').addEventListener('click',function(){
    var who=document.getElementById('reviewer').value.trim();
    if(!who){alert('Enter your name as reviewer first.');document.getElementById('reviewer').focus();return;}
    var now=new Date().toISOString(), lines=['new_id,decision,reviewer,note,decided_at'];
    document.querySelectorAll('.slide[data-decision]').forEach(function(s){
      var note=s.querySelector('.note').value;
      lines.push([s.dataset.id,s.dataset.decision,who,note,now].map(cell).join(','));
    });
    var blob=new Blob([lines.join('\\r\\n')+'\\r\\n'],{type:'text/csv'});
    var a=document.createElement('a');
    a.href=URL.createObjectURL(blob);a.download='qc-decisions.csv';
    document.body.appendChild(a);a.click();a.remove();
  });
  apply();
})();
"""


def render(review_dir: str) -> str:
    items = entries(review_dir)
    counts: dict[str, int] = {}
    for _kind, r in items:
        counts[r.get("status") or "refused"] = counts.get(r.get("status") or "refused", 0) + 1
    order = [s for s in _STATUS_ORDER if counts.get(s)] + sorted(s for s in counts if s not in _STATUS_ORDER)
    buttons = "".join(f'<button data-filter="{_e(k)}">{_e(k)} ({n})</button> ' for k, n in
                      [("all", len(items)), *[(s, counts[s]) for s in order],
                       ("undecided", counts.get("flagged", 0))])
    cards = "".join(_card(review_dir, r) if kind == "record" else _row_card(r) for kind, r in items)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f'<meta name="robots" content="noindex"><title>wsideid QC review</title><style>{_STYLE}</style></head><body>'
            f'<header><div class="banner">Contains PHI (source names, labels, identifiers): keep this page inside '
            f'the lab, never with the de-identified slides.</div>'
            f'<p>Batch QC, {len(items)} manifest rows: <span id="counts">'
            + ", ".join(f'<span data-count="{_e(k)}">{counts[k]} {_e(k)}</span>' for k in order) +
            f'</span>. Decisions: <span id="n-approve">0</span> approve, <span id="n-reject">0</span> reject, '
            f'<span id="n-undecided">{counts.get("flagged", 0)}</span> undecided. '
            f'Generated {_e(time.strftime("%Y-%m-%d %H:%M"))}.</p>'
            f'<p>Show: {buttons} <label><input type="checkbox" id="show-boxes" checked> detector boxes</label></p>'
            f'<p>Keys: <kbd>j</kbd>/<kbd>&darr;</kbd> next, <kbd>k</kbd>/<kbd>&uarr;</kbd> previous, <kbd>a</kbd> approve,'
            f' <kbd>r</kbd> reject, <kbd>u</kbd> undo, <kbd>b</kbd> boxes. Current: <b id="current">-</b></p>'
            f'<p><label>Reviewer <input id="reviewer" type="text" placeholder="your name">'
            f'</label> <button id="export">Export decisions (CSV)</button> <span id="decided">0</span> decided. '
            f'Then: <code>wsideid review apply qc-decisions.csv OUTDIR</code></p></header>'
            f'<main>{cards}</main><script>{_SCRIPT}</script></body></html>')


def write_report(review_dir: str) -> str:
    """Write ``qc-report.html`` into the review folder; returns its path."""
    path = os.path.join(review_dir, records.REPORT)
    from ..safefs import write_atomic
    write_atomic(path, render(review_dir), mode=0o600)
    return path
