"""TIFF-family vendor modules, one per vendor (SVS, NDPI, generic TIFF, ...).

A vendor module holds one vendor's knowledge and nothing else (the shape is
``wsideid.drivers.tiff.TiffVendor``): ``claims`` (detection by content,
never the file name), ``roles`` (which IFD is which image), ``inventory``
and ``build`` (how its container text splits into fields and joins back),
``refine`` (rules beyond the profile), and optionally ``label_hint`` (where
the label sits on the macro). ``wsideid.drivers.tiff.TiffDriver`` turns it
into a driver; ``wsideid.registry`` lists it, in claim order.
"""
