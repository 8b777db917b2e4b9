"""MakeHuman macro phenotypes: which target files to blend, with which weights.

A phenotype is a dict of values in [0, 1]: gender (0 female, 1 male), age (0 baby,
0.1875 child, 0.5 young = 25 years, 1 old = 90 years), muscle, weight, height,
proportions (0.5 = none of the height / proportion targets) and race fractions
(african, asian, caucasian; summing to 1). The weights follow MakeHuman's macro modifier
rules: a target named by several categories gets the product of the per-category
linear-interpolation weights.
"""

from __future__ import annotations

import numpy as np

from human_body_prior.open_model.assets import MakeHumanAssets

_GENDERS = ("female", "male")
_AGES = (("baby", 0.0), ("child", 0.1875), ("young", 0.5), ("old", 1.0))
_LEVELS = {"muscle": ("minmuscle", "averagemuscle", "maxmuscle"),
           "weight": ("minweight", "averageweight", "maxweight")}
RACES = ("african", "asian", "caucasian")
# MakeHuman's symmetric "measure" proportion modifiers (folder, name); each has -decr/-incr targets
MEASURES = (
    ("arms", "lowerarm-length"), ("arms", "upperarm-circ"), ("arms", "upperarm-length"),
    ("feet", "ankle-circ"), ("hands", "wrist-circ"), ("legs", "calf-circ"), ("legs", "knee-circ"),
    ("legs", "lowerleg-height"), ("legs", "thigh-circ"), ("legs", "upperleg-height"),
    ("neck", "neck-circ"), ("neck", "neck-height"), ("torso", "bust-circ"),
    ("torso", "frontchest-dist"), ("torso", "hips-circ"), ("torso", "napetowaist-dist"),
    ("torso", "shoulder-dist"), ("torso", "underbust-circ"), ("torso", "waist-circ"),
    ("torso", "waisttohip-dist"),
)
# a measure value of +-1 moves the mesh by at most this much (decimetres): MakeHuman's full
# targets are far outside human variation (up to a metre for leg length)
MEASURE_MAX_SHIFT_DM = 0.5


def _age_weights(age: float) -> dict[str, float]:
    out = {name: 0.0 for name, _ in _AGES}
    for (lo, a0), (hi, a1) in zip(_AGES[:-1], _AGES[1:]):
        if a0 <= age <= a1:
            t = (age - a0) / (a1 - a0)
            out[lo], out[hi] = 1.0 - t, t
            return out
    raise ValueError(f"age must be in [0, 1], got {age}")


def _three_level_weights(value: float, names: tuple[str, str, str]) -> dict[str, float]:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{names[1]} value must be in [0, 1], got {value}")
    if value < 0.5:
        return {names[0]: 1.0 - 2 * value, names[1]: 2 * value, names[2]: 0.0}
    return {names[0]: 0.0, names[1]: 2.0 - 2 * value, names[2]: 2 * value - 1.0}


def _signed_pair(value: float, low: str, high: str) -> dict[str, float]:
    """0.5 -> neither; 1 -> full ``high``; 0 -> full ``low``."""
    return {low: max(0.0, 1.0 - 2 * value), high: max(0.0, 2 * value - 1.0)}


