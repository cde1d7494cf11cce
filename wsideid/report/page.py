"""One self-contained QC page (HTML, images inline as base64, no network).

The page shows what only the review folder may hold: the removed label and
macro, barcode values and OCR text with the PHI flags highlighted, the
source names. Everything taken from a slide is HTML-escaped (label text is
attacker-controlled), and a Content-Security-Policy forbids any fetch, so
the file opens offline and cannot leak what it shows. Decisions are made in
the page and exported as CSV by a Blob download; nothing is sent anywhere.
"""

from __future__ import annotations

import base64
import html
import os
import time
from typing import Any

from ..batch import records

DECISION_COLUMNS = ["new_id", "decision", "reviewer", "note", "decided_at"]
_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "connect-src 'none'; form-action 'none'; base-uri 'none'")


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


def _image(review_dir: str, im: dict) -> str:
    path = os.path.join(review_dir, "images", os.path.basename(im["file"]))
    try:
        with open(path, "rb") as fh:
            data = base64.b64encode(fh.read()).decode()
    except OSError:
        return ""
    what = "removed from the slide" if im["kind"] == "removed" else "still in the flagged output"
    return (f'<figure class="{_e(im["kind"])}"><img alt="{_e(im["role"])}" src="data:image/jpeg;base64,{data}">'
            f'<figcaption><span class="phi">PHI</span> {_e(im["role"])}, {what}</figcaption></figure>')


def _findings(rec: dict) -> str:
    rows = []
    for sc in rec.get("scans", []):
        if sc.get("error"):
            rows.append(f'<tr class="flag"><td>{_e(sc["stage"])}</td><td>{_e(sc["role"])}</td><td>-</td>'
                        f'<td>not scanned: {_e(sc["error"])}</td><td>error</td></tr>')
        for f in sc.get("findings", []):
            cls = ' class="flag"' if f.get("phi") else ""
            kind = f["kind"] + (f" ({f['symbology']})" if f.get("symbology") else "")
            rows.append(f'<tr{cls}><td>{_e(sc["stage"])}</td><td>{_e(sc["role"])}</td><td>{_e(kind)}</td>'
                        f'<td class="val">{highlight(f.get("value", ""), f.get("flags", []))}</td>'
                        f'<td>{_e(", ".join(f.get("phi", [])) or "-")}</td></tr>')
    if not rows:
        scanned = ", ".join(f'{s["stage"]} {s["role"]}' for s in rec.get("scans", []))
        return f'<p class="muted">No barcode or text found{(" (scanned: " + _e(scanned) + ")") if scanned else ""}.</p>'
    return ('<table class="findings"><tr><th>stage</th><th>image</th><th>kind</th><th>value</th><th>PHI</th></tr>'
            + "".join(rows) + "</table>")


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


def _controls(rec: dict) -> str:
    nid = _e(rec["new_id"])
    if rec["status"] != "flagged":
        review = rec.get("review")
        return f'<p class="muted">{_e(review["decision"]) + " by " + _e(review["reviewer"]) if review else ""}</p>'
    return (f'<fieldset class="decide"><legend>Decision</legend>'
            f'<label><input type="radio" name="d-{nid}" value="approve" data-id="{nid}"> approve (publish to OUTDIR)</label> '
            f'<label><input type="radio" name="d-{nid}" value="reject" data-id="{nid}"> reject</label> '
            f'<input type="text" class="note" data-id="{nid}" placeholder="note (stays in the lab)"></fieldset>')


def _card(review_dir: str, rec: dict) -> str:
    st = rec["status"]
    imgs = "".join(_image(review_dir, im) for im in rec.get("images", []))
    err = f'<p class="error">{_e(rec["error"])}</p>' if rec.get("error") else ""
    ids = ", ".join(rec.get("identifiers") or []) or "-"
    s = rec.get("summary", {})
    return (f'<section class="slide" data-status="{_e(st)}" data-id="{_e(rec["new_id"])}" id="slide-{_e(rec["new_id"])}">'
            f'<h2>{_e(rec["new_id"])} <span class="badge {_e(st)}">{_e(st)}</span></h2>'
            f'<p class="src"><span class="phi">PHI</span> row {_e(rec.get("row"))}: <code>{_e(rec.get("source"))}</code>'
            f' &middot; identifiers: {_e(ids)}</p>{err}'
            f'<p class="muted">format {_e(s.get("format"))}, checks {_e(s.get("checks"))}, '
            f'{_e(s.get("t_total"))} s</p>'
            f'<div class="images">{imgs or "<p class=muted>no label/macro image</p>"}</div>'
            f'{_findings(rec)}{_metadata(rec)}{_controls(rec)}</section>')


