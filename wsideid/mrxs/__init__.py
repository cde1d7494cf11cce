"""3DHistech MIRAX (.mrxs): a small file, and beside it a folder of the same stem holding
Slidedat.ini (key file), Index.dat (record pointers) and Data*.dat (image records).

Not a TIFF, so it has its own reader and writer; the rest of the pipeline
(profiles, value policy, needles, detectors, publish) is shared. Module map:
``ini`` (bounded key-file reader/writer), ``index`` (Index.dat pages),
``slide`` (open + inventory), ``write`` (the de-identified folder),
``verify`` (checks on the written copy), ``synth`` (fixtures to the
published layout), ``driver`` (the pipeline's entry points).
"""