class MacroTargets:
    """All macro target files relevant to an age range, stacked densely.

    ``stack`` has shape (T, N, 3) (decimetres, all base-mesh vertices); ``names[t]`` is
    the file of target ``t``.
    """

    def __init__(self, assets: MakeHumanAssets, num_verts: int, ages=("child", "young", "old")):
        names = []
        for g in _GENDERS:
            for a in ages:
                for r in RACES:
                    names.append(f"targets/macrodetails/{r}-{g}-{a}.target.gz")
                for m in _LEVELS["muscle"]:
                    for w in _LEVELS["weight"]:
                        names.append(f"targets/macrodetails/universal-{g}-{a}-{m}-{w}.target.gz")
                        for h in ("minheight", "maxheight"):
                            names.append(f"targets/macrodetails/height/{g}-{a}-{m}-{w}-{h}.target.gz")
                        for p in ("idealproportions", "uncommonproportions"):
                            names.append(f"targets/macrodetails/proportions/{g}-{a}-{m}-{w}-{p}.target.gz")
        for folder, name in MEASURES:
            for sign in ("decr", "incr"):
                names.append(f"targets/{folder}/measure-{name}-{sign}.target.gz")
        self.ages = tuple(ages)
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        self.stack = np.stack([assets.target(n, num_verts) for n in names]).astype(np.float64)
        self.measure_scale = {}
        for folder, name in MEASURES:
            peak = max(np.abs(self.stack[self.index[f"targets/{folder}/measure-{name}-{s}.target.gz"]]).max()
                       for s in ("decr", "incr"))
            self.measure_scale[name] = MEASURE_MAX_SHIFT_DM / peak

    def weights(self, phen: dict[str, float]) -> np.ndarray:
        """(T,) blend weights of ``stack`` for one phenotype."""
        gw = {"female": 1.0 - phen["gender"], "male": phen["gender"]}
        aw = _age_weights(phen["age"])
        mw = _three_level_weights(phen["muscle"], _LEVELS["muscle"])
        ww = _three_level_weights(phen["weight"], _LEVELS["weight"])
        hw = _signed_pair(phen["height"], "minheight", "maxheight")
        # MakeHuman: above 0.5 blends toward ideal proportions, below toward uncommon ones.
        pw = _signed_pair(phen["proportions"], "uncommonproportions", "idealproportions")
        race = np.array([phen[r] for r in RACES], dtype=np.float64)
        race = race / race.sum()
        out = np.zeros(len(self.names))
        for g in _GENDERS:
            for a in self.ages:
                ga = gw[g] * aw[a]
                if ga == 0.0:
                    continue
                for r, rw in zip(RACES, race):
                    out[self.index[f"targets/macrodetails/{r}-{g}-{a}.target.gz"]] += ga * rw
                for m, mv in mw.items():
                    for w, wv in ww.items():
                        base = ga * mv * wv
                        if base == 0.0:
                            continue
                        out[self.index[f"targets/macrodetails/universal-{g}-{a}-{m}-{w}.target.gz"]] += base
                        for h, hv in hw.items():
                            out[self.index[f"targets/macrodetails/height/{g}-{a}-{m}-{w}-{h}.target.gz"]] += base * hv
                        for p, pv in pw.items():
                            out[self.index[f"targets/macrodetails/proportions/{g}-{a}-{m}-{w}-{p}.target.gz"]] += base * pv
        for folder, name in MEASURES:
            value = phen.get(f"measure-{name}", 0.0)
            sign = "incr" if value > 0 else "decr"
            out[self.index[f"targets/{folder}/measure-{name}-{sign}.target.gz"]] += abs(value) * self.measure_scale[name]
        if any(aw[a] > 0 for a in aw if a not in self.ages):
            raise ValueError(f"age {phen['age']} needs targets outside {self.ages}")
        return out

    def displacement(self, phen: dict[str, float]) -> np.ndarray:
        """(N, 3) displacement of the base mesh for one phenotype, decimetres."""
        return np.tensordot(self.weights(phen), self.stack, axes=1)


def sample_phenotypes(rng: np.random.Generator, num: int, gender: str) -> list[dict[str, float]]:
    """Adult phenotypes (about 22 to 57 years) spread over the macro ranges.

    MakeHuman's height slider spans dwarf to giant (1.3 to 2.4 m), so the height value is
    drawn from a normal law (sd 0.065, about 7 cm of stature) instead of uniformly;
    weight and muscle avoid the extreme ends; each measure modifier is uniform in
    [-1, 1] (scaled to at most MEASURE_MAX_SHIFT_DM of displacement by ``MacroTargets``).

    gender: 'female' (0), 'male' (1) or 'neutral' (uniform in [0, 1]).
    """
    out = []
    for _ in range(num):
        if gender == "female":
            g = 0.0
        elif gender == "male":
            g = 1.0
        elif gender == "neutral":
            g = float(rng.uniform(0.0, 1.0))
        else:
            raise ValueError(f"gender must be female/male/neutral, got {gender!r}")
        race = rng.dirichlet(np.ones(3))
        out.append({
            "gender": g,
            "age": float(rng.uniform(0.4375, 0.7)),
            "muscle": float(rng.uniform(0.1, 0.9)),
            "weight": float(rng.uniform(0.15, 0.85)),
            "height": float(np.clip(rng.normal(0.5, 0.065), 0.25, 0.75)),
            "proportions": float(rng.uniform(0.0, 1.0)),
            **{r: float(x) for r, x in zip(RACES, race)},
            **{f"measure-{name}": float(rng.uniform(-1.0, 1.0)) for _, name in MEASURES},
        })
    return out
