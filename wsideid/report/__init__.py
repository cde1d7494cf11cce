"""The QC side of a batch: the review page and applying reviewers' decisions.

``page`` renders one self-contained HTML file from the review folder's
records (it holds PHI and stays in the review folder); ``decisions`` reads
the CSV the page exports and moves approved slides into OUTDIR after
verifying them again.
"""
