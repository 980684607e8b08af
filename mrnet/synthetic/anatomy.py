"""The normal knee: per-exam anatomical variation and the layers of its bones, cartilage,
menisci, ligaments, tendons and soft tissue, kept apart from the findings planted into it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .shapes import (
    Band,
    Column,
    Difference,
    Ellipsoid,
    Intersection,
    Layer,
    Meniscus,
    MeniscusFrame,
    Notch,
    Shape,
    Slab,
    Union,
)
from .tissues import SOFT, Tissue


@dataclass(frozen=True)
class Anatomy:
    """Per-exam anatomical variation (sizes in knee units)."""

    body_scale: float
    subcutaneous_fat: float
    condyle_scale: float
    notch_half_width: float
    patella_z: float
    cartilage: float
    physiologic_fluid: float
    meniscus_scale: float
    acl_tilt: float


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    return Anatomy(
        body_scale=float(rng.uniform(0.92, 1.05)),
        subcutaneous_fat=float(rng.uniform(0.06, 0.13)),
        condyle_scale=float(rng.uniform(0.95, 1.05)),
        notch_half_width=float(rng.uniform(0.085, 0.11)),
        patella_z=float(rng.uniform(0.26, 0.36)),
        cartilage=float(rng.uniform(0.03, 0.042)),
        physiologic_fluid=float(rng.uniform(0.006, 0.022)),
        meniscus_scale=float(rng.uniform(0.94, 1.06)),
        acl_tilt=float(rng.uniform(-0.03, 0.03)),
    )


CORTEX_THICKNESS = 0.02
TIBIA_TOP = -0.06  # z of the tibial plateau bone surface
MENISCUS_HEIGHT = 0.14


def femoral_condyles(an: Anatomy) -> list[Ellipsoid]:
    """Medial and lateral condyles, lowest point just above the tibial cartilage, curving up
    over the menisci at the periphery of each compartment."""
    r = (0.19 * an.condyle_scale, 0.36 * an.condyle_scale, 0.19 * an.condyle_scale)
    return [Ellipsoid((side * 0.24, -0.06, r[2] + 0.01), r) for side in (-1.0, 1.0)]


def condyle_articular_region() -> tuple[Shape, Shape]:
    """Where condyles carry cartilage (and a fluid film): the distal and posterior surfaces."""
    return Union((Slab(2, -1.0, 0.16), Slab(1, -1.0, -0.14))), Slab(2, -1.0, 0.28)


def femoral_shaft() -> Column:
    return Column((0.0, -0.02), (0.16, 0.3, 0.5, 1.6), (0.42, 0.4, 0.27, 0.25), (0.3, 0.28, 0.22, 0.21))


def tibia_column() -> Column:
    return Column(
        (0.0, -0.05),
        (-1.6, -0.5, -0.28, -0.12, TIBIA_TOP - 0.02, TIBIA_TOP),
        (0.26, 0.27, 0.42, 0.54, 0.54, 0.5),
        (0.23, 0.24, 0.33, 0.38, 0.38, 0.34),
    )


def menisci(an: Anatomy) -> dict[str, Meniscus]:
    """Medial (-x, C-shaped, wide opening) and lateral (+x, nearly O-shaped) menisci."""
    s = an.meniscus_scale
    base = TIBIA_TOP + an.cartilage * 0.9
    return {
        "medial": Meniscus(
            MeniscusFrame((-0.28, -0.05), 0.27 * s, 0.32 * s), 0.4, base, MENISCUS_HEIGHT * s, 0.0, math.radians(48)
        ),
        "lateral": Meniscus(
            MeniscusFrame((0.28, -0.05), 0.26 * s, 0.3 * s), 0.4, base, MENISCUS_HEIGHT * s, math.pi, math.radians(32)
        ),
    }


def acl_band(an: Anatomy) -> Band:
    """From the medial wall of the lateral condyle (posterior, high) to the anterior tibial spine."""
    nw = an.notch_half_width
    return Band((0.75 * nw, -0.21, 0.17 + an.acl_tilt), (-0.02, 0.10, TIBIA_TOP - 0.005), 0.052, scale=(1.1, 1.0, 1.0))


def pcl_bands(an: Anatomy) -> list[Band]:
    """Two segments, so the PCL arches posteriorly as it does in a sagittal image."""
    nw = an.notch_half_width
    top, bend, bottom = (-0.6 * nw, 0.03, 0.15), (-0.02, -0.19, 0.13), (0.0, -0.34, -0.13)
    return [Band(top, bend, 0.056), Band(bend, bottom, 0.056)]


def bone_layers(outer: Sequence[Shape], inner: Sequence[Shape]) -> list[Layer]:
    """Cortex everywhere in the bone, then marrow inside: all cortices first so unions have no seams."""
    return [Layer(Tissue.CORTEX, s) for s in outer] + [Layer(Tissue.MARROW, s) for s in inner]


def soft_tissue_layers(an: Anatomy) -> list[Layer]:
    """Skin-to-bone soft tissue: fat everywhere inside the body, muscle bellies above, below and
    behind the joint (at the joint line itself there is mostly fat, tendon and ligament)."""
    b = an.body_scale
    body = Column((0.0, -0.02), (-5.0, 5.0), (0.72 * b, 0.72 * b), (0.7 * b, 0.7 * b))
    fat = an.subcutaneous_fat
    return [
        Layer(Tissue.FAT, body),
        Layer(Tissue.MUSCLE, Ellipsoid((0.0, -0.04, 1.15), (0.72 * b - fat, 0.7 * b - fat, 0.88))),  # thigh
        Layer(Tissue.MUSCLE, Ellipsoid((0.0, -0.1, -1.2), (0.72 * b - fat, 0.62 * b - fat, 0.88))),  # leg
        *[
            Layer(Tissue.MUSCLE, Ellipsoid((side * 0.22, -0.46, -0.32), (0.2, 0.17, 0.58)), over=(Tissue.FAT,))
            for side in (-1.0, 1.0)
        ],  # gastrocnemius heads
        Layer(Tissue.FAT, Ellipsoid((0.0, -0.45, 0.1), (0.2, 0.16, 0.42)), over=SOFT),  # popliteal fossa
        Layer(Tissue.FAT, Ellipsoid((0.0, 0.34, 0.5), (0.32, 0.14, 0.3)), over=SOFT),  # prefemoral fat pad
        # popliteal vessels
        Layer(Tissue.VESSEL, Column((0.03, -0.5), (-5.0, 5.0), (0.04, 0.04), (0.045, 0.045))),
    ]


def tibia_layers(an: Anatomy) -> list[Layer]:
    col = tibia_column()
    spines = [Ellipsoid((side * 0.045, -0.02, TIBIA_TOP), (0.04, 0.07, 0.045)) for side in (-1.0, 1.0)]
    plateau_cartilage = Difference(
        Column((0.0, -0.05), (TIBIA_TOP, TIBIA_TOP + an.cartilage), (0.5, 0.5), (0.35, 0.35)),
        Slab(0, -0.09, 0.09),
    )
    fibula = Ellipsoid((0.44, -0.3, -0.34), (0.1, 0.1, 0.16))
    layers = [Layer(Tissue.CARTILAGE, plateau_cartilage)]
    layers += bone_layers(
        [col, *spines, fibula],
        [col.shrunk(CORTEX_THICKNESS), *(s.grown(-CORTEX_THICKNESS) for s in spines), fibula.grown(-CORTEX_THICKNESS)],
    )
    layers.append(Layer(Tissue.CORTEX, Slab(2, -0.235, -0.222), over=(Tissue.MARROW,)))  # physeal scar
    return layers


def femur_layers(an: Anatomy) -> list[Layer]:
    condyles = femoral_condyles(an)
    shaft = femoral_shaft()
    notch = Notch(an.notch_half_width, 0.14, 0.3, 0.12, -0.6, -0.05)
    cartilage = [Intersection((c.grown(an.cartilage), *condyle_articular_region())) for c in condyles]
    trochlea = Intersection((shaft.grown(an.cartilage), Slab(1, 0.12, 1.0), Slab(2, 0.0, 0.4)))
    cartilage.append(trochlea)
    over = (*SOFT, Tissue.MENISCUS, Tissue.MENISCAL_TEAR, Tissue.MENISCAL_SIGNAL)
    layers = [Layer(Tissue.CARTILAGE, c, over=over) for c in cartilage]
    layers += bone_layers(
        [shaft, *condyles], [shaft.shrunk(CORTEX_THICKNESS), *(c.grown(-CORTEX_THICKNESS) for c in condyles)]
    )
    layers.append(Layer(Tissue.CORTEX, Slab(2, 0.33, 0.343), over=(Tissue.MARROW,)))  # physeal scar
    layers.append(Layer(Tissue.CORTEX, notch.grown(CORTEX_THICKNESS), over=(Tissue.MARROW,)))
    layers.append(Layer(Tissue.FAT, notch, over=(Tissue.CORTEX, Tissue.MARROW, Tissue.CARTILAGE)))
    return layers


def patella_layers(an: Anatomy) -> list[Layer]:
    patella = Ellipsoid((0.0, 0.5, an.patella_z), (0.24, 0.085, 0.165))
    cartilage = Intersection((patella.grown(an.cartilage), Slab(1, -1.0, 0.5)))
    bone = bone_layers([patella], [patella.grown(-CORTEX_THICKNESS)])
    return [Layer(Tissue.CARTILAGE, cartilage, over=SOFT), *bone]


def tendon_and_ligament_layers(an: Anatomy) -> list[Layer]:
    pz = an.patella_z
    bands = [
        Band((0.0, 0.53, pz + 0.15), (0.0, 0.47, 1.6), 0.035, scale=(0.17, 1.0, 1.0)),
        Band((0.0, 0.54, pz - 0.15), (0.0, 0.26, -0.4), 0.035, scale=(0.25, 1.0, 1.0)),
        Band((-0.46, -0.04, 0.3), (-0.56, -0.03, 0.0), 0.026, scale=(1.0, 0.3, 1.0)),
        Band((-0.56, -0.03, 0.0), (-0.43, -0.0, -0.4), 0.026, scale=(1.0, 0.3, 1.0)),
        Band((0.5, -0.12, 0.24), (0.5, -0.27, -0.24), 0.026),
    ]
    return [Layer(Tissue.LIGAMENT, band, over=SOFT) for band in bands]
