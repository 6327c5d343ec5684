"""Painting the phantom's tissues onto a rectilinear grid of sample points.

Every structure is an analytic shape in the spine's local frame: ``x`` across, ``v`` the
distance behind the posterior wall of the vertebral bodies (``y - posterior_wall_y(z)``),
``z`` up. Shapes are painted in anatomical order, later ones over earlier ones, each only
inside its own bounding box. Only additions, multiplications, divisions and comparisons
are used, so the labels are the same on every machine.
"""

from __future__ import annotations

import numpy as np

from mri_pipeline.imaging.anatomy import (
    CONUS_TIP_Z,
    DISCS,
    SACRUM_TOP_Z,
    THECAL_SAC_END_Z,
    VERTEBRAE,
    Disc,
    FloatArray,
    PhantomCase,
    Tissue,
    Vertebra,
    disc,
    vertebra,
)
from mri_pipeline.imaging.canvas import INF, Canvas, Region

_DISC_MATERIAL = (Tissue.ANNULUS, Tissue.NUCLEUS, Tissue.DEGENERATE_NUCLEUS)
_BONE = (Tissue.MARROW, Tissue.CORTEX, Tissue.POSTERIOR_BONE, Tissue.OEDEMA)
_SOFT_INSIDE = (Tissue.VISCERA, Tissue.MUSCLE, Tissue.FAT)

# Transverse process length (from the midline) by vertebra; thoracic ones are short.
_TRANSVERSE = {"L1": 38.0, "L2": 42.0, "L3": 46.0, "L4": 42.0, "L5": 36.0}
_DEGENERATE = {
    PhantomCase.NORMAL: (),
    PhantomCase.HERNIATION_L4_L5: ("L4-L5",),
    PhantomCase.STENOSIS_L3_L5: ("L3-L4", "L4-L5", "L5-S1"),
    PhantomCase.FRACTURE_L1: ("L4-L5", "L5-S1"),
}
_STENOTIC = {PhantomCase.STENOSIS_L3_L5: ("L3-L4", "L4-L5")}
# Cauda equina roots: positions within the thecal sac as fractions of its half-axes,
# behind its middle (supine patients' roots lie dependent, that is posterior).
_ROOTS = (
    (-0.62, 0.35),
    (-0.38, 0.35),
    (-0.12, 0.35),
    (0.12, 0.35),
    (0.38, 0.35),
    (0.62, 0.35),
    (-0.45, 0.68),
    (-0.2, 0.68),
    (0.2, 0.68),
    (0.45, 0.68),
)
_SAC_TAPER_START_Z = -80.0  # the thecal sac narrows from the L5-S1 level down to S2
_FRACTURE_SHORTENING = 0.38  # of L1's height, at its anterior wall


def _clip01(values: FloatArray) -> FloatArray:
    return np.minimum(np.maximum(values, 0.0), 1.0)


def _squircle(p: FloatArray, q: FloatArray) -> FloatArray:
    """≤ 1 inside a rounded rectangle between an ellipse and a square (vertebral sections)."""
    p2 = p * p
    q2 = q * q
    return 0.5 * (p2 + q2) + 0.5 * (p2 * p2 + q2 * q2)


