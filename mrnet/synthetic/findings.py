"""Findings and the whole phantom of one exam: lesion parameters are drawn in a fixed order and
planted as extra layers, so an exam with and without a finding differs by that finding only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .anatomy import (
    Anatomy,
    acl_band,
    condyle_articular_region,
    femoral_condyles,
    femur_layers,
    menisci,
    patella_layers,
    pcl_bands,
    soft_tissue_layers,
    tendon_and_ligament_layers,
    tibia_layers,
)
from .labels import Labels
from .shapes import Band, Ellipsoid, Intersection, Layer, MeniscalCleft, MeniscalSegment, OrientedEllipsoid, Shape
from .tissues import SOFT, Tissue


@dataclass(frozen=True)
class Effusion:
    pouch_thickness: float
    pouch_height: float
    film_thickness: float
    posterior_recess: bool


@dataclass(frozen=True)
class AclTear:
    center_t: float  # where along the band the gap is (0 femoral end, 1 tibial end)
    gap_half: float  # in band-parameter units
    edema_radii: tuple[float, float, float]  # along the band, across it in the y-z plane, along x
    wave_amp: float
    wave_cycles: float
    wave_phase: float


@dataclass(frozen=True)
class MeniscalTear:
    side: str  # "medial" | "lateral"
    kind: str  # "vertical" | "horizontal"
    arc_offset: float  # from the outward (body) direction of the compartment, radians
    arc_half_angle: float
    position: float
    thickness: float
    rho_end: float
    fragment: bool
    fragment_y: float


@dataclass(frozen=True)
class Findings:
    acl_tear: AclTear | None = None
    meniscal_tear: MeniscalTear | None = None
    effusion: Effusion | None = None
    bone_bruises: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = ()
    cartilage_defect: tuple[tuple[float, float, float], float] | None = None


def draw_acl_tear(rng: np.random.Generator) -> AclTear:
    proximal = rng.random() < 0.25  # femoral-side tears leave a short or absent proximal stump
    return AclTear(
        center_t=float(rng.uniform(0.15, 0.3) if proximal else rng.uniform(0.38, 0.64)),
        gap_half=float(rng.uniform(0.14, 0.22)),
        edema_radii=(float(rng.uniform(0.12, 0.17)), float(rng.uniform(0.09, 0.12)), float(rng.uniform(0.075, 0.1))),
        wave_amp=float(rng.uniform(0.012, 0.03)),
        wave_cycles=float(rng.uniform(1.5, 3.0)),
        wave_phase=float(rng.uniform(0.0, 2 * math.pi)),
    )


def draw_meniscal_tear(rng: np.random.Generator) -> MeniscalTear:
    kind = "vertical" if rng.random() < 0.55 else "horizontal"
    posterior_horn = rng.random() < 0.15
    return MeniscalTear(
        side="medial" if rng.random() < 0.6 else "lateral",
        kind=kind,
        arc_offset=float(rng.uniform(1.1, 1.5) if posterior_horn else rng.uniform(-0.6, 0.6)),
        arc_half_angle=float(rng.uniform(math.radians(50), math.radians(80))),
        position=float(rng.uniform(0.66, 0.84) if kind == "vertical" else rng.uniform(0.4, 0.6)),
        thickness=float(rng.uniform(0.055, 0.075) if kind == "vertical" else rng.uniform(0.05, 0.065)),
        rho_end=float(rng.uniform(0.8, 0.95)),
        fragment=bool(rng.random() < 0.35),
        fragment_y=float(rng.uniform(-0.16, 0.0)),
    )


def draw_effusion(rng: np.random.Generator) -> Effusion:
    return Effusion(
        pouch_thickness=float(rng.uniform(0.055, 0.1)),
        pouch_height=float(rng.uniform(0.22, 0.3)),
        film_thickness=float(rng.uniform(0.025, 0.045)),
        posterior_recess=bool(rng.random() < 0.5),
    )


def draw_bone_bruises(rng: np.random.Generator) -> tuple:
    """One or two marrow-edema blobs near the joint surfaces, where contusions occur."""
    sites = [(0.25, 0.05, 0.08), (0.3, -0.22, -0.13), (-0.25, 0.0, 0.08), (-0.3, -0.15, -0.13)]
    count = 1 if rng.random() < 0.7 else 2
    picks = rng.choice(len(sites), size=count, replace=False)
    bruises = []
    for i in sorted(int(p) for p in picks):
        center = tuple(float(c + rng.uniform(-0.04, 0.04)) for c in sites[i])
        radii = tuple(float(r) for r in rng.uniform(0.075, 0.13, size=3))
        bruises.append((center, radii))
    return tuple(bruises)


def draw_cartilage_defect(rng: np.random.Generator) -> tuple[tuple[float, float, float], float]:
    if rng.random() < 0.3:  # patellar facet
        center = (float(rng.uniform(-0.12, 0.12)), 0.41, 0.0)  # z filled in from the patella height
    else:  # weight-bearing femoral condyle
        center = (float(rng.choice([-0.25, 0.25]) + rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.15, 0.1)), -0.015)
    return center, float(rng.uniform(0.06, 0.1))


def draw_findings(rng: np.random.Generator, labels: Labels) -> Findings:
    """Draw every finding's parameters in a fixed order, then keep those the labels call for.

    Drawing all of them regardless of the labels keeps the stream aligned, so an exam with
    and without a given finding differs by that finding only.
    """
    abnormal, acl, meniscus = labels
    acl_tear = draw_acl_tear(rng)
    meniscal_tear = draw_meniscal_tear(rng)
    effusion = draw_effusion(rng)
    bruises = draw_bone_bruises(rng)
    defect = draw_cartilage_defect(rng)
    has_effusion, has_bruise, has_defect = (rng.random(3) < (0.65, 0.5, 0.35)).tolist()
    if not (has_effusion or has_bruise):  # a cartilage defect alone is too small to carry `abnormal`
        if rng.random() < 0.5:
            has_effusion = True
        else:
            has_bruise = True
    if not abnormal:
        return Findings()
    return Findings(
        acl_tear=acl_tear if acl else None,
        meniscal_tear=meniscal_tear if meniscus else None,
        effusion=effusion if has_effusion else None,
        bone_bruises=bruises if has_bruise else (),
        cartilage_defect=defect if has_defect else None,
    )


def joint_fluid_layers(an: Anatomy, effusion: Effusion | None) -> list[Layer]:
    """Physiologic fluid film, or an effusion that distends the pouch and recesses."""
    tissue = Tissue.FLUID if effusion is None else Tissue.EFFUSION
    pouch = an.physiologic_fluid if effusion is None else effusion.pouch_thickness
    film = an.physiologic_fluid if effusion is None else effusion.film_thickness
    pouch_height = 0.18 if effusion is None else effusion.pouch_height
    suprapatellar_pouch = Ellipsoid((0.0, 0.42 - pouch / 2, 0.5), (0.3, 0.018 + pouch, pouch_height))
    shapes: list[Shape] = [suprapatellar_pouch]
    shapes += [Intersection((c.grown(an.cartilage + film), *condyle_articular_region())) for c in femoral_condyles(an)]
    if effusion is not None and effusion.posterior_recess:
        shapes += [Ellipsoid((side * 0.25, -0.44, 0.14), (0.15, 0.035 + pouch / 2, 0.16)) for side in (-1.0, 1.0)]
    return [Layer(tissue, s, over=SOFT) for s in shapes]


def acl_layers(an: Anatomy, tear: AclTear | None) -> list[Layer]:
    band = acl_band(an)
    if tear is None:
        return [Layer(Tissue.LIGAMENT, band, over=SOFT)]
    d = np.asarray(band.b) - np.asarray(band.a)
    along = d / np.linalg.norm(d)
    across = np.cross(along, (1.0, 0.0, 0.0))  # in the y-z plane, perpendicular to the band
    across /= np.linalg.norm(across)
    lax = Band(
        band.a,
        band.b,
        band.radius,
        band.scale,
        tear.wave_amp,
        tear.wave_cycles,
        tear.wave_phase,
        tuple(across),
        gap=(tear.center_t - tear.gap_half, tear.center_t + tear.gap_half),
    )
    along_radius = max(tear.edema_radii[0], tear.gap_half * band.length() + 0.03)
    edema = OrientedEllipsoid(
        tuple(band.point(tear.center_t)),
        (tuple(along), tuple(across), (1.0, 0.0, 0.0)),
        (along_radius, tear.edema_radii[1], tear.edema_radii[2]),
    )
    return [
        Layer(Tissue.ACL_TEAR, edema, over=SOFT),  # around the gap, sparing the PCL and the bones
        Layer(Tissue.LIGAMENT, lax, over=(*SOFT, Tissue.ACL_TEAR)),
    ]


def meniscus_layers(an: Anatomy, tear: MeniscalTear | None) -> list[Layer]:
    shapes = menisci(an)
    layers = [Layer(Tissue.MENISCUS, m, over=SOFT) for m in shapes.values()]
    if tear is None:
        return layers
    m = shapes[tear.side]
    outward = math.pi if tear.side == "medial" else 0.0
    sign = 1.0 if tear.side == "medial" else -1.0  # posterior horn offsets turn towards -y on both sides
    arc_angle = outward + sign * tear.arc_offset
    cleft = MeniscalCleft(m, tear.kind, arc_angle, tear.arc_half_angle, tear.position, tear.thickness, tear.rho_end)
    # Torn fibrocartilage around the cleft imbibes fluid: intermediate signal on short-TE
    # (coronal T1) images, hardly any on long-TE fat-saturated ones (sagittal T2, axial PD).
    segment = MeniscalSegment(m, arc_angle, tear.arc_half_angle)
    layers.append(Layer(Tissue.MENISCAL_SIGNAL, segment, over=(Tissue.MENISCUS,)))
    layers.append(Layer(Tissue.MENISCAL_TEAR, cleft, over=(Tissue.MENISCUS, Tissue.MENISCAL_SIGNAL)))
    if tear.fragment:  # a bucket-handle fragment flipped into the notch
        side = -1.0 if tear.side == "medial" else 1.0
        fragment = Ellipsoid((side * 0.035, tear.fragment_y, 0.035), (0.04, 0.12, 0.04))
        layers.append(Layer(Tissue.MENISCAL_FRAGMENT, fragment, over=SOFT))
    return layers


def other_finding_layers(an: Anatomy, findings: Findings) -> list[Layer]:
    layers = [Layer(Tissue.BONE_BRUISE, Ellipsoid(c, r), over=(Tissue.MARROW,)) for c, r in findings.bone_bruises]
    if findings.cartilage_defect is not None:
        (cx, cy, cz), radius = findings.cartilage_defect
        if cy > 0.3:  # patellar facet: follow the patella's height
            cz = an.patella_z
        layers.append(
            Layer(Tissue.CARTILAGE_DEFECT, Ellipsoid((cx, cy, cz), (radius, radius, radius)), over=(Tissue.CARTILAGE,))
        )
    return layers


def knee_layers(an: Anatomy, findings: Findings) -> list[Layer]:
    """The whole phantom as an ordered paint list (later layers win)."""
    return (
        soft_tissue_layers(an)
        + joint_fluid_layers(an, findings.effusion)
        + meniscus_layers(an, findings.meniscal_tear)
        + tibia_layers(an)
        + femur_layers(an)
        + patella_layers(an)
        + tendon_and_ligament_layers(an)
        + [Layer(Tissue.LIGAMENT, b, over=SOFT) for b in pcl_bands(an)]
        + acl_layers(an, findings.acl_tear)
        + other_finding_layers(an, findings)
    )
