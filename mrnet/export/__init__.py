"""Models that leave the lab: a run folder as one verifiable file, its plane models as ONNX, results as DICOM SR.

A bundle (`bundle.make_bundle`) holds the weights as safetensors and everything else as JSON,
CSV or text, with a manifest of sha256 hashes; reading one (`unpack`) checks every member
before anything is written and never unpickles.
"""