class Painter:
    """Paints one case of the phantom onto a canvas."""

    def __init__(self, case: PhantomCase, canvas: Canvas) -> None:
        self.case = case
        self.canvas = canvas
        self.stenotic = tuple(disc(name) for name in _STENOTIC.get(case, ()))
        self.l1 = vertebra("L1")

    def paint(self) -> None:
        self._body()
        self._trunk_muscles_and_vessels()
        for level in self._lumbar_discs():
            self._foramen(level)
        for level in DISCS:
            if not level.lower.sacral:
                self._facets_and_flavum(level)
        for body in VERTEBRAE:
            if not body.sacral:
                self._posterior_elements(body)
        self._sacrum()
        for body in VERTEBRAE:
            self._vertebral_body(body)
        for level in DISCS:
            self._disc(level)
        self._canal()
        for level in self._lumbar_discs():
            self._exiting_roots(level)
        if self.case is PhantomCase.HERNIATION_L4_L5:
            self._herniation(disc("L4-L5"))

    @staticmethod
    def _lumbar_discs() -> list[Disc]:
        names = ("T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
        return [disc(name) for name in names]

    # Soft tissues -------------------------------------------------------------------

    def _body(self) -> None:
        c = self.canvas
        x = c.x[None, :]
        y = c.y[:, None]
        section = np.zeros((c.y.size, c.x.size), dtype=np.uint8)
        section[(x / 165.0) ** 2 + (y / 112.0) ** 2 <= 1.0] = Tissue.SUBCUTANEOUS_FAT
        section[(x / 150.0) ** 2 + ((y + 4.0) / 92.0) ** 2 <= 1.0] = Tissue.MUSCLE
        section[(x / 142.0) ** 2 + ((y + 4.0) / 84.0) ** 2 <= 1.0] = Tissue.VISCERA
        c.labels[:] = section[None, :, :]

    def _trunk_muscles_and_vessels(self) -> None:
        c = self.canvas
        r = c.spine_region((-70.0, 70.0), (-57.0, -11.0), (-INF, INF))
        if r is not None:
            retroperitoneal = (r.x / 70.0) ** 2 + ((r.v + 34.0) / 22.0) ** 2 <= 1.0
            r.paint(retroperitoneal, Tissue.FAT, within=[Tissue.VISCERA])
        r = c.spine_region((-58.0, 58.0), (-35.0, 3.0), (-INF, 95.0))
        if r is not None:
            psoas = np.minimum(np.maximum((95.0 - r.z) * 0.13, 0.0), 21.0)
            psoas_x = 26.0 + 0.5 * psoas
            inside = (r.ax - psoas_x) ** 2 + ((r.v + 16.0) / 0.85) ** 2 <= psoas * psoas
            r.paint(inside, Tissue.MUSCLE)
        r = c.spine_region((-71.0, 71.0), (0.0, 16.0), (-60.0, 100.0))
        if r is not None:
            quadratus = ((r.ax - 58.0) / 13.0) ** 2 + ((r.v - 8.0) / 8.0) ** 2 <= 1.0
            r.paint(quadratus, Tissue.MUSCLE, within=_SOFT_INSIDE)
        r = c.spine_region((-50.0, 50.0), (15.0, 65.0), (-INF, INF))
        if r is not None:
            erector = ((r.ax - 29.0) / 21.0) ** 2 + ((r.v - 40.0) / 25.0) ** 2 <= 1.0
            r.paint(erector, Tissue.MUSCLE, within=_SOFT_INSIDE)
        self._vessels()

    def _vessels(self) -> None:
        """Aorta and vena cava, dividing into the iliac vessels at L4 and L5."""
        r = self.canvas.spine_region((-90.0, 90.0), (-55.0, -28.0), (-INF, INF))
        if r is None:
            return
        x, v, z = r.x, r.v, r.z
        below = np.maximum(-35.0 - z, 0.0)
        aorta = (z > -35.0) & ((x - 14.0) ** 2 + (v + 44.0) ** 2 <= 100.0)
        left_iliac = (z <= -35.0) & ((x - 14.0 - 0.45 * below) ** 2 + (v + 44.0) ** 2 <= 42.0)
        right_iliac = (z <= -35.0) & ((x - 14.0 + 0.75 * below) ** 2 + (v + 44.0) ** 2 <= 42.0)
        vein_below = np.maximum(-50.0 - z, 0.0)
        cava = (z > -50.0) & ((x + 18.0) ** 2 + (v + 40.0) ** 2 <= 121.0)
        iliac_veins = (z <= -50.0) & (
            ((x + 18.0 - 0.9 * vein_below) ** 2 + (v + 38.0) ** 2 <= 49.0)
            | ((x + 18.0 + 0.5 * vein_below) ** 2 + (v + 38.0) ** 2 <= 49.0)
        )
        vessels = aorta | left_iliac | right_iliac | cava | iliac_veins
        r.paint(vessels, Tissue.VESSEL, within=[Tissue.VISCERA, Tissue.FAT])

    # Posterior elements ---------------------------------------------------------------

    def _stenosis_at(self, z: FloatArray) -> FloatArray:
        """0 away from a stenotic disc, rising to 1 at its middle."""
        weight: FloatArray = np.zeros_like(z)
        for level in self.stenotic:
            s = (z - level.z_center) / 12.0
            bump = _clip01(1.0 - s * s)
            weight = np.maximum(weight, bump * bump)
        return weight

    def _foramen(self, level: Disc) -> None:
        zc = level.z_center + 3.0
        r = self.canvas.spine_region((-30.0, 30.0), (-2.0, 14.0), (zc - 10.0, zc + 10.0))
        if r is None:
            return
        inside = ((r.ax - 21.0) / 7.0) ** 2 + ((r.v - 6.0) / 6.5) ** 2 + ((r.z - zc) / 10.0) ** 2
        r.paint(inside <= 1.0, Tissue.FAT)

    def _facets_and_flavum(self, level: Disc) -> None:
        zd = level.z_center
        r = self.canvas.spine_region((-30.0, 30.0), (10.0, 40.0), (zd - 18.0, zd + 18.0))
        if r is None:
            return
        flavum = (r.ax <= 12.0) & (r.v >= 19.0) & (r.v <= 24.0)
        r.paint(flavum & (r.z >= zd - 2.0) & (r.z <= zd + 10.0), Tissue.LIGAMENT)
        hypertrophy = 1.35 if level in self.stenotic else 1.0
        centre = 15.5 if level in self.stenotic else 17.0
        dx = r.ax - centre
        dv = r.v - 24.0
        dz = r.z - (zd + 3.0)
        semi_x, semi_v, semi_z = 6.0 * hypertrophy, 7.0 * hypertrophy, 11.0 * hypertrophy
        facet = (dx / semi_x) ** 2 + (dv / semi_v) ** 2 + (dz / semi_z) ** 2 <= 1.0
        r.paint(facet, Tissue.POSTERIOR_BONE)
        r.paint(facet & (np.abs(dx + 0.35 * dv) < 0.7), Tissue.FACET_FLUID)

    def _posterior_elements(self, body: Vertebra) -> None:
        zc, h = body.z_center, body.height
        r = self.canvas.spine_region((-50.0, 50.0), (-2.0, 56.0), (zc - h - 12.0, zc + h))
        if r is None:
            return
        ax, v, z = r.ax, r.v, r.z
        pedicle = ((ax - 15.5) / 4.5) ** 2 + ((z - zc - 0.2 * h) / (0.3 * h)) ** 2 <= 1.0
        r.paint(pedicle & (v >= -1.0) & (v <= 18.0), Tissue.POSTERIOR_BONE)
        lamina_bottom = zc - 0.35 * h - 0.5 * (v - 17.0)
        lamina = (ax <= 16.5) & (v >= 17.0) & (v <= 25.0)
        r.paint(lamina & (z >= lamina_bottom) & (z <= zc + 0.45 * h), Tissue.POSTERIOR_BONE)
        slope = 0.3 * (v - 22.0)
        spinous = (ax <= 3.5) & (v >= 22.0) & (v <= 54.0)
        spinous_z = (z >= zc - 0.45 * h - slope) & (z <= zc + 0.3 * h - slope)
        r.paint(spinous & spinous_z, Tissue.POSTERIOR_BONE)
        reach = _TRANSVERSE.get(body.name, 28.0)
        transverse = (ax >= 15.0) & (ax <= reach) & (v >= 12.0) & (v <= 20.0)
        r.paint(transverse & (z >= zc - 4.0) & (z <= zc + 5.0), Tissue.POSTERIOR_BONE)

    def _sacrum(self) -> None:
        s1, s5 = vertebra("S1"), vertebra("S5")
        r = self.canvas.spine_region((-56.0, 56.0), (-40.0, 20.0), (s5.z_inferior, s1.z_superior))
        if r is None:
            return
        ax, v, z = r.ax, r.v, r.z
        depth = s1.z_superior - z  # ≥ 0 inside the sacrum
        ala_reach = np.maximum(52.0 - 0.35 * depth, 0.0)
        ala = (ax <= ala_reach) & (v >= -28.0 + 0.15 * depth) & (v <= 2.0)
        r.paint(ala & (z <= s1.z_superior - 3.0 - 0.1 * (ax - 25.0)), Tissue.MARROW)
        arch = (ax <= 26.0 - 0.12 * depth) & (v >= 0.0) & (v <= 17.0 - 0.05 * depth)
        r.paint(arch & (z <= s1.z_superior - 6.0), Tissue.POSTERIOR_BONE)

    # Vertebral bodies and discs ---------------------------------------------------------

    def _spine_z(self, r: Region) -> FloatArray:
        """The height at which a point of the anterior column is read in the intact spine.

        Only the fracture case differs: L1's anterior height is shortened by up to
        ``_FRACTURE_SHORTENING`` of its height, its body squeezed evenly, and everything
        above follows it down in front (a kyphotic wedge); behind the posterior wall
        nothing moves.
        """
        z = np.broadcast_to(r.z, r.v.shape)
        if self.case is not PhantomCase.FRACTURE_L1:
            return z
        bottom, height = self.l1.z_inferior, self.l1.height
        shortening = _FRACTURE_SHORTENING * height * _clip01(-r.v / (2.0 * self.l1.half_depth))
        squeezed_top = bottom + height - shortening
        inside_body = bottom + (z - bottom) * (height / (height - shortening))
        result: FloatArray = np.where(
            z <= bottom, z, np.where(z < squeezed_top, inside_body, z + shortening)
        )
        return result

    def _vertebral_body(self, body: Vertebra) -> None:
        a, b = body.half_width, body.half_depth
        pad = 12.0 if body.z_inferior >= self.l1.z_inferior else 1.0
        z_range = (body.z_inferior - pad, body.z_superior + 1.0)
        r = self.canvas.spine_region((-a - 1.0, a + 1.0), (-2.0 * b - 1.0, 1.0), z_range)
        if r is None:
            return
        ze = self._spine_z(r)
        q = (r.v + b) / b
        outline = (_squircle(r.x / a, q) <= 1.0) & (ze >= body.z_inferior)
        outline &= ze <= body.z_superior
        r.paint(outline, Tissue.CORTEX)
        inner_a, inner_b = a - 1.6, b - 1.6
        core = _squircle(r.x / inner_a, (r.v + b) / inner_b) <= 1.0
        core &= (ze >= body.z_inferior + 1.2) & (ze <= body.z_superior - 1.2)
        r.paint(core, Tissue.MARROW)
        if self.case is PhantomCase.FRACTURE_L1 and body == self.l1:
            top, h = body.z_superior, body.height
            r.paint(core & (ze >= body.z_inferior + 0.3 * h), Tissue.OEDEMA)
            r.paint(core & (ze >= top - 6.0) & (ze <= top - 4.0), Tissue.FRACTURE_LINE)

    def _disc(self, level: Disc) -> None:
        upper, lower = level.upper, level.lower
        bulge = 2.8 if level in self.stenotic else 0.8
        a = (upper.half_width + lower.half_width) / 2 + bulge
        b = (upper.half_depth + lower.half_depth) / 2 + bulge
        centre_v = -(upper.half_depth + lower.half_depth) / 2
        pad = 12.0 if lower.z_inferior >= self.l1.z_inferior else 1.0
        z_range = (level.z_inferior - pad, level.z_superior + 1.0)
        r = self.canvas.spine_region(
            (-a - 1.0, a + 1.0), (centre_v - b - 1.0, bulge + 1.0), z_range
        )
        if r is None:
            return
        ze = self._spine_z(r)
        section = _squircle(r.x / a, (r.v - centre_v) / b) <= 1.0
        r.paint(section & (ze >= level.z_inferior) & (ze <= level.z_superior), Tissue.ANNULUS)
        if upper.sacral:
            return  # sacral discs are fused rudiments: a thin annulus-like line
        nucleus_v = centre_v + 0.1 * b
        half_height = 0.36 * level.height
        nucleus = (
            (r.x / (0.6 * a)) ** 2
            + ((r.v - nucleus_v) / (0.5 * b)) ** 2
            + ((ze - level.z_center) / half_height) ** 2
        ) <= 1.0
        degenerate = level.name in _DEGENERATE[self.case]
        r.paint(nucleus, Tissue.DEGENERATE_NUCLEUS if degenerate else Tissue.NUCLEUS)

    # Canal and nerves --------------------------------------------------------------------

    def _canal(self) -> None:
        r = self.canvas.spine_region((-16.0, 16.0), (-1.0, 25.0), (-INF, INF))
        if r is None:
            return
        x, v, z = r.x, r.v, r.z
        lumbar = z >= SACRUM_TOP_Z
        bony = ((x / 13.0) ** 2 + ((v - 11.0) / 10.0) ** 2 <= 1.0) & lumbar
        r.paint(bony & (v < 5.0), Tissue.EPIDURAL_VEINS, sparing=_DISC_MATERIAL)
        r.paint(bony & (v >= 5.0), Tissue.FAT, sparing=_DISC_MATERIAL)
        stenosis = self._stenosis_at(z)
        flavum_level = np.zeros(z.shape, dtype=np.bool_)
        for level in DISCS:
            if not level.lower.sacral:
                flavum_level |= (z >= level.z_center - 3.0) & (z <= level.z_center + 12.0)
        r.paint(bony & flavum_level & (v > 17.5 - 8.0 * stenosis), Tissue.LIGAMENT)
        # The sacral canal: fat around the end of the sac and the sacral roots.
        depth = np.maximum(SACRUM_TOP_Z - z, 0.0)
        sacral_half_width = np.maximum(12.0 - 0.07 * depth, 5.0)
        sacral_half_depth = np.maximum(7.5 - 0.05 * depth, 3.0)
        sacral_centre = 9.5 - 0.02 * depth
        sacral_radius = (x / sacral_half_width) ** 2 + (
            (v - sacral_centre) / sacral_half_depth
        ) ** 2
        sacral = sacral_radius <= 1.0
        r.paint(sacral & ~lumbar & (z >= vertebra("S4").z_center), Tissue.FAT)
        # The thecal sac, narrowed where the canal is stenotic and tapering in the sacrum.
        taper = _clip01((z - THECAL_SAC_END_Z) / (_SAC_TAPER_START_Z - THECAL_SAC_END_Z))
        half_width = 10.5 * (1.0 - 0.5 * stenosis) * (0.3 + 0.7 * taper)
        half_depth = 7.5 * (1.0 - 0.58 * stenosis) * (0.45 + 0.55 * taper)
        centre = 11.0 - 2.0 * (1.0 - taper)
        dx, dv = x, v - centre
        sac = (dx * half_depth) ** 2 + (dv * half_width) ** 2 <= (half_width * half_depth) ** 2
        r.paint(sac & (z >= THECAL_SAC_END_Z), Tissue.CSF, sparing=_DISC_MATERIAL)
        cord_scale = _clip01((z - CONUS_TIP_Z) / 25.0)
        cord_x, cord_v = 4.5 * cord_scale, 3.8 * cord_scale
        cord = (dx * cord_v) ** 2 + ((dv - 0.5) * cord_x) ** 2 <= (cord_x * cord_v) ** 2
        r.paint(cord & (z > CONUS_TIP_Z), Tissue.NEURAL)
        roots_z = (z <= CONUS_TIP_Z + 8.0) & (z >= vertebra("S3").z_center)
        root_depth = np.where(z >= THECAL_SAC_END_Z, half_depth, sacral_half_depth)
        root_width = np.where(z >= THECAL_SAC_END_Z, half_width, sacral_half_width)
        for across, behind in _ROOTS:
            root = (dx - across * root_width) ** 2 + (dv - behind * root_depth) ** 2 <= 0.72
            r.paint(root & roots_z, Tissue.NEURAL, sparing=_DISC_MATERIAL)

    def _exiting_roots(self, level: Disc) -> None:
        zd = level.z_center
        r = self.canvas.spine_region((-30.0, 30.0), (0.0, 16.0), (zd, zd + 12.0))
        if r is None:
            return
        start = np.array([10.0, 10.0, zd + 8.0])
        end = np.array([25.0, 5.0, zd + 3.0])
        direction = end - start
        length2 = float(direction @ direction)
        px, pv, pz = r.ax - start[0], r.v - start[1], r.z - start[2]
        t = _clip01((px * direction[0] + pv * direction[1] + pz * direction[2]) / length2)
        ex = px - t * direction[0]
        ev = pv - t * direction[1]
        ez = pz - t * direction[2]
        r.paint(ex * ex + ev * ev + ez * ez <= 4.0, Tissue.NEURAL, sparing=_BONE)

    def _herniation(self, level: Disc) -> None:
        """A left paracentral extrusion: through an annular tear into the canal, migrating
        down behind the body below."""
        zd = level.z_center
        r = self.canvas.spine_region((-10.0, 20.0), (-5.0, 16.0), (zd - 12.0, zd + 6.0))
        if r is None:
            return
        x, v, z = r.x, r.v, r.z
        fragment = ((x - 3.0) / 9.5) ** 2 + ((v - 6.0) / 7.0) ** 2 + ((z - zd + 2.0) / 8.0) ** 2
        neck = ((x - 2.0) / 6.0) ** 2 + (v / 3.0) ** 2 + ((z - zd) / 3.5) ** 2
        r.paint((fragment <= 1.0) | (neck <= 1.0), Tissue.HERNIATION, sparing=_BONE)
