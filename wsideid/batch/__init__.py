"""Manifest-driven batches: many slides, one research ID each.

``manifest`` reads and validates the lab's list of slides, ``job`` runs one
slide (the unit that is shipped to worker processes or a Dask cluster),
``records`` keeps what each job did in the review folder (which is what
makes resume and the QC page possible), ``runner`` drives a batch on this
machine and ``dask`` on a cluster. Folder roles: OUTDIR holds only verified
clean slides, their audit JSON and a PHI-free summary; everything that
identifies (source names, label images, detector values, the mapping) stays
in the review folder.
"""
