"""Synthetic knee MRI exams in the MRNet-v1.0 layout, with real, plane-dependent findings.

The real dataset needs a registration, so tests, demos and smoke runs need stand-in data
that exercises the same code paths and still has something to learn. Each exam here is one
analytic 3-D knee phantom (bones, cartilage, menisci, cruciate ligaments, tendons, fat,
muscle, joint fluid) that is sampled three times, once per series, each on its own slice
grid and with its own contrast:

    sagittal  T2 fat-saturated  slices along x (left-right),      images (z, y)
    coronal   T1                slices along y (anterior-post.),  images (z, x)
    axial     PD fat-saturated  slices along z (superior-inf.),   images (y, x)

Because all three series sample one phantom, they agree with each other, and a finding
looks different in each of them for the same reasons it does in real scans: its shape
relative to the slice direction (partial volume over thick slices) and its contrast in that
sequence. An ACL tear (a gap in an oblique band that lies in the sagittal plane, with
edema that is bright on T2-FS) is best seen on sagittal series; a meniscal tear (a cleft
through the dark meniscus body that runs along the slice direction of coronal series, in a
torn segment whose fibrocartilage lights up on the short-TE coronal T1 and stays dark on
the long-TE fat-saturated series) is best seen on coronal series. Every abnormal
exam also carries an effusion, a bone bruise and/or a cartilage defect, visible in all
planes, so that `abnormal` is more than "ACL or meniscus".

Knee frame: x = left-right (+x lateral), y = anterior(+)-posterior, z = superior(+)-
inferior, in units where the in-plane field of view spans [-1, 1]. The joint line is near
z = 0. The pose of each exam maps this frame into the scanner frame in which the three
slice grids are fixed.

Determinism: an exam depends only on (seed, case index, labels), through
`np.random.default_rng([seed, case_index])`, so it is the same however many others are
made alongside it, and its anatomy, noise and lesion parameters come from separate
streams: the same exam with and without a tear differs only by the tear.
"""

from .dataset import case_id, make_dataset
from .exam import REAL_SLICE_RANGES, draw_slice_counts, exam_rng, make_exam
from .labels import COMBINATIONS, draw_case_labels, draw_split_labels
from .tissues import FINDINGS

__all__ = [
    "COMBINATIONS",
    "FINDINGS",
    "REAL_SLICE_RANGES",
    "case_id",
    "draw_case_labels",
    "draw_slice_counts",
    "draw_split_labels",
    "exam_rng",
    "make_dataset",
    "make_exam",
]