_STYLE = """
body{font:14px system-ui,sans-serif;margin:0 1.5em 3em;color:#222}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;padding:.5em 0;z-index:2}
.banner{background:#b00020;color:#fff;padding:.4em .8em;font-weight:600}
.slide{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.5em 1em}
.slide.hidden{display:none}
.badge{font-size:.75em;padding:.1em .5em;border-radius:4px;color:#fff;background:#555}
.badge.published,.badge.approved{background:#2e7d32}.badge.flagged{background:#e65100}
.badge.failed,.badge.rejected{background:#b00020}
.phi{background:#b00020;color:#fff;font-size:.7em;padding:0 .3em;border-radius:3px}
.images{display:flex;gap:1em;flex-wrap:wrap}figure{margin:0}img{max-width:380px;max-height:260px;border:1px solid #999}
figure.kept img{outline:3px solid #e65100}
table.findings{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
tr.flag{background:#fff3e0}mark{background:#ffab40;font-weight:600}.val{font-family:monospace}
.error{color:#b00020;font-weight:600}.muted{color:#777}
.slide.decided-approve{border-color:#2e7d32;border-width:3px}.slide.decided-reject{border-color:#b00020;border-width:3px}
"""

_SCRIPT = """
(function(){
  var filter='all';
  function apply(){
    document.querySelectorAll('.slide').forEach(function(s){
      var st=s.dataset.status, undecided=st==='flagged'&&!s.dataset.decision;
      var show=filter==='all'||filter===st||(filter==='undecided'&&undecided);
      s.classList.toggle('hidden',!show);
    });
    var n=document.querySelectorAll('.slide[data-decision]').length;
    document.getElementById('decided').textContent=n;
  }
  document.querySelectorAll('button[data-filter]').forEach(function(b){
    b.addEventListener('click',function(){filter=b.dataset.filter;apply();});
  });
  document.querySelectorAll('.decide input[type=radio]').forEach(function(r){
    r.addEventListener('change',function(){
      var s=document.getElementById('slide-'+r.dataset.id);
      s.dataset.decision=r.value;
      s.classList.remove('decided-approve','decided-reject');
      s.classList.add('decided-'+r.value);
      apply();
    });
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
    recs = records.all_records(review_dir)
    counts: dict[str, int] = {}
    for r in recs:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    buttons = "".join(f'<button data-filter="{k}">{k} ({n})</button> ' for k, n in
                      [("all", len(recs)), ("flagged", counts.get("flagged", 0)), ("failed", counts.get("failed", 0)),
                       ("published", counts.get("published", 0)), ("undecided", counts.get("flagged", 0))])
    cards = "".join(_card(review_dir, r) for r in recs)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f'<meta name="robots" content="noindex"><title>wsideid QC review</title><style>{_STYLE}</style></head><body>'
            f'<header><div class="banner">Contains PHI (source names, labels, identifiers): keep this page inside '
            f'the lab, never with the de-identified slides.</div>'
            f'<p>Batch QC, {len(recs)} slides: ' + ", ".join(f"{n} {_e(k)}" for k, n in sorted(counts.items())) +
            f'. Generated {_e(time.strftime("%Y-%m-%d %H:%M"))}.</p>'
            f'<p>Show: {buttons}</p><p><label>Reviewer <input id="reviewer" type="text" placeholder="your name">'
            f'</label> <button id="export">Export decisions (CSV)</button> <span id="decided">0</span> decided. '
            f'Then: <code>wsideid review apply qc-decisions.csv OUTDIR</code></p></header>'
            f'<main>{cards}</main><script>{_SCRIPT}</script></body></html>')


def write_report(review_dir: str) -> str:
    """Write ``qc-report.html`` into the review folder; returns its path."""
    path = os.path.join(review_dir, records.REPORT)
    from ..safefs import write_atomic
    write_atomic(path, render(review_dir), mode=0o600)
    return path
