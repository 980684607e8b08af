"""Reading exams: the MRNet-v1.0 layout, single series, DICOM folders, and preprocessing.

The dataset only indexes and reads files; transforms turn raw uint8 series into model input.
"""
