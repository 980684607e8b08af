"""Bringing other cohorts into the MRNet-v1.0 layout: DICOM studies with a labels file, and KneeMRI.

Everything every other command reads is the MRNet layout; this package writes it from what
hospitals and other datasets hold, with the project's DICOM reading (mrnet.data.dicom), splits
by patient, fresh case ids, and the identifiers kept apart in DATA/import/ (see store.py).
"""
