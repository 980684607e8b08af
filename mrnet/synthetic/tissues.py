"""Tissue classes of the phantom and their signal in each series.

Each plane is its own sequence, so these tables are where a finding becomes plane-dependent.
"""

from __future__ import annotations

from enum import IntEnum


class Tissue(IntEnum):
    """Tissue classes of the phantom; lesions are their own classes so masks fall out of the labels."""

    AIR = 0
    FAT = 1
    MUSCLE = 2
    CORTEX = 3
    MARROW = 4
    CARTILAGE = 5
    FLUID = 6
    LIGAMENT = 7
    MENISCUS = 8
    VESSEL = 9
    EFFUSION = 10
    BONE_BRUISE = 11
    CARTILAGE_DEFECT = 12
    ACL_TEAR = 13
    MENISCAL_TEAR = 14
    MENISCAL_FRAGMENT = 15
    MENISCAL_SIGNAL = 16  # intrasubstance signal along a torn segment


# Finding name -> the tissue classes it plants.
FINDING_TISSUES: dict[str, tuple[Tissue, ...]] = {
    "acl_tear": (Tissue.ACL_TEAR,),
    "meniscal_tear": (Tissue.MENISCAL_TEAR, Tissue.MENISCAL_FRAGMENT, Tissue.MENISCAL_SIGNAL),
    "effusion": (Tissue.EFFUSION,),
    "bone_bruise": (Tissue.BONE_BRUISE,),
    "cartilage_defect": (Tissue.CARTILAGE_DEFECT,),
}
FINDINGS = tuple(FINDING_TISSUES)
# Task -> the findings that make it positive (abnormal: any of them).
TASK_FINDINGS: dict[str, tuple[str, ...]] = {
    "abnormal": FINDINGS,
    "acl": ("acl_tear",),
    "meniscus": ("meniscal_tear",),
}

SOFT = (Tissue.FAT, Tissue.MUSCLE, Tissue.FLUID, Tissue.EFFUSION)

# Relative signal of each tissue per series (before per-exam jitter), chosen like the real
# sequences: sagittal T2 fat-sat (fluid/edema bright, fat dark), coronal T1 (fat/marrow
# bright, fluid dark grey, short-TE meniscal signal intermediate), axial PD fat-sat (fluid
# bright). Lesion rows are where the plane dependence of the findings is set. The torn
# meniscal segment (MENISCAL_SIGNAL) is deliberately brighter on coronal T1 than any real
# tear: a meniscus is a few pixels tall at the demo's 64 px, and at a realistic signal a
# small AlexNet trained from scratch for a few epochs does not find it at all.
_T = Tissue
BASE_CONTRAST: dict[str, dict[Tissue, float]] = {
    "sagittal": {
        _T.AIR: 0.0,
        _T.FAT: 0.2,
        _T.MUSCLE: 0.32,
        _T.CORTEX: 0.03,
        _T.MARROW: 0.19,
        _T.CARTILAGE: 0.45,
        _T.FLUID: 0.95,
        _T.LIGAMENT: 0.05,
        _T.MENISCUS: 0.05,
        _T.VESSEL: 0.07,
        _T.EFFUSION: 0.95,
        _T.BONE_BRUISE: 0.75,
        _T.CARTILAGE_DEFECT: 0.92,
        _T.ACL_TEAR: 0.88,
        _T.MENISCAL_TEAR: 0.2,
        _T.MENISCAL_FRAGMENT: 0.05,
        _T.MENISCAL_SIGNAL: 0.1,
    },
    "coronal": {
        _T.AIR: 0.0,
        _T.FAT: 0.92,
        _T.MUSCLE: 0.36,
        _T.CORTEX: 0.03,
        _T.MARROW: 0.86,
        _T.CARTILAGE: 0.42,
        _T.FLUID: 0.16,
        _T.LIGAMENT: 0.06,
        _T.MENISCUS: 0.05,
        _T.VESSEL: 0.06,
        _T.EFFUSION: 0.16,
        _T.BONE_BRUISE: 0.30,
        _T.CARTILAGE_DEFECT: 0.16,
        _T.ACL_TEAR: 0.55,
        _T.MENISCAL_TEAR: 0.8,
        _T.MENISCAL_FRAGMENT: 0.05,
        _T.MENISCAL_SIGNAL: 2.5,
    },
    "axial": {
        _T.AIR: 0.0,
        _T.FAT: 0.2,
        _T.MUSCLE: 0.33,
        _T.CORTEX: 0.03,
        _T.MARROW: 0.2,
        _T.CARTILAGE: 0.5,
        _T.FLUID: 0.90,
        _T.LIGAMENT: 0.06,
        _T.MENISCUS: 0.05,
        _T.VESSEL: 0.08,
        _T.EFFUSION: 0.90,
        _T.BONE_BRUISE: 0.62,
        _T.CARTILAGE_DEFECT: 0.85,
        _T.ACL_TEAR: 0.2,
        _T.MENISCAL_TEAR: 0.14,
        _T.MENISCAL_FRAGMENT: 0.05,
        _T.MENISCAL_SIGNAL: 0.08,
    },
}
